"""BrainPlan: question -> plan (intent, measure, breakdown, filters, weighting, workers)."""

from __future__ import annotations

from panelbrain.agents.latency import simulate_latency
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import Plan, QueryInput


def run(query: QueryInput) -> Plan:
    spec = load_dictionary(query.dataset)
    simulate_latency("plan", query.latency_scale)
    if query.provider == "bedrock":
        from panelbrain.agents.bedrock import BedrockProvider

        return BedrockProvider.from_env().plan(query, spec)
    from panelbrain.agents.offline import OfflinePlanner

    return OfflinePlanner(spec).plan(query)
