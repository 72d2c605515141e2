"""Simulated model latency (``--latency seed:S``): the seed's seconds per agent, times S.

Kept apart from the data caches so the agents that never touch data import nothing heavy.
"""

from __future__ import annotations

import time

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
