"""StartReview function: hand an uncertain answer to the HumanReview (Standard) workflow.

Express workflows cannot wait on a task token, so the pipeline starts a Standard execution,
named by the query id: a repeated start finds the existing execution and succeeds.
"""

import contextlib
import functools
import json
import os
from collections.abc import Callable
from typing import Any

from panelbrain.aws import clients
from panelbrain.aws.failures import aws_errors
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.models import Synthesis, TerminalRecord
from panelbrain.observe import logged, logger

# Built on first use and kept for the container's life, as Lambda reuses it.
store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)


@logged()
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
    record = TerminalRecord(
        query_id=synthesis.query_id,
        status="needs_review",
        route="review",
        result={"synthesis": synthesis.model_dump(mode="json")},
        reason="confidence between the review and answer thresholds",
    )
    # Hand the query over before the review exists, and only if it is still open: an attempt
    # that ran on past its timeout, after the pipeline recorded a failure, starts no review that
    # a reviewer could then decide against a query that already ended (and once handed over,
    # the pipeline's failure paths no longer end it: DynamoQueryStore.put_record).
    if not store().put_record(record):
        logger.info("review not started: the query already ended")
        return record.model_dump(mode="json")
    # A repeated delivery finds the review already under way.
    with contextlib.suppress(stepfunctions.exceptions.ExecutionAlreadyExists):
        stepfunctions.start_execution(
            stateMachineArn=os.environ["REVIEW_STATE_MACHINE_ARN"],
            name=synthesis.query_id,
            input=json.dumps(review_input),
        )
    logger.info("review started")
    return record.model_dump(mode="json")
