"""API -> queue -> poller -> pipeline on the local engine, with the events/ files as inputs.

The duplicate-delivery test replaces the Step Functions client with a counter (through
``clients.override``, the one substitution point), so moto's own deduplication of Express
execution names (which AWS does not do) proves nothing here: only our conditional write stands
between two deliveries and two executions.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panelbrain.aws import clients
from panelbrain.aws.cache import DynamoResultCache, reading_key
from panelbrain.aws.store import DynamoQueryStore
from panelbrain.data.dictionary import load_dictionary
from panelbrain.functions import api, poller
from panelbrain.local.engine import LocalEngine
from panelbrain.local.lambda_rules import LambdaFunctionError

EVENTS = Path(__file__).parent.parent.parent / "events"


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


@pytest.fixture(autouse=True)
def empty_cache_and_queue(engine: LocalEngine) -> Iterator[None]:
    engine.clear_table("ResultCacheTable")
    engine.empty_queue("QueryQueue")
    yield


def post(body: Any, raw: str | None = None) -> dict[str, Any]:
    request = event("api/post_query.json")
    request["body"] = raw if raw is not None else json.dumps(body)
    return api.handler(request, None)


def test_post_accepts_queues_and_counts(engine: LocalEngine, capsys: pytest.CaptureFixture[str]) -> None:
    response = api.handler(event("api/post_query.json"), None)
    assert response["statusCode"] == 202
    body = json.loads(response["body"])
    assert body["status"] == "queued" and body["status_url"] == f"/queries/{body['query_id']}"
    assert DynamoQueryStore().get(body["query_id"])["status"] == "queued"
    assert '"IncomingQueryCount"' in capsys.readouterr().out  # the EMF metric line


def test_posted_question_is_answered_through_queue_and_poller(engine: LocalEngine) -> None:
    query_id = json.loads(api.handler(event("api/post_query.json"), None)["body"])["query_id"]
    while engine.deliver("QueryQueue", "PollerFunction") is not None:
        pass
    engine.wait(engine.execution_arn("QueryPipelineStateMachine", query_id))
    get = event("api/get_query.json")
    get["path"], get["pathParameters"] = f"/queries/{query_id}", {"query_id": query_id}
    response = api.handler(get, None)
    assert response["statusCode"] == 200
    record = json.loads(response["body"])
    assert (record["status"], record["route"]) == ("answered", "formatter")
    assert "Quebec" in record["result"]["markdown"]
    # The audit trail: every change of status, in order, with its time.
    assert [event["status"] for event in record["history"]] == ["queued", "started", "answered"]
    assert record["history"][0]["at"] <= record["history"][-1]["at"]


@pytest.mark.parametrize(
    ("body", "raw", "status", "text"),
    [
        ({"dataset": "ces11"}, None, 422, "question"),
        ({"question": "x" * 10_000_000}, None, 422, "question"),
        ({"question": 5}, None, 422, "question"),
        ({"question": "What share?", "dataset": "ces99"}, None, 422, "unknown dataset 'ces99'"),
        ({"question": ""}, None, 422, "question"),
        ({"question": "   \t "}, None, 422, "the question is empty"),
        ({"question": "share\x00of\x07yes"}, None, 422, "control characters"),
        (None, "{not json", 422, ""),
        ({"question": "Share of Yes", "surprise": True}, None, 422, "surprise"),
    ],
    ids=[
        "missing",
        "10MB",
        "wrong-type",
        "unknown-dataset",
        "empty",
        "whitespace",
        "control",
        "bad-json",
        "extra",
    ],
)
def test_invalid_bodies_get_a_4xx_with_a_reason(
    engine: LocalEngine, body: Any, raw: str | None, status: int, text: str
) -> None:
    response = post(body, raw)
    assert response["statusCode"] == status
    assert text in response["body"]


def test_unknown_query_is_404(engine: LocalEngine) -> None:
    response = api.handler(event("api/get_query.json"), None)
    assert response["statusCode"] == 404


def test_review_tokens_are_out_of_the_query_apis_reach(engine: LocalEngine) -> None:
    # Task tokens live in the review table, which the API function has no permission to read.
    api_policies = json.dumps(engine.template.resources["ApiFunction"]["Properties"]["Policies"])
    assert "ReviewsTable" not in api_policies
    assert "ReviewsTable" in json.dumps(
        engine.template.resources["ReviewApiFunction"]["Properties"]["Policies"]
    )
    get = event("api/get_query.json")
    get["path"], get["pathParameters"] = (
        "/queries/rv_AAAAAAAAAAAAAAAAAAAA",
        {"query_id": "rv_AAAAAAAAAAAAAAAAAAAA"},
    )
    assert api.handler(get, None)["statusCode"] == 404


class CountingStepFunctions:
    """Stands in for the Step Functions client: counts starts, runs nothing."""

    def __init__(self, fail: bool = False) -> None:
        self.starts: list[str] = []
        self.fail = fail

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        self.starts.append(kwargs["name"])
        if self.fail:
            raise RuntimeError("StartExecution unavailable")
        return {"executionArn": f"arn:aws:states:us-east-1:123456789012:execution:x:{kwargs['name']}"}


def test_duplicate_delivery_starts_one_execution(engine: LocalEngine) -> None:
    query_id = json.loads(api.handler(event("api/post_query.json"), None)["body"])["query_id"]
    delivery = event("poller/one_query.json")
    record = delivery["Records"][0]
    record["body"] = json.dumps({**json.loads(record["body"]), "query_id": query_id})
    with clients.override("stepfunctions", CountingStepFunctions()) as counter:
        first = poller.handler(copy.deepcopy(delivery), None)
        second = poller.handler(copy.deepcopy(delivery), None)  # SQS delivers at least once
    assert first == second == {"batchItemFailures": []}
    assert counter.starts == [query_id]


class HangingStepFunctions:
    """A StartExecution that never returns: the poller is stopped at its Timeout between its
    claim and the start, as Lambda stops it (nothing after the call runs, no release)."""

    def __init__(self) -> None:
        self.calls = 0

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        self.calls += 1
        threading.Event().wait()  # frozen for good, like a stopped Lambda environment
        raise AssertionError("unreachable")


def later_store(seconds: float) -> DynamoQueryStore:
    """The query store as the poller sees it ``seconds`` from now."""
    return DynamoQueryStore(clock=lambda: time.time() + seconds)


def test_poller_stopped_between_claim_and_start_is_started_on_redelivery(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    query_id = json.loads(api.handler(event("api/post_query.json"), None)["body"])["query_id"]
    visibility = float(engine.template.resources["QueryQueue"]["Properties"]["VisibilityTimeout"])
    # GIVEN a poller stopped at its Timeout after claiming the query, before StartExecution
    engine.timeout_overrides["PollerFunction"] = 0.2
    try:
        with (
            clients.override("stepfunctions", HangingStepFunctions()) as hanging,
            pytest.raises(LambdaFunctionError) as stopped,
        ):
            engine.deliver("QueryQueue", "PollerFunction")
    finally:
        del engine.timeout_overrides["PollerFunction"]
    assert stopped.value.error_type == "Sandbox.Timedout" and hanging.calls == 1
    record = DynamoQueryStore().get(query_id)
    assert record is not None and record["status"] == "started"
    # WHEN SQS delivers the message again, after its visibility timeout
    engine.rules.advance_queue_clock(visibility)
    monkeypatch.setattr(poller, "store", lambda: later_store(visibility))
    with clients.override("stepfunctions", CountingStepFunctions()) as counter:
        assert engine.deliver("QueryQueue", "PollerFunction") == {"batchItemFailures": []}
    # THEN the lease has run out and the query starts, once
    assert counter.starts == [query_id]
    record = DynamoQueryStore().get(query_id)
    assert record is not None and record["execution_arn"].endswith(f":{query_id}")


def test_redelivery_after_the_lease_never_starts_a_second_execution(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    query_id = json.loads(api.handler(event("api/post_query.json"), None)["body"])["query_id"]
    delivery = event("poller/one_query.json")
    record = delivery["Records"][0]
    record["body"] = json.dumps({**json.loads(record["body"]), "query_id": query_id})
    with clients.override("stepfunctions", CountingStepFunctions()) as counter:
        assert poller.handler(copy.deepcopy(delivery), None) == {"batchItemFailures": []}
        # A late duplicate, long after the lease ran out: the recorded execution stops it
        # (asynchronous Express would otherwise run the same name twice in AWS).
        monkeypatch.setattr(poller, "store", lambda: later_store(3_600))
        assert poller.handler(copy.deepcopy(delivery), None) == {"batchItemFailures": []}
    assert counter.starts == [query_id]


def test_start_lease_outlasts_the_poller_and_not_the_visibility_timeout(engine: LocalEngine) -> None:
    # A live poller keeps its lease to its Timeout; a redelivery (one VisibilityTimeout later)
    # finds a stopped poller's lease run out.
    function = engine.template.resources["PollerFunction"]["Properties"]
    lease = float(function["Environment"]["Variables"]["START_LEASE_S"])
    visibility = float(engine.template.resources["QueryQueue"]["Properties"]["VisibilityTimeout"])
    assert engine.timeout_s("PollerFunction") < lease < visibility


def test_partial_batch_failure_is_reported_per_record(engine: LocalEngine) -> None:
    query_id = json.loads(api.handler(event("api/post_query.json"), None)["body"])["query_id"]
    delivery = event("poller/one_query.json")
    good = delivery["Records"][0]
    good["body"] = json.dumps({**json.loads(good["body"]), "query_id": query_id})
    bad = {**copy.deepcopy(good), "messageId": "bad-message", "body": "{truncated"}
    delivery["Records"].append(bad)
    with clients.override("stepfunctions", CountingStepFunctions()) as counter:
        assert poller.handler(delivery, None) == {"batchItemFailures": [{"itemIdentifier": "bad-message"}]}
    assert counter.starts == [query_id]


def test_poison_message_reaches_the_dlq_and_its_query_is_failed(engine: LocalEngine) -> None:
    query_id = json.loads(api.handler(event("api/post_query.json"), None)["body"])["query_id"]
    visibility = int(engine.template.resources["QueryQueue"]["Properties"]["VisibilityTimeout"])
    with clients.override("stepfunctions", CountingStepFunctions(fail=True)) as failing:
        for _ in range(3):  # maxReceiveCount 3: three deliveries, each failing
            response = engine.deliver("QueryQueue", "PollerFunction")
            assert response is not None and len(response["batchItemFailures"]) == 1
            assert engine.deliver("QueryQueue", "PollerFunction") is None  # hidden until...
            engine.rules.advance_queue_clock(visibility)  # ...the queue's visibility timeout passes
    assert engine.deliver("QueryQueue", "PollerFunction") is None  # moved on
    sqs = engine.clients["sqs"]
    dlq = engine.template.resolve({"Ref": "QueryDeadLetterQueue"})
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages", []
    )
    assert [json.loads(m["Body"])["query_id"] for m in dead] == [query_id]  # nothing lost
    record = DynamoQueryStore().get(query_id)
    assert record is not None and (record["status"], record["route"]) == ("failed", "dead_letter")
    assert "could not start after 3 deliveries" in record["reason"]
    assert failing.starts == [query_id] * 3  # every delivery tried: the claim was released

    # Redrive (the DLQ runbook): the message goes back to the source queue and now starts, once.
    source = engine.template.resolve({"Ref": "QueryQueue"})
    for message in dead:
        sqs.send_message(QueueUrl=source, MessageBody=message["Body"])
    with clients.override("stepfunctions", CountingStepFunctions()) as working:
        assert engine.deliver("QueryQueue", "PollerFunction") == {"batchItemFailures": []}
    assert working.starts == [query_id]


def test_cache_hit_answers_without_an_execution(engine: LocalEngine) -> None:
    first = json.loads(api.handler(event("api/post_query.json"), None)["body"])["query_id"]
    while engine.deliver("QueryQueue", "PollerFunction") is not None:
        pass
    engine.wait(engine.execution_arn("QueryPipelineStateMachine", first))
    plans_before = sum(1 for i in engine.invocations if i.function == "BrainPlanFunction")
    # The same question, in other case and spacing:
    response = post({"question": "  what SHARE support a ban on abortion by province  "})
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["cached"] is True and body["status"] == "answered"
    assert engine.deliver("QueryQueue", "PollerFunction") is None  # nothing was queued
    assert sum(1 for i in engine.invocations if i.function == "BrainPlanFunction") == plans_before
    record = DynamoQueryStore().get(body["query_id"])
    assert record is not None and record["route"] == "cache" and "Quebec" in record["result"]["markdown"]


def test_cache_expiry_is_checked_on_read(engine: LocalEngine) -> None:
    now = [1_000_000.0]
    cache = DynamoResultCache(clock=lambda: now[0])
    cache.put("k", {"markdown": "x"}, ttl_s=3_600)
    now[0] += 3_599
    assert cache.get("k") == {"markdown": "x"}
    now[0] += 2  # past the TTL: DynamoDB (and moto) may still hold the item; we must not serve it
    assert cache.get("k") is None
    item = engine.clients["dynamodb"].get_item(TableName="ResultCacheTable", Key={"cache_key": {"S": "k"}})
    assert "Item" in item


def test_cache_key_is_the_reading_not_its_wording() -> None:
    # GIVEN one reading written two ways: "not in Quebec" and the nine other provinces
    spec = load_dictionary("ces11")
    others = sorted(v.value for v in spec.main_table.column("province").values if v.value != "QC")
    share = {"intent": "share", "measure": "abortion", "values": ["Yes"], "breakdown": None, "weighted": True}
    negated = {**share, "filters": [{"column": "province", "values": ["QC"], "negate": True}]}
    listed = {**share, "filters": [{"column": "province", "values": list(reversed(others))}]}
    # THEN they share a key; the weighting, a value or a new data version change it
    assert reading_key(negated, spec) == reading_key(listed, spec)
    assert reading_key(negated, spec) != reading_key({**negated, "weighted": False}, spec)
    assert reading_key(negated, spec) != reading_key({**negated, "values": ["No"]}, spec)
    newer = spec.model_copy(update={"data_version": spec.data_version + "-next"})
    assert reading_key(negated, spec) != reading_key(negated, newer)


def test_oversized_state_is_offloaded_and_read_back_intact(engine: LocalEngine) -> None:
    from panelbrain.aws.blobs import offload, resolve
    from panelbrain.aws.budgets import WORKER_INLINE_BYTES

    # GIVEN a worker output larger than a worker's inline budget (10,000 rows of SQL output)
    big = {"columns": ["id", "label"], "rows": [[i, f"respondent {i:06d} " * 3] for i in range(10_000)]}
    assert len(json.dumps(big)) > WORKER_INLINE_BYTES
    # WHEN it is offloaded
    claim = offload(big, budget=WORKER_INLINE_BYTES)
    # THEN the state carries a small claim check, and resolving it gives the same payload back
    assert set(claim) == {"claim_check", "bytes"} and len(json.dumps(claim)) < 200
    assert claim["claim_check"].startswith("s3://payloadbucket/payloads/")
    assert resolve(claim) == big
    small = {"rows": [[1, "a"]]}
    assert offload(small, budget=WORKER_INLINE_BYTES) is small and resolve(small) is small
