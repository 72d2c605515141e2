"""What the three worker functions (SQL writer, weight applier, data processor) share."""

from collections.abc import Callable
from typing import Any

from panelbrain.aws.blobs import offload
from panelbrain.aws.budgets import WORKER_INLINE_BYTES
from panelbrain.models import Plan, WorkerResult
from panelbrain.observe import logger


def run_worker(run: Callable[[Plan], WorkerResult], event: dict[str, Any]) -> dict[str, Any]:
    """``run`` on the event's plan, its result as it travels back to the workflow."""
    result = run(Plan.model_validate(event["plan"]))
    # Three workers' outputs travel in one state with the plan: each has a fixed share of the room
    # (panelbrain.aws.budgets); a larger output (10,000 SQL rows, say) travels as a claim check.
    output = offload(result.output, budget=WORKER_INLINE_BYTES)
    logger.info(
        "worker done",
        extra={"worker": result.worker, "skipped": result.skipped, "offloaded": "claim_check" in output},
    )
    return result.model_copy(update={"output": output}).model_dump(mode="json")
