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
    engine.faults.clear()
    yield
    engine.faults.clear()
