"""Per-container caches shared by the agents: datasets, weights and query engines.

A Lambda container serves many invocations; loading a dataset, raking it and sealing its DuckDB
file happen once per container and data version, not once per question.
"""

from __future__ import annotations

import time
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


# Simulated model latency per agent, in seconds, from the seed document (section 2.3);
# `--latency seed:S` multiplies these by S.
SEED_LATENCY_S = {
    "plan": 5.0,
    "sql_writer": 10.0,
    "weight_applier": 8.0,
    "data_processor": 8.0,
    "synthesise": 5.0,
    "formatter": 3.0,
}


def simulate_latency(agent: str, scale: float) -> None:
    """Sleep for the seed's model latency of ``agent`` times ``scale`` (0: no delay)."""
    if scale > 0:
        time.sleep(SEED_LATENCY_S[agent] * scale)
