"""Poller function: SQS batch -> one QueryPipeline execution per query, exactly once.

Each record is handled on its own (Powertools BatchProcessor reports failures per record). A
conditional write on the query record guards StartExecution, because asynchronous Express
workflows do not deduplicate execution names in AWS; executions are still named by query id for
tracing. The guard is a lease (``START_LEASE_S``, longer than this function's Timeout and shorter
than the queue's VisibilityTimeout): a poller stopped between its claim and StartExecution leaves
a lease that has run out by the time SQS delivers the message again, so the query starts then
instead of staying "started" for ever; once an execution is recorded, no lease is granted again.
A record that fails on its last allowed receive marks its query failed before it goes
to the dead-letter queue, where it waits for redrive: nothing is lost.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from panelbrain.aws import clients
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.models import QueryMessage, TerminalRecord
from panelbrain.observe import correlate, logged, logger

# Report every failed record, even when all of them failed, rather than failing the
# invocation: the outcome for SQS is the same, and the response says which ones.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# Built on first use and kept for the container's life, as Lambda reuses it.
store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)


class StartLeaseHeldError(Exception):
    """Another delivery holds the query's start lease and has not recorded an execution: this
    message must come back (it may be the only one left if that delivery's poller died)."""


def start(message: QueryMessage) -> None:
    if not store().claim_start(message.query_id, float(os.environ.get("START_LEASE_S", "60"))):
        item = store().get(message.query_id, consistent=True) or {}
        if item.get("status") == "started" and not item.get("execution_arn"):
            # Deleting this message now would leave nothing to retry the start with if the lease
            # holder died: fail the record, and SQS delivers it again after the visibility
            # timeout, by when the lease has run out or the execution is recorded.
            logger.info("start lease held by another delivery")
            raise StartLeaseHeldError(
                f"query {message.query_id}: another delivery holds its start lease until "
                f"{item.get('lease_until')}; this message comes back after the visibility timeout"
            )
        logger.info("duplicate delivery: already started or ended", extra={"status": item.get("status")})
        return  # a duplicate delivery: this query's execution started, or it already ended
    # Simulated model latency is a local benchmarking knob; unset (0) in a deployed stack.
    scale = float(os.environ.get("PANELBRAIN_LATENCY_SCALE", "0") or 0)
    payload = {"query": {**message.model_dump(mode="json"), "latency_scale": scale}}
    try:
        started = clients.client("stepfunctions").start_execution(
            stateMachineArn=os.environ["PIPELINE_STATE_MACHINE_ARN"],
            name=message.query_id,
            input=json.dumps(payload),
        )
    except Exception:
        store().release_start(message.query_id)
        raise
    logger.info("pipeline started", extra={"execution_arn": started["executionArn"]})
    try:
        store().mark_started(message.query_id, started["executionArn"])
    except Exception:
        # The execution runs: failing this record would redeliver it and, past the lease, start
        # a second one. Without the mark only a redelivery could restart it, and the message is
        # deleted now; the deadline sweeper still closes the query if its execution dies.
        logger.exception("query started but its execution could not be recorded")


def record_handler(record: SQSRecord) -> None:
    # One batch holds many queries: each record's lines carry its own.
    logger.thread_safe_remove_keys(["query_id"])
    correlate(query_id=_query_id(record))
    try:
        start(QueryMessage.model_validate_json(record.body))
    except StartLeaseHeldError:
        # Not a failure of this query: the lease holder starts it, or the deadline sweeper
        # closes it if the holder died on this message's last delivery.
        raise
    except Exception as exc:
        receives = int(record.attributes.approximate_receive_count or "1")
        if receives >= int(os.environ.get("MAX_RECEIVE_COUNT", "3")):
            query_id = _query_id(record)
            logger.error(
                "could not start; the message goes to the dead-letter queue",
                extra={"receives": receives, "error_type": type(exc).__name__},
            )
            if query_id:
                store().put_record(
                    TerminalRecord(
                        query_id=query_id,
                        status="failed",
                        route="dead_letter",
                        reason=f"could not start after {receives} deliveries: {type(exc).__name__}: {exc}",
                    )
                )
        raise


def _query_id(record: SQSRecord) -> str | None:
    """The query a record belongs to: from its attribute, which survives a malformed body."""
    attributes: dict[str, Any] = record.raw_event.get("messageAttributes") or {}
    value = (attributes.get("query_id") or {}).get("stringValue")
    if value:
        return str(value)
    try:
        return str(json.loads(record.body)["query_id"])
    except (ValueError, KeyError, TypeError):
        return None


@logged(query_id=None)  # per record, in record_handler
def handler(event: dict[str, Any], context: Any) -> Any:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
