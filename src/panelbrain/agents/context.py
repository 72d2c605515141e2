"""Per-container caches shared by the agents: datasets, weights and query engines.

A Lambda container serves many invocations; loading a dataset, raking it and sealing its DuckDB
file happen once per container and data version, not once per question. Each is keyed by the
version a query's plan pinned (None: the current one), so a republished dataset is loaded anew
and an older version still in use by a query in flight stays right.
"""

from __future__ import annotations

from functools import cache

from panelbrain.data.catalog import LoadedDataset, load_dataset, weight_dataset
from panelbrain.data.dictionary import load_dictionary
from panelbrain.data.engine import QueryEngine
from panelbrain.data.weighting import RakeResult


def clear() -> None:
    """Forget every dataset, weighting and engine: what a new container starts with."""
    for cached in (_dataset, _default_weights, _engine):
        cached.cache_clear()


def _version(name: str, version: str | None) -> str:
    return version if version is not None else load_dictionary(name).data_version


def dataset(name: str, version: str | None = None) -> LoadedDataset:
    return _dataset(name, _version(name, version))


def default_weights(name: str, version: str | None = None) -> RakeResult:
    return _default_weights(name, _version(name, version))


def engine(name: str, version: str | None = None) -> QueryEngine:
    return _engine(name, _version(name, version))


@cache
def _dataset(name: str, version: str) -> LoadedDataset:
    return load_dataset(name, version=version)


@cache
def _default_weights(name: str, version: str) -> RakeResult:
    return weight_dataset(_dataset(name, version))


@cache
def _engine(name: str, version: str) -> QueryEngine:
    return QueryEngine(_dataset(name, version))
