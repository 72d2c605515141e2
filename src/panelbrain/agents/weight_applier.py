"""WeightApplier: rim weights to the dataset's default targets, and their diagnostics."""

from __future__ import annotations

from panelbrain.agents.context import default_weights
from panelbrain.agents.latency import simulate_latency
from panelbrain.models import Plan, WorkerResult


def run(plan: Plan) -> WorkerResult:
    simulate_latency("weight_applier", plan.latency_scale)
    report = default_weights(plan.dataset).report
    return WorkerResult(worker="weight_applier", output=report.model_dump(mode="json"))
