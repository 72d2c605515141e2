"""Per-container caches shared by the agents: datasets, weights and query engines.

A Lambda container serves many invocations; loading a dataset, raking it and sealing its DuckDB
file happen once per container and data version, not once per question.
"""

from __future__ import annotations

from functools import cache

from panelbrain.data.catalog import LoadedDataset, load_dataset, weight_dataset
from panelbrain.data.engine import QueryEngine
from panelbrain.data.weighting import RakeResult


@cache
def dataset(name: str) -> LoadedDataset:
    return load_dataset(name)


@cache
def default_weights(name: str) -> RakeResult:
    return weight_dataset(dataset(name))


@cache
def engine(name: str) -> QueryEngine:
    return QueryEngine(dataset(name))
