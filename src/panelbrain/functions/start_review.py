"""StartReview function: hand an uncertain answer to the HumanReview (Standard) workflow.

Express workflows cannot wait on a task token, so the pipeline starts a Standard execution,
named by the query id: a repeated start finds the existing execution and succeeds.
"""

import contextlib
import json
import os
from typing import Any

from panelbrain.aws import clients
from panelbrain.aws.failures import aws_errors
from panelbrain.models import Synthesis, TerminalRecord


@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    stepfunctions = clients.client("stepfunctions")
    synthesis = Synthesis.model_validate(event["synthesis"])
    review_input = {
        "query_id": synthesis.query_id,
        "synthesis": synthesis.model_dump(mode="json"),
        "latency_scale": float(event.get("latency_scale", 0.0)),
        "settings": {
            "timeout_s": int(os.environ.get("REVIEW_TIMEOUT_S", "3600")),
            "heartbeat_s": int(os.environ.get("REVIEW_HEARTBEAT_S", "300")),
            "escalation": os.environ.get("REVIEW_ESCALATION", "reject"),
        },
    }
    # A repeated delivery finds the review already under way.
    with contextlib.suppress(stepfunctions.exceptions.ExecutionAlreadyExists):
        stepfunctions.start_execution(
            stateMachineArn=os.environ["REVIEW_STATE_MACHINE_ARN"],
            name=synthesis.query_id,
            input=json.dumps(review_input),
        )
    record = TerminalRecord(
        query_id=synthesis.query_id,
        status="needs_review",
        route="review",
        result={"synthesis": synthesis.model_dump(mode="json")},
        reason="confidence between the review and answer thresholds",
    )
    return record.model_dump(mode="json")
