"""WeightApplier: rim weights to the dataset's default targets, and their diagnostics."""

from __future__ import annotations

from panelbrain.agents.context import default_weights
from panelbrain.agents.latency import simulate_latency
from panelbrain.config import standard_errors
from panelbrain.data.estimates import METHOD_CALIBRATED, METHOD_FIXED
from panelbrain.models import Plan, WorkerResult


def run(plan: Plan) -> WorkerResult:
    simulate_latency("weight_applier", plan.latency_scale)
    raked = default_weights(plan.dataset, plan.data_version)
    # How the data processor's intervals treat these weights (it reads the same setting), so
    # the answer can say so: calibrated to the margins below, or the weights taken as fixed.
    method = standard_errors() if raked.calibration is not None else "fixed"
    output = raked.report.model_dump(mode="json") | {
        "standard_errors": method,
        "intervals": METHOD_CALIBRATED if method == "calibrated" else METHOD_FIXED,
    }
    return WorkerResult(worker="weight_applier", output=output)
