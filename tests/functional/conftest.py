"""What the functional tests share: one local engine per module (a module's tests build on one
emulated account; the next module starts from a fresh one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panelbrain.local.engine import LocalEngine


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    with LocalEngine.running() as running:
        yield running
