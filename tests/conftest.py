"""Every test session gets an empty local datasets directory of its own: the datasets a developer
added under ~/.local/share never leak into a test, and no test writes there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def own_datasets_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PANELBRAIN_DATASETS", str(tmp_path_factory.mktemp("datasets")))
        yield
