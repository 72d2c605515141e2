"""A local engine shared by the state machine tests (moto, in-process Lambda)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panelbrain.local.engine import LocalEngine


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    with LocalEngine.running() as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults(engine: LocalEngine) -> Iterator[None]:
    # Each test watches its own run: no injected faults, no cached answer to short-cut it, and
    # no question an earlier test posted and left queued (ask drains the queue, running them).
    engine.faults.clear()
    engine.clear_table("ResultCacheTable")
    engine.empty_queue("QueryQueue")
    yield
    engine.faults.clear()
