"""Worker function: Plan -> WorkerResult."""

from typing import Any

from panelbrain.agents import sql_writer
from panelbrain.aws.failures import aws_errors
from panelbrain.functions.worker import run_worker
from panelbrain.observe import logged
from panelbrain.tracing import traced


@logged()
@traced
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_worker(sql_writer.run, event)  # looked up per call: tests swap the agent's run
