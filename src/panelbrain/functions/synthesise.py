"""BrainSynthesise function: plan + worker results -> Synthesis."""

from typing import Any

from panelbrain.agents import synthesise
from panelbrain.aws.blobs import resolve
from panelbrain.models import Plan, WorkerResult
from panelbrain.review.policy import ReviewPolicy


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    plan = Plan.model_validate(event["plan"])
    results = [WorkerResult.model_validate(r) for r in event["workers"]]
    results = [r.model_copy(update={"output": resolve(r.output)}) for r in results]
    synthesis = synthesise.run(plan, results)
    # Route by the policy in the workflow's settings (thresholds and review rules).
    policy = ReviewPolicy.model_validate(event.get("settings") or {})
    route, reasons = policy.route(
        synthesis.query_id, synthesis.confidence, synthesis.table, synthesis.weighting
    )
    return synthesis.model_copy(update={"route": route, "review_reasons": reasons}).model_dump(mode="json")
