"""The operations behind `panelbrain ops`, on a stack as AWS serves it (moto), resolved from
CloudFormation (botocore's Stubber: moto's CloudFormation needs extras this project does not
install), with the tables, queues and event source mapping the template declares."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from samtranslator.yaml_helper import yaml_parse

from panelbrain.aws import clients
from panelbrain.aws.store import DynamoQueryStore
from panelbrain.errors import BadInputError
from panelbrain.models import TerminalRecord
from panelbrain.ops import operate
from tests.cloudformation_stubs import listing

ROOT = Path(__file__).parent.parent.parent
REGION = "us-east-1"
NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
PHYSICAL = {
    "QueryQueue": "panelbrain-prod-QueryQueue-AbC",
    "QueryDeadLetterQueue": "panelbrain-prod-QueryDeadLetterQueue-DeF",
    "QueriesTable": "panelbrain-prod-QueriesTable-1",
    "ReviewsTable": "panelbrain-prod-ReviewsTable-2",
    "PayloadBucket": "panelbrain-prod-payloadbucket-3",
    "PollerFunction": "panelbrain-prod-PollerFunction-4",
    "ReviewSweeperFunction": "panelbrain-prod-ReviewSweeperFunction-5",
}


def _template() -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
    return template


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The stack's queues, tables, bucket, poller and sweeper as the template declares them,
    under CloudFormation-style physical names, in an emulated account."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    clients.reset()
    resources = _template()["Resources"]
    with mock_aws(config={"lambda": {"use_docker": False}}):
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName=PHYSICAL["QueryDeadLetterQueue"])["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName=PHYSICAL["QueryQueue"],
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})},
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for logical in ("QueriesTable", "ReviewsTable"):
            props = resources[logical]["Properties"]
            dynamodb.create_table(
                TableName=PHYSICAL[logical],
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                BillingMode="PAY_PER_REQUEST",
                GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=PHYSICAL["PayloadBucket"])
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="fn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        lambda_ = boto3.client("lambda", region_name=REGION)
        for logical, environment in (
            ("PollerFunction", {}),
            # The deployed sweeper's own deadline: what `ops stuck` must use.
            ("ReviewSweeperFunction", {"QUERY_DEADLINE_S": "900", "REVIEW_TIMEOUT_S": "3600"}),
        ):
            lambda_.create_function(
                FunctionName=PHYSICAL[logical],
                Runtime="python3.12",
                Role=role,
                Handler="index.handler",
                Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
                Environment={"Variables": environment},
            )
        # As SAM maps it: the queue to the function's alias. Created disabled: enabled, the
        # emulator hands every message sent to the queue to the (empty) function at once, and the
        # tests read what reaches the queue.
        lambda_.create_alias(FunctionName=PHYSICAL["PollerFunction"], Name="live", FunctionVersion="$LATEST")
        lambda_.create_event_source_mapping(
            EventSourceArn=queue_arn,
            FunctionName=f"{PHYSICAL['PollerFunction']}:live",
            BatchSize=10,
            Enabled=False,
        )
        yield {
            "sqs": sqs,
            "dynamodb": dynamodb,
            "queue_url": queue_url,
            "dlq_url": dlq_url,
            "lambda": lambda_,
        }
    clients.reset()


def _list_resources_stub(stack_name: str = "panelbrain-prod", without: tuple[str, ...] = ()) -> Any:
    """ListStackResources of the stack in two pages, the way a stack of more than 100 resources
    is answered."""
    physical = {
        **PHYSICAL,
        "QueryQueue": f"https://sqs.{REGION}.amazonaws.com/123456789012/{PHYSICAL['QueryQueue']}",
        "QueryDeadLetterQueue": f"https://sqs.{REGION}.amazonaws.com/123456789012/{PHYSICAL['QueryDeadLetterQueue']}",
    }
    kept = {logical: physical_id for logical, physical_id in physical.items() if logical not in without}
    return listing(stack_name, kept, page_size=4, region=REGION)


def _target(stack: dict[str, Any]) -> operate.Target:
    with clients.override("cloudformation", _list_resources_stub()):
        target = operate.stack_target("panelbrain-prod", region=REGION)
    target.clock = lambda: NOW
    return target


def _query(
    target: operate.Target, query_id: str, *, at: float, question: str = "What share support a ban?"
) -> DynamoQueryStore:
    store = DynamoQueryStore(target.resources.queries_table, target.dynamodb, clock=lambda: at)
    store.create_query(query_id, {"question": question, "dataset": "ces11", "provider": "offline"})
    return store


# -- resolution ----------------------------------------------------------------------------------


def test_stack_resources_follow_every_page_of_list_stack_resources() -> None:
    # GIVEN a stack whose resources CloudFormation lists over two pages
    # WHEN the ops commands resolve it
    resources = operate.stack_resources(_list_resources_stub(), "panelbrain-prod")
    # THEN every physical id is found, the later page's included
    assert resources.poller_function == PHYSICAL["PollerFunction"]
    assert resources.sweeper_function == PHYSICAL["ReviewSweeperFunction"]
    assert resources.queries_table == PHYSICAL["QueriesTable"]
    assert resources.dead_letter_queue.endswith(PHYSICAL["QueryDeadLetterQueue"])


def test_a_secondary_regions_stack_finds_the_query_store_its_functions_use(stack: dict[str, Any]) -> None:
    # GIVEN a SECONDARY stack (docs/multi-region.md): no table of its own, its functions name the
    # global table's replica
    stack["lambda"].update_function_configuration(
        FunctionName=PHYSICAL["ReviewSweeperFunction"],
        Environment={"Variables": {"QUERY_DEADLINE_S": "900", "QUERIES_TABLE": PHYSICAL["QueriesTable"]}},
    )
    # WHEN the ops commands resolve it
    with clients.override("cloudformation", _list_resources_stub(without=("QueriesTable",))):
        target = operate.stack_target("panelbrain-prod", region=REGION)
    # THEN they act on that table
    assert target.resources.queries_table == PHYSICAL["QueriesTable"]
    _query(target, "q-00000000000000aa", at=NOW)
    assert target.queries().get("q-00000000000000aa") is not None


def test_a_stack_without_the_resources_is_named_as_such() -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    stubber.add_response("list_stack_resources", {"StackResourceSummaries": []}, {"StackName": "other"})
    stubber.add_client_error(
        "list_stack_resources",
        "ValidationError",
        "Stack with id nope does not exist",
        expected_params={"StackName": "nope"},
    )
    stubber.activate()
    with pytest.raises(
        operate.StackNotFoundError, match="stack other has no QueryQueue, QueryDeadLetterQueue"
    ):
        operate.stack_resources(cloudformation, "other")
    with pytest.raises(operate.StackNotFoundError, match="--stack nope: Stack with id nope does not exist"):
        operate.stack_resources(cloudformation, "nope")


# -- dead letters --------------------------------------------------------------------------------


def test_dlq_peeks_with_the_recorded_reason_and_leaves_the_messages(stack: dict[str, Any]) -> None:
    target = _target(stack)
    store = _query(target, "q-dead0000000000001", at=NOW - 60)
    store.put_record(
        TerminalRecord(
            query_id="q-dead0000000000001",
            status="failed",
            route="dead_letter",
            reason="could not start after 3 deliveries: AccessDenied",
        )
    )
    body = json.dumps({"query_id": "q-dead0000000000001", "question": "q", "dataset": "ces11"})
    stack["sqs"].send_message(QueueUrl=stack["dlq_url"], MessageBody=body)

    document = operate.dlq(target, peek=5)

    assert document["dead_letter_queue"]["visible"] == 1
    [message] = document["messages"]
    assert message["query_id"] == "q-dead0000000000001"
    assert message["reason"] == "could not start after 3 deliveries: AccessDenied"
    assert operate.dlq(target, peek=0)["dead_letter_queue"]["visible"] == 1  # still there


def test_redrive_moves_body_and_attributes_to_the_query_queue(stack: dict[str, Any]) -> None:
    target = _target(stack)
    for i in range(12):  # more than one receive's worth
        query_id = f"q-dead00000000000{i:02d}"
        stack["sqs"].send_message(
            QueueUrl=stack["dlq_url"],
            MessageBody=json.dumps({"query_id": query_id, "question": "q", "dataset": "ces11"}),
            MessageAttributes={"query_id": {"DataType": "String", "StringValue": query_id}},
        )

    document = operate.dlq(target, redrive=True)

    assert len(document["redriven"]) == 12
    assert document["dead_letter_queue_after"] == {"visible": 0, "in_flight": 0}
    moved = stack["sqs"].receive_message(
        QueueUrl=stack["queue_url"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    for message in moved:
        # the poller reads the query id from the attribute when the body is unreadable
        assert (
            message["MessageAttributes"]["query_id"]["StringValue"] == json.loads(message["Body"])["query_id"]
        )


# -- stuck ---------------------------------------------------------------------------------------


def test_stuck_uses_the_deployed_sweepers_deadline(stack: dict[str, Any]) -> None:
    # GIVEN the deployed sweeper closes queued queries after 900 s (its environment), and two
    # queries queued 1,000 s and 100 s ago, and one the sweeper closed an hour ago
    target = _target(stack)
    _query(target, "q-0000000000000old", at=NOW - 1_000)
    _query(target, "q-0000000000000new", at=NOW - 100)
    closed = _query(target, "q-000000000000shut", at=NOW - 3_600)
    closed.close_past_deadline("q-000000000000shut", "queued", NOW, "deadline: never started within 900 s")

    document = operate.stuck(target)

    # THEN only the one past 900 s is listed as stuck, and the closed one as closed
    assert [q["query_id"] for q in document["past_deadline"]] == ["q-0000000000000old"]
    assert document["past_deadline"][0]["why"] == "never started"
    assert document["deadlines_s"]["queued"] == 900
    assert [q["query_id"] for q in document["closed_by_sweeper"]] == ["q-000000000000shut"]


# -- replay --------------------------------------------------------------------------------------


def test_replay_asks_a_failed_query_again_as_a_new_query(stack: dict[str, Any]) -> None:
    target = _target(stack)
    store = _query(target, "q-00000000000fail1", at=NOW - 4_000, question="What share oppose a ban?")
    store.close_past_deadline("q-00000000000fail1", "queued", NOW, "deadline: never started")

    document = operate.replay(target, "q-00000000000fail1")

    new_id = document["query_id"]
    assert new_id != "q-00000000000fail1"
    record = DynamoQueryStore(target.resources.queries_table, target.dynamodb).get(new_id)
    assert record is not None and record["status"] == "queued"
    assert json.loads(record["request"])["replay_of"] == "q-00000000000fail1"
    [message] = stack["sqs"].receive_message(QueueUrl=stack["queue_url"], MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert json.loads(message["Body"]) == {
        "query_id": new_id,
        "question": "What share oppose a ban?",
        "dataset": "ces11",
        "provider": "offline",
    }
    # the old id stays as it ended
    old = DynamoQueryStore(target.resources.queries_table, target.dynamodb).get("q-00000000000fail1")
    assert old is not None and old["status"] == "failed"


@pytest.mark.parametrize(
    ("status", "route", "age_s", "refusal"),
    [
        ("answered", "formatter", 10, "is answered"),
        ("failed", "dead_letter", 10, "ops dlq --redrive"),
        ("rejected", "review_rejected", 10, "a decision, not a fault"),
        ("queued", None, 100, "within its 900 s deadline"),
    ],
)
def test_replay_refuses_what_it_should_not_ask_again(
    stack: dict[str, Any], status: str, route: str | None, age_s: float, refusal: str
) -> None:
    target = _target(stack)
    store = _query(target, "q-000000000000keep", at=NOW - age_s)
    if route:
        store.put_record(TerminalRecord(query_id="q-000000000000keep", status=status, route=route))  # type: ignore[arg-type]

    with pytest.raises(BadInputError, match=refusal):
        operate.replay(target, "q-000000000000keep")
    assert "Messages" not in stack["sqs"].receive_message(QueueUrl=stack["queue_url"])
    if status != "answered":  # --force asks again anyway; an answer never
        assert operate.replay(target, "q-000000000000keep", force=True)["replayed"] == "q-000000000000keep"


def test_replay_of_an_unknown_query_names_the_table(stack: dict[str, Any]) -> None:
    with pytest.raises(BadInputError, match=f"no query 'q-nope' in {PHYSICAL['QueriesTable']}"):
        operate.replay(_target(stack), "q-nope")


# -- intake --------------------------------------------------------------------------------------


def test_pause_and_resume_switch_the_pollers_event_source_mapping(stack: dict[str, Any]) -> None:
    # GIVEN the poller's mapping, paused
    target = _target(stack)
    assert operate.intake(target)["intake"] == "Disabled"

    # WHEN intake is resumed, then paused
    resumed = operate.intake(target, enabled=True)
    [mapping] = stack["lambda"].list_event_source_mappings()["EventSourceMappings"]
    # THEN the mapping itself is switched each time
    assert resumed["was"] == "Disabled" and resumed["intake"] == mapping["State"] == "Enabled"

    paused = operate.intake(target, enabled=False)
    [mapping] = stack["lambda"].list_event_source_mappings()["EventSourceMappings"]
    assert paused["was"] == "Enabled" and paused["intake"] == mapping["State"] == "Disabled"


def test_intake_refuses_to_guess_between_mappings(stack: dict[str, Any]) -> None:
    # A second mapping from the queue to the poller (a hand-made one): which to switch is unclear.
    target = _target(stack)
    queue_arn = stack["sqs"].get_queue_attributes(QueueUrl=stack["queue_url"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    stack["lambda"].create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=PHYSICAL["PollerFunction"], Enabled=False
    )
    with pytest.raises(operate.IntakeError, match="found 2"):
        operate.intake(target, enabled=False)


# -- cost ----------------------------------------------------------------------------------------


def test_cost_today_prices_the_usage_answers_recorded(stack: dict[str, Any]) -> None:
    # GIVEN today: one answer with Sonnet usage, one from the cache, one failure; and an answer
    # from yesterday
    target = _target(stack)
    usage: list[dict[str, Any]] = [
        {
            "model_id": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "input_tokens": 1_000_000,
            "output_tokens": 100_000,
        }
    ]
    for query_id, status, route, result, at in (
        ("q-000000000answer", "answered", "formatter", {"document": {"usage": usage}}, NOW - 60),
        ("q-0000000000cache", "answered", "cache", {"document": {"usage": usage}}, NOW - 60),
        ("q-00000000000fail", "failed", "error_handler", {"error": "x"}, NOW - 60),
        ("q-000000yesterday", "answered", "formatter", {"document": {"usage": usage}}, NOW - 86_400),
    ):
        store = _query(target, query_id, at=at)
        store.put_record(TerminalRecord(query_id=query_id, status=status, route=route, result=result))  # type: ignore[arg-type]

    document = operate.cost_today(target)

    # THEN only today's priced answer counts: 1M input at USD 3 + 100k output at USD 15 a
    # million, with the regional (us.) premium of the price table
    from panelbrain.pricing import cost_usd

    expected = cost_usd(usage[0]["model_id"], 1_000_000, 100_000, 0, 0)
    assert document["usd"] == pytest.approx(expected)
    assert document["finished"] == {"answered": 2, "rejected": 0, "failed": 1}
    assert document["from_cache"] == 1 and document["not_priced"] == 1
    assert document["day"] == time.strftime("%Y-%m-%d", time.gmtime(NOW))


def test_run_refuses_unknown_commands_and_arguments(stack: dict[str, Any]) -> None:
    target = _target(stack)
    with pytest.raises(BadInputError, match="no ops command 'purge'"):
        operate.run(target, "purge", {})
    with pytest.raises(BadInputError, match="ops dlq: got an unexpected keyword argument 'purge'"):
        operate.run(target, "dlq", {"purge": True})


def test_a_days_queries_are_all_read_past_one_batch(stack: dict[str, Any]) -> None:
    # GIVEN more finished queries today than one BatchGetItem takes (100)
    target = _target(stack)
    store = DynamoQueryStore(target.resources.queries_table, target.dynamodb, clock=lambda: NOW - 60)
    for i in range(130):
        query_id = f"q-{i:016x}"
        store.create_query(query_id, {"question": "q", "dataset": "ces11"})
        store.put_record(TerminalRecord(query_id=query_id, status="failed", route="error_handler"))
    # WHEN today's cost is counted THEN every one of them is
    assert operate.cost_today(target)["finished"]["failed"] == 130
