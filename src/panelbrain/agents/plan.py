"""BrainPlan: question -> plan (intent, measure, breakdown, filters, weighting, workers)."""

from __future__ import annotations

from panelbrain.agents.latency import simulate_latency
from panelbrain.agents.providers import provider_for
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import Plan, QueryInput


def run(query: QueryInput) -> Plan:
    spec = load_dictionary(query.dataset)
    simulate_latency("plan", query.latency_scale)
    made = provider_for(query.provider).plan(query, spec)
    # Pinned: a republish while the query runs cannot mix two versions in its answer.
    return made.model_copy(update={"data_version": spec.data_version})
