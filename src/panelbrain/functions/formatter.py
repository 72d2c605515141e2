"""Formatter function: Synthesis -> FormattedAnswer."""

from typing import Any

from panelbrain.agents import formatter
from panelbrain.aws.blobs import KEPT, offload, resolve
from panelbrain.aws.budgets import MARKDOWN_INLINE_BYTES
from panelbrain.aws.failures import aws_errors
from panelbrain.models import Synthesis
from panelbrain.observe import logged, logger


@logged()
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The markdown shows every row, so a table that travels as a claim check is read back here.
    raw = event["synthesis"]
    synthesis = Synthesis.model_validate({**raw, "table": resolve(raw["table"])})
    answer = formatter.run(synthesis, float(event.get("latency_scale", 0.0)))
    # The markdown travels beside the synthesis and into the query item: held to its budget.
    document = answer.model_dump(mode="json")
    document["markdown"] = offload(answer.markdown, budget=MARKDOWN_INLINE_BYTES, prefix=KEPT)
    logger.info("answer formatted", extra={"offloaded": isinstance(document["markdown"], dict)})
    return document
