"""BrainSynthesise function: plan + worker results -> Synthesis."""

from typing import Any

from panelbrain.agents import synthesise
from panelbrain.aws.blobs import KEPT, fit, head, offload, resolve
from panelbrain.aws.budgets import SYNTHESIS_BYTES, TABLE_PREVIEW_BYTES, json_bytes
from panelbrain.aws.failures import aws_errors
from panelbrain.models import ClaimCheck, Plan, WorkerResult
from panelbrain.observe import logged, logger
from panelbrain.review.policy import ReviewPolicy
from panelbrain.tracing import traced


@logged()
@traced
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    plan = Plan.model_validate(event["plan"])
    results = [WorkerResult.model_validate(r) for r in event["workers"]]
    results = [r.model_copy(update={"output": resolve(r.output)}) for r in results]
    # Route by the policy in the workflow's settings (thresholds and review rules); an answer the
    # offline fallback helped write is capped below its answer threshold.
    policy = ReviewPolicy.model_validate(event.get("settings") or {})
    synthesis = synthesise.run(plan, results, answer_threshold=policy.answer)
    table, weighting = synthesis.table, synthesis.weighting
    assert isinstance(table, list) and not isinstance(weighting, ClaimCheck)  # only offloaded below
    route, reasons = policy.route(synthesis.query_id, synthesis.confidence, table, weighting)
    routed = synthesis.model_copy(update={"route": route, "review_reasons": reasons})
    logger.info(
        "synthesis routed",
        extra={"route": route, "confidence": synthesis.confidence, "provider": synthesis.provider},
    )
    return _travelling(routed.model_dump(mode="json"))


def _travelling(document: dict[str, Any]) -> dict[str, Any]:
    """The synthesis as it travels: within SYNTHESIS_BYTES, its table (then its weighting) in S3
    when it does not fit. Stored queries refer to them, so they are kept, not expired."""
    if json_bytes(document) <= SYNTHESIS_BYTES:
        return document
    rows = document["table"]
    preview = head(rows, TABLE_PREVIEW_BYTES)  # what a reviewer's e-mail and page show
    table = offload(rows, budget=0, prefix=KEPT, rows=len(rows), head=preview)
    return fit({**document, "table": table}, SYNTHESIS_BYTES, what="the synthesis", fields=["weighting"])
