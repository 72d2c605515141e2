"""The paths that used to leave a query in flight for ever, or record a fault as a verdict.

Each test is one finding of the fault runs (``panelbrain chaos``): a malformed step output, a
failed Persist, a StartReview that ran on past its timeout, a redelivery during another
delivery's start lease. Each ends in exactly one terminal status that says what happened.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.functions import api, poller, start_review
from panelbrain.local.ask import PIPELINE, REVIEW, ask
from panelbrain.local.engine import LocalEngine
from panelbrain.models import TerminalRecord

CONFIDENT = "What share support a ban on abortion by province?"  # answered by the formatter
AMBIGUOUS = "What share of people in QC strongly support a ban"  # goes to review
EVENTS = Path(__file__).parent.parent.parent / "events"

Handler = Callable[[dict[str, Any], Any], Any]


@pytest.fixture
def override(engine: LocalEngine) -> Iterator[Callable[[str, Callable[[Handler], Handler]], None]]:
    """Swap one function's handler for a wrapper of it for the test (a bug, a bad answer)."""
    saved = dict(engine.handlers)

    def swap(function: str, wrap: Callable[[Handler], Handler]) -> None:
        engine.handlers[function] = wrap(saved[function])

    yield swap
    engine.handlers.update(saved)


def without(field: str, *path: str) -> Callable[[Handler], Handler]:
    """The handler's output with ``path.field`` removed."""

    def wrap(handler: Handler) -> Handler:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            output = copy.deepcopy(handler(event, context))
            node = output
            for key in path:
                node = node[key]
            node.pop(field)
            return output

        return wrapped

    return wrap


def stored(query_id: str) -> dict[str, Any]:
    return DynamoQueryStore().get(query_id) or {}


def pipeline_status(engine: LocalEngine, query_id: str) -> str:
    description = engine.clients["stepfunctions"].describe_execution(
        executionArn=engine.execution_arn(PIPELINE, query_id)
    )
    return str(description["status"])


def test_a_plan_without_its_needs_fails_the_query_as_a_system_fault(
    engine: LocalEngine, override: Any
) -> None:
    # GIVEN a Brain plan that lost needs.weight_applier (a bug, or a bad model answer)
    override("BrainPlanFunction", without("weight_applier", "needs"))
    # WHEN a question is asked
    result = ask(engine, CONFIDENT)
    # THEN the query is failed by the error path, naming the malformed plan, and the execution
    # succeeded (before: a Choice read the missing field, States.Runtime failed the execution
    # uncatchably and the query stayed "started")
    assert (result["status"], result["route"]) == ("failed", "error")
    assert "MalformedStateError" in result["reason"] and "needs.weight_applier" in result["reason"]
    assert pipeline_status(engine, result["query_id"]) == "SUCCEEDED"


def test_a_synthesis_without_a_route_is_a_fault_not_a_low_confidence_verdict(
    engine: LocalEngine, override: Any
) -> None:
    # GIVEN a synthesis that lost its route
    override("BrainSynthesiseFunction", without("route"))
    # WHEN a question is asked
    result = ask(engine, CONFIDENT)
    # THEN the query failed as a system fault (before: the Choice's default recorded it as a
    # low-confidence verdict on the data)
    assert (result["status"], result["route"]) == ("failed", "error")
    assert "MalformedStateError" in result["reason"] and "route" in result["reason"]
    assert "confidence" not in result["reason"].split("MalformedStateError")[0]


def test_a_low_confidence_synthesis_without_its_confidence_is_not_read_as_zero(
    engine: LocalEngine, override: Any
) -> None:
    # GIVEN a synthesis routed to low confidence that lost its confidence
    def low_and_broken(handler: Handler) -> Handler:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            output = dict(handler(event, context))
            output["route"] = "low_confidence"
            output.pop("confidence")
            return output

        return wrapped

    override("BrainSynthesiseFunction", low_and_broken)
    # WHEN a question is asked
    result = ask(engine, CONFIDENT)
    # THEN the low-confidence handler refused it and the query is failed with that error, not
    # "confidence 0.00 is below the review threshold"
    assert (result["status"], result["route"]) == ("failed", "error_handler_failed")
    assert "MalformedStateError" in json.dumps(stored(result["query_id"])["result"])
    assert "below the review threshold" not in (result.get("reason") or "")


def test_a_persist_that_keeps_failing_is_caught_and_the_query_recorded_failed(
    engine: LocalEngine, override: Any
) -> None:
    # GIVEN a Persist that fails every time it is asked to record an answer
    def refuses_answers(handler: Handler) -> Handler:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            if event.get("status") == "answered":
                raise RuntimeError("the queries table refused the write")
            return handler(event, context)

        return wrapped

    override("PersistFunction", refuses_answers)
    # WHEN a confident question is asked
    result = ask(engine, CONFIDENT)
    # THEN after its retries the Catch recorded the query failed with the error (before: no
    # Catch, the execution FAILED and the query stayed "started" for ever)
    assert (result["status"], result["route"]) == ("failed", "error_handler_failed")
    assert "the queries table refused the write" in json.dumps(stored(result["query_id"])["result"])
    assert pipeline_status(engine, result["query_id"]) == "SUCCEEDED"


