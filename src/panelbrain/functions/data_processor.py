"""Worker function: Plan -> WorkerResult."""

from typing import Any

from panelbrain.agents import data_processor
from panelbrain.aws.failures import aws_errors
from panelbrain.functions.worker import run_worker
from panelbrain.observe import logged


@logged()
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_worker(data_processor.run, event)  # looked up per call: tests swap the agent's run
