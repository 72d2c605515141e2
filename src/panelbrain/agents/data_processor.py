"""DataProcessor: weighted estimates for the plan (shares or means, overall and by group)."""

from __future__ import annotations

import numpy as np

from panelbrain.agents.context import dataset, default_weights
from panelbrain.agents.latency import simulate_latency
from panelbrain.config import standard_errors
from panelbrain.data.estimates import weighted_means, weighted_shares
from panelbrain.models import Plan, WorkerResult


def run(plan: Plan) -> WorkerResult:
    simulate_latency("data_processor", plan.latency_scale)
    data = dataset(plan.dataset, plan.data_version)
    frame = data.frame
    keep = np.ones(len(frame), dtype=bool)
    for f in plan.filters:
        column = frame[f.column].astype("string")
        chosen = column.isin(f.values).to_numpy(dtype=bool, na_value=False)
        # Negated, a missing value is still left out: the SQL cross-check's NOT IN drops NULLs too.
        keep &= (column.notna().to_numpy(dtype=bool) & ~chosen) if f.negate else chosen
    # The whole raked frame with the filters as a domain: the calibrated SE (R's raked design,
    # domains by subset()) needs every respondent the weights were raked on.
    raked = default_weights(plan.dataset, plan.data_version) if plan.weighted else None
    se = standard_errors() if plan.weighted else None
    if plan.intent == "mean":
        table = weighted_means(frame, plan.measure, by=plan.breakdown, weights=raked, domain=keep, se=se)
    else:
        values = plan.values if plan.intent == "share" else None
        table = weighted_shares(
            frame, plan.measure, values=values, by=plan.breakdown, weights=raked, domain=keep, se=se
        )
    return WorkerResult(worker="data_processor", output=table.model_dump(mode="json"))
