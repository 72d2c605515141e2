"""ErrorHandler function: a caught error or a low-confidence synthesis -> TerminalRecord."""

from typing import Any

from panelbrain.agents import error_handler
from panelbrain.aws.failures import aws_errors
from panelbrain.observe import logged, logger


@logged()
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record = error_handler.run(event["query_id"], error=event.get("error"), synthesis=event.get("synthesis"))
    logger.info("outcome recorded", extra={"status": record.status, "route": record.route})
    return record.model_dump(mode="json")