def synthesis_for_review(engine: LocalEngine) -> dict[str, Any]:
    """A synthesis that routes to review, as the pipeline hands it to StartReview."""
    result = ask(engine, AMBIGUOUS)
    assert result["status"] == "needs_review"
    synthesis: dict[str, Any] = (DynamoQueryStore().get(result["query_id"]) or {})["result"]["synthesis"]
    return synthesis


def posted() -> str:
    request = json.loads((EVENTS / "api/post_query.json").read_text())
    query_id: str = json.loads(api.handler(request, None)["body"])["query_id"]
    return query_id


def review_executions(engine: LocalEngine, query_id: str) -> list[str]:
    listed = engine.clients["stepfunctions"].list_executions(stateMachineArn=engine.state_machine_arn(REVIEW))
    return [e["status"] for e in listed["executions"] if e["name"] == query_id]


def test_a_start_review_that_outlived_its_timeout_starts_no_review_for_a_failed_query(
    engine: LocalEngine,
) -> None:
    # GIVEN a query the pipeline already recorded failed (StartReview timed out twice)
    synthesis = synthesis_for_review(engine)
    query_id = posted()
    store = DynamoQueryStore()
    store.put_record(TerminalRecord(query_id=query_id, status="failed", route="error", reason="timed out"))
    # WHEN the late StartReview attempt runs on
    start_review.handler({"synthesis": {**synthesis, "query_id": query_id}}, None)
    # THEN no review was started, and the query stays failed (before: the review started and
    # a reviewer approved an answer to a query that had ended)
    assert review_executions(engine, query_id) == []
    assert (store.get(query_id) or {})["status"] == "failed"


def test_a_failure_recorded_after_the_hand_over_to_review_does_not_end_the_query(engine: LocalEngine) -> None:
    # GIVEN a query StartReview handed to its review
    query_id = posted()
    store = DynamoQueryStore()
    assert store.put_record(TerminalRecord(query_id=query_id, status="needs_review", route="review"))
    # WHEN the pipeline's error path records a failure afterwards (a StartReview retry timed out)
    written = store.put_record(TerminalRecord(query_id=query_id, status="failed", route="error"))
    # THEN the write is refused: the review decides the query; its own outcome still lands
    assert not written and (store.get(query_id) or {})["status"] == "needs_review"
    assert store.put_record(TerminalRecord(query_id=query_id, status="rejected", route="review_rejected"))


def sqs_event(query_id: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "poller/one_query.json").read_text())
    record = event["Records"][0]
    body = json.loads(record["body"])
    record["body"] = json.dumps({**body, "query_id": query_id})
    record["messageAttributes"]["query_id"]["stringValue"] = query_id
    return event


def test_a_redelivery_during_another_deliverys_start_lease_comes_back_later(engine: LocalEngine) -> None:
    # GIVEN a query another delivery claimed (a poller that then died before StartExecution)
    query_id = posted()
    assert DynamoQueryStore().claim_start(query_id, lease_s=1.0)
    # WHEN the message is delivered again while that lease holds
    held = poller.handler(sqs_event(query_id), None)
    # THEN the record fails, so SQS brings it back (before: it was taken for a duplicate and
    # deleted, and the query stayed "started" with no execution)
    assert [f["itemIdentifier"] for f in held["batchItemFailures"]] == [
        sqs_event(query_id)["Records"][0]["messageId"]
    ]
    # AND once the lease has run out, the next delivery starts the query
    time.sleep(1.1)
    assert poller.handler(sqs_event(query_id), None)["batchItemFailures"] == []
    assert (DynamoQueryStore().get(query_id) or {}).get("execution_arn")


def test_throttled_aws_requests_are_retried_by_the_sdk_before_a_handler_sees_them(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB answering the first four UpdateItem requests with a throttle, as AWS does
    # (HTTP 400 ThrottlingException), under botocore's retry handler
    from moto.core.botocore_stubber import BotocoreStubber

    from panelbrain.ops.chaos import throttle_response

    answered = BotocoreStubber.__call__
    throttled: list[str] = []

    def send(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if event_name == "before-send.dynamodb.UpdateItem" and len(throttled) < 4:
            throttled.append(event_name)
            return throttle_response("dynamodb")
        return answered(stubber, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", send)
    # WHEN a question is asked
    result = ask(engine, CONFIDENT)
    # THEN the template's retry settings (standard mode, 6 attempts) absorbed the throttles: the
    # query was answered with no failed invocation
    assert len(throttled) == 4
    assert (result["status"], result["route"]) == ("answered", "formatter")
    assert not [i for i in engine.invocations[-12:] if i.error]
    variables = engine.template.environment("PersistFunction")
    assert (variables["AWS_RETRY_MODE"], variables["AWS_MAX_ATTEMPTS"]) == ("standard", "6")
