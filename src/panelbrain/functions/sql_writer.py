"""Worker function: Plan -> WorkerResult."""

from typing import Any

from panelbrain.agents import sql_writer
from panelbrain.aws.blobs import offload
from panelbrain.aws.budgets import WORKER_INLINE_BYTES
from panelbrain.aws.failures import aws_errors
from panelbrain.models import Plan


@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = sql_writer.run(Plan.model_validate(event["plan"]))
    # Three workers' outputs travel in one state with the plan: each has a fixed share of the room
    # (panelbrain.aws.budgets); a larger output (10,000 SQL rows, say) travels as a claim check.
    output = offload(result.output, budget=WORKER_INLINE_BYTES)
    return result.model_copy(update={"output": output}).model_dump(mode="json")
