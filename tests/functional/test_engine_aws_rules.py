"""The local engine holds AWS's service rules where moto (5.2.5) is laxer.

Each test makes the engine meet a rule AWS documents and moto alone would let pass: state over
256 KiB, an Express execution past its time limit, ``.waitForTaskToken`` in an Express machine,
a JSONPath that selects nothing, DynamoDB items over 400 KB, SQS messages over the queue's
maximum, SQS visibility timeouts, and scaling policy types per namespace. The small state
machines here invoke a template function (by its alias, as the engine requires) whose handler
the test replaces for the moment.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panelbrain.local.aws_rules import EXPRESS_DURATION_LIMIT_S, STATE_PAYLOAD_LIMIT_BYTES, AwsRules
from panelbrain.local.engine import LocalEngine

FUNCTION = "FormatterFunction"  # any function of the template: its handler is replaced per test
ROLE = "arn:aws:iam::123456789012:role/test"
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
RETRY_ALL = [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 1}]
CAUGHT = {"Type": "Pass", "Result": "caught", "End": True}


@pytest.fixture
def handler(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[dict[str, Any]]]:
    """Replace FUNCTION's handler with one returning ``result`` (or calling it); the list it
    returns records every event the handler received."""
    events: list[dict[str, Any]] = []

    def install(result: Any) -> list[dict[str, Any]]:
        def handle(event: dict[str, Any], context: Any) -> Any:
            events.append(event)
            return result(event) if callable(result) else result

        monkeypatch.setitem(engine.handlers, FUNCTION, handle)
        return events

    return install


_names = iter(range(1_000_000))


def run(
    engine: LocalEngine, states: dict[str, Any], payload: Any = None, kind: str = "STANDARD"
) -> dict[str, Any]:
    """Create a machine of ``states`` (starting at the first) on the engine's moto, run it once,
    and return DescribeExecution's answer with the names of the states entered."""
    sfn = engine.clients["stepfunctions"]
    definition = {"StartAt": next(iter(states)), "States": states}
    arn = sfn.create_state_machine(
        name=f"Rule{next(_names)}", definition=json.dumps(definition), roleArn=ROLE, type=kind
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="run", input=json.dumps(payload or {}))
    described = engine.wait(execution["executionArn"], timeout_s=60)
    described["entered"] = [
        event["stateEnteredEventDetails"]["name"]
        for event in engine.history(execution["executionArn"])
        if "stateEnteredEventDetails" in event
    ]
    return described


def task(engine: LocalEngine, **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": engine.template.alias_arn(FUNCTION), **fields}


# -- 1. state over 256 KiB: States.DataLimitExceeded, which States.ALL does not catch ------------


def test_task_result_over_256_kib_fails_the_execution_past_catch_and_retry(
    engine: LocalEngine, handler: Callable[[Any], list[dict[str, Any]]]
) -> None:
    # GIVEN a handler returning 300 KB, behind Retry and Catch on States.ALL
    calls = handler({"table": "x" * 300_000})
    # WHEN the task runs
    described = run(
        engine, {"Big": task(engine, Retry=RETRY_ALL, Catch=CATCH_ALL, End=True), "Caught": CAUGHT}
    )
    # THEN the execution fails with States.DataLimitExceeded: not retried, not caught
    assert (described["status"], described["error"]) == ("FAILED", "States.DataLimitExceeded")
    assert "Caught" not in described["entered"]
    assert len(calls) == 1


def test_state_limit_is_262144_bytes_inclusive(
    engine: LocalEngine, handler: Callable[[Any], list[dict[str, Any]]]
) -> None:
    envelope = len(json.dumps({"t": ""}, separators=(",", ":")))
    handler({"t": "x" * (STATE_PAYLOAD_LIMIT_BYTES - envelope)})
    assert run(engine, {"Exact": task(engine, End=True)})["status"] == "SUCCEEDED"
    handler({"t": "x" * (STATE_PAYLOAD_LIMIT_BYTES - envelope + 1)})
    assert run(engine, {"Over": task(engine, End=True)})["error"] == "States.DataLimitExceeded"


def test_oversized_branch_fails_the_parallel_state_past_its_catch(
    engine: LocalEngine, handler: Callable[[Any], list[dict[str, Any]]]
) -> None:
    # moto alone reported this as States.Runtime (a ValueError) and a Catch could take it.
    handler({"table": "x" * 300_000})
    branch = {"StartAt": "Worker", "States": {"Worker": task(engine, End=True)}}
    parallel = {"Type": "Parallel", "Branches": [branch], "Catch": CATCH_ALL, "End": True}
    described = run(engine, {"Workers": parallel, "Caught": CAUGHT})
    assert (described["status"], described["error"]) == ("FAILED", "States.DataLimitExceeded")
    assert "Caught" not in described["entered"]


def test_input_over_256_kib_after_parameters_fails_before_the_task_runs(
    engine: LocalEngine, handler: Callable[[Any], list[dict[str, Any]]]
) -> None:
    calls = handler({"ok": True})
    doubled = task(engine, Parameters={"a.$": "$.half", "b.$": "$.half"}, Catch=CATCH_ALL, End=True)
    described = run(engine, {"Doubled": doubled, "Caught": CAUGHT}, {"half": "y" * 140_000})
    assert (described["status"], described["error"]) == ("FAILED", "States.DataLimitExceeded")
    assert calls == []


def test_data_limit_named_in_a_catcher_is_caught(
    engine: LocalEngine, handler: Callable[[Any], list[dict[str, Any]]]
) -> None:
    # "States.ALL ... can't catch" it; a catcher that names the error does.
    handler({"table": "x" * 300_000})
    named = [{"ErrorEquals": ["States.DataLimitExceeded"], "ResultPath": "$.error", "Next": "Caught"}]
    described = run(engine, {"Big": task(engine, Catch=named, End=True), "Caught": CAUGHT})
    assert described["status"] == "SUCCEEDED" and "Caught" in described["entered"]


# -- 2. an Express execution past its limit: TIMED_OUT, uncaught ---------------------------------


@pytest.fixture
def short_express_limit(engine: LocalEngine) -> Iterator[None]:
    assert AwsRules().express_duration_s == EXPRESS_DURATION_LIMIT_S == 300.0  # AWS's five minutes
    engine.rules.express_duration_s = 1.0
    yield
    engine.rules.express_duration_s = EXPRESS_DURATION_LIMIT_S


def test_express_execution_past_its_limit_times_out_and_no_catch_runs(
    engine: LocalEngine, short_express_limit: None
) -> None:
    waiting = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}}}
    states = {
        "Slow": {"Type": "Parallel", "Branches": [waiting], "Catch": CATCH_ALL, "End": True},
        "Caught": CAUGHT,
    }
    described = run(engine, states, kind="EXPRESS")
    assert described["status"] == "TIMED_OUT"
    assert "Caught" not in described["entered"]


def test_standard_execution_has_no_express_limit(engine: LocalEngine, short_express_limit: None) -> None:
    states = {"Wait": {"Type": "Wait", "Seconds": 2, "End": True}}
    assert run(engine, states, kind="STANDARD")["status"] == "SUCCEEDED"


# -- 3. Express machines refuse .sync, .waitForTaskToken and activities -------------------------


@pytest.mark.parametrize(
    ("resource", "refused"),
    [
        ("arn:aws:states:::lambda:invoke.waitForTaskToken", "'.waitForTaskToken' service integration"),
        ("arn:aws:states:::sns:publish.waitForTaskToken", "'.waitForTaskToken' service integration"),
        ("arn:aws:states:::states:startExecution.sync:2", "'.sync' service integration"),
        ("arn:aws:states:us-east-1:123456789012:activity:Review", "activities"),
    ],
)
def test_express_machine_refuses_what_only_standard_supports(
    engine: LocalEngine, resource: str, refused: str
) -> None:
    sfn = engine.clients["stepfunctions"]
    branch = {"StartAt": "Wait", "States": {"Wait": {"Type": "Task", "Resource": resource, "End": True}}}
    definition = json.dumps(
        {"StartAt": "Outer", "States": {"Outer": {"Type": "Parallel", "Branches": [branch], "End": True}}}
    )
    name = f"Express{next(_names)}"
    with pytest.raises(ClientError) as refusal:
        sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE, type="EXPRESS")
    error = refusal.value.response["Error"]
    assert error["Code"] == "InvalidDefinition"
    assert (
        refused in error["Message"] and "/States/Outer/Branches[0]/States/Wait/Resource" in error["Message"]
    )
    assert name in error["Message"]
    # The same definition is a valid STANDARD machine.
    sfn.create_state_machine(name=f"{name}Standard", definition=definition, roleArn=ROLE, type="STANDARD")


def test_express_machine_cannot_be_updated_to_wait_for_a_token(engine: LocalEngine) -> None:
    sfn = engine.clients["stepfunctions"]
    pipeline = engine.state_machine_arn("QueryPipelineStateMachine")  # the template's Express one
    waits = {
        "StartAt": "Notify",
        "States": {
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "End": True,
            }
        },
    }
    with pytest.raises(ClientError, match=r"does not support '\.waitForTaskToken'"):
        sfn.update_state_machine(stateMachineArn=pipeline, definition=json.dumps(waits))


# -- 4. a JSONPath that selects nothing: States.Runtime, uncaught --------------------------------


@pytest.mark.parametrize("field", ["Parameters", "ResultSelector"])
def test_missing_path_fails_with_states_runtime_past_catch_and_retry(
    engine: LocalEngine, handler: Callable[[Any], list[dict[str, Any]]], field: str
) -> None:
    handler({"ok": True})
    state = task(engine, **{field: {"x.$": "$.missing"}}, Retry=RETRY_ALL, Catch=CATCH_ALL, End=True)
    described = run(engine, {"Reads": state, "Caught": CAUGHT}, {"present": 1})
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert "The JSONPath '$.missing' specified for the field 'x.$' could not be found" in described["cause"]
    assert "Caught" not in described["entered"]


# -- 5. DynamoDB items over 400 KB, SQS messages over the queue's maximum -------------------------


def test_dynamodb_refuses_items_over_400_kb(engine: LocalEngine) -> None:
    # moto holds this one already (at 405,000 bytes; AWS: 400 KB = 409,600 bytes).
    dynamodb = engine.clients["dynamodb"]
    key = {"cache_key": {"S": "big"}}
    dynamodb.put_item(TableName="ResultCacheTable", Item={**key, "v": {"S": "x" * 300_000}})
    with pytest.raises(ClientError, match="Item size has exceeded the maximum allowed size") as refusal:
        dynamodb.put_item(TableName="ResultCacheTable", Item={**key, "v": {"S": "x" * 420_000}})
    assert refusal.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError, match="Item size to update has exceeded the maximum allowed size"):
        dynamodb.update_item(
            TableName="ResultCacheTable",
            Key=key,
            UpdateExpression="SET w = :w",
            ExpressionAttributeValues={":w": {"S": "x" * 150_000}},
        )
    engine.clear_table("ResultCacheTable")


def test_sqs_counts_bytes_and_attributes_against_the_queues_maximum(engine: LocalEngine) -> None:
    sqs = engine.clients["sqs"]
    url = engine.template.resolve({"Ref": "QueryQueue"})
    limit = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"][
            "MaximumMessageSize"
        ]
    )
    assert limit == 262_144  # the template's cap (the execution input a message becomes); SQS allows 1 MiB
    refusals: list[dict[str, Any]] = [
        {"MessageBody": "é" * (limit // 2 + 1)},  # fewer characters than the limit, more bytes
        {
            "MessageBody": "x" * (limit - 10),
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "query"}},
        },
    ]
    for message in refusals:
        with pytest.raises(ClientError, match=f"Message must be shorter than {limit} bytes") as refusal:
            sqs.send_message(QueueUrl=url, **message)
        assert refusal.value.response["Error"]["Code"] == "InvalidParameterValue"
    sqs.send_message(QueueUrl=url, MessageBody="x" * (limit - 100))
    engine.empty_queue("QueryQueue")


# -- 6. SQS visibility timeouts on redelivery ---------------------------------------------------


def test_failed_record_stays_hidden_for_the_visibility_timeout(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a poller that reports every record as failed
    def fail_all(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    monkeypatch.setitem(engine.handlers, "PollerFunction", fail_all)
    engine.empty_queue("QueryQueue")
    url = engine.template.resolve({"Ref": "QueryQueue"})
    engine.clients["sqs"].send_message(QueueUrl=url, MessageBody=json.dumps({"query_id": "q_visibility"}))
    visibility = int(engine.template.resources["QueryQueue"]["Properties"]["VisibilityTimeout"])
    # WHEN the first delivery fails
    assert engine.deliver("QueryQueue", "PollerFunction") is not None
    # THEN the record is hidden until the queue's visibility timeout has passed, then comes back
    assert engine.deliver("QueryQueue", "PollerFunction") is None
    engine.rules.advance_queue_clock(visibility - 5)
    assert engine.deliver("QueryQueue", "PollerFunction") is None
    engine.rules.advance_queue_clock(10)
    redelivered = engine.clients["sqs"].receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert [json.loads(m["Body"])["query_id"] for m in redelivered] == ["q_visibility"]
    assert redelivered[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    engine.rules.advance_queue_clock(visibility + 1)
    engine.empty_queue("QueryQueue")


# -- 7. Application Auto Scaling: policy types per namespace ------------------------------------


def test_template_scaling_is_registered_with_application_auto_scaling(engine: LocalEngine) -> None:
    scaling = engine.clients["application-autoscaling"]
    targets = scaling.describe_scalable_targets(ServiceNamespace="lambda")["ScalableTargets"]
    declared = engine.template.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == len(declared) > 0
    assert {t["ResourceId"] for t in targets} == {
        engine.template.resolve(r["Properties"]["ResourceId"]) for r in declared.values()
    }
    policies = scaling.describe_scaling_policies(ServiceNamespace="lambda")["ScalingPolicies"]
    assert len(policies) == len(engine.template.of_type("AWS::ApplicationAutoScaling::ScalingPolicy"))
    assert {p["PolicyType"] for p in policies} == {"TargetTrackingScaling"}
    actions = scaling.describe_scheduled_actions(ServiceNamespace="lambda")["ScheduledActions"]
    assert {a["ScheduledActionName"] for a in actions} == {"business-hours", "off-hours", "weekends"}


def test_step_scaling_on_a_lambda_target_is_refused(engine: LocalEngine) -> None:
    scaling = engine.clients["application-autoscaling"]
    target = scaling.describe_scalable_targets(ServiceNamespace="lambda")["ScalableTargets"][0]
    step = {
        "AdjustmentType": "ChangeInCapacity",
        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 5}],
    }
    with pytest.raises(ClientError, match="StepScaling is not supported for service namespace lambda"):
        scaling.put_scaling_policy(
            PolicyName="step-up",
            PolicyType="StepScaling",
            ServiceNamespace="lambda",
            ResourceId=target["ResourceId"],
            ScalableDimension=target["ScalableDimension"],
            StepScalingPolicyConfiguration=step,
        )
    with pytest.raises(ClientError, match="No scalable target registered") as missing:
        scaling.put_scaling_policy(
            PolicyName="nowhere",
            PolicyType="TargetTrackingScaling",
            ServiceNamespace="lambda",
            ResourceId="function:Unregistered:live",
            ScalableDimension="lambda:function:ProvisionedConcurrency",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 0.7,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
                },
            },
        )
    assert missing.value.response["Error"]["Code"] == "ObjectNotFoundException"


# -- a task token closes when its task stops waiting: later callbacks answer TaskTimedOut ------


def waiting_task(engine: LocalEngine, timeout_s: int) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": engine.template.alias_arn(FUNCTION),
            "Payload": {"token.$": "$$.Task.Token"},
        },
        "TimeoutSeconds": timeout_s,
        "Catch": CATCH_ALL,
        "End": True,
    }


def test_a_callback_after_the_task_timed_out_is_refused(engine: LocalEngine, handler: Any) -> None:
    # GIVEN a task that waited for its token and timed out, its execution still running on
    import threading

    events = handler({})
    sfn = engine.clients["stepfunctions"]
    refused: list[str] = []

    def answer_late() -> None:
        while not events:
            threading.Event().wait(0.05)
        threading.Event().wait(1.5)  # past the task's 1 s timeout, inside the 3 s Wait after it
        # WHEN the decision arrives late
        try:
            sfn.send_task_success(taskToken=events[0]["token"], output="{}")
        except ClientError as exc:
            refused.append(exc.response["Error"]["Code"])

    late = threading.Thread(target=answer_late)
    late.start()
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Cleanup"}]
    cleanup = {"Type": "Wait", "Seconds": 3, "Next": "Caught"}
    described = run(
        engine, {"Wait": {**waiting_task(engine, 1), "Catch": catch}, "Cleanup": cleanup, "Caught": CAUGHT}
    )
    late.join()
    # THEN AWS's answer: the task is closed (moto alone accepts it, and nothing changes)
    assert described["entered"] == ["Wait", "Cleanup", "Caught"]
    assert refused == ["TaskTimedOut"]


def test_a_second_callback_on_an_answered_task_is_refused(engine: LocalEngine, handler: Any) -> None:
    # GIVEN a task that got its answer
    import threading

    events = handler({})
    sfn = engine.clients["stepfunctions"]

    def answer_when_asked() -> None:
        while not events:
            threading.Event().wait(0.05)
        sfn.send_task_success(taskToken=events[0]["token"], output='{"decision": "approved"}')

    answering = threading.Thread(target=answer_when_asked)
    answering.start()
    described = run(engine, {"Wait": waiting_task(engine, 30), "Caught": CAUGHT})
    answering.join()
    assert described["status"] == "SUCCEEDED" and described["entered"] == ["Wait"]
    # WHEN the same token is answered again
    with pytest.raises(ClientError) as refused:
        sfn.send_task_failure(taskToken=events[0]["token"], error="ReviewRejectedError")
    # THEN it is refused: a task is closed once (the execution has ended: no task waits)
    assert refused.value.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken")


# -- conditional writes to one item are decided one at a time ----------------------------------


def test_two_concurrent_conditional_writes_to_one_item_cannot_both_land(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from moto.dynamodb import models

    # GIVEN moto's condition check made slow, so two writers both check before either writes
    parser = models.create_condition_expression_parser

    def slow_parser(*args: Any, **kwargs: Any) -> Any:
        built = parser(*args, **kwargs)
        parse = built.parse

        def slow_parse() -> Any:
            condition = parse()
            check = condition.expr

            def slow_check(item: Any) -> Any:
                verdict = check(item)
                threading.Event().wait(0.3)
                return verdict

            condition.expr = slow_check
            return condition

        built.parse = slow_parse
        return built

    monkeypatch.setattr(models, "create_condition_expression_parser", slow_parser)
    dynamodb = engine.clients["dynamodb"]
    table = engine.template.resolve({"Ref": "QueriesTable"})
    dynamodb.put_item(TableName=table, Item={"query_id": {"S": "q-race"}, "status": {"S": "started"}})
    landed: list[str] = []

    def finish(status: str) -> None:
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"query_id": {"S": "q-race"}},
                UpdateExpression="SET #s = :s",
                ConditionExpression="#s = :started",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": status}, ":started": {"S": "started"}},
            )
            landed.append(status)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"

    # WHEN two writers end the same query at once
    writers = [threading.Thread(target=finish, args=(s,)) for s in ("answered", "failed")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    # THEN exactly one landed, as DynamoDB decides each condition against the item as written
    assert len(landed) == 1


def test_a_callback_after_the_state_timed_out_while_heartbeats_arrived_is_refused(
    engine: LocalEngine, handler: Any
) -> None:
    import threading
    import time

    # GIVEN a task kept alive by heartbeats until its state's TimeoutSeconds passed (moto's
    # waiting thread then still holds the token open until its next heartbeat wait ends)
    events = handler({})
    sfn = engine.clients["stepfunctions"]
    refused: list[str] = []

    def beat_then_answer_late() -> None:
        while not events:
            threading.Event().wait(0.05)
        token, started = events[0]["token"], time.monotonic()
        while time.monotonic() - started < 1.6:
            with contextlib.suppress(ClientError):
                sfn.send_task_heartbeat(taskToken=token)
            threading.Event().wait(0.3)
        threading.Event().wait(max(0.0, 2.3 - (time.monotonic() - started)))
        # WHEN the decision arrives just after the state timed out, before a heartbeat was due
        try:
            sfn.send_task_success(taskToken=token, output="{}")
        except ClientError as exc:
            refused.append(exc.response["Error"]["Code"])

    late = threading.Thread(target=beat_then_answer_late)
    late.start()
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Cleanup"}]
    state = {**waiting_task(engine, 2), "HeartbeatSeconds": 1, "Catch": catch}
    cleanup = {"Type": "Wait", "Seconds": 3, "Next": "Caught"}
    described = run(engine, {"Wait": state, "Cleanup": cleanup, "Caught": CAUGHT})
    late.join()
    # THEN it is refused: the task stopped waiting when its state timed out
    assert described["entered"] == ["Wait", "Cleanup", "Caught"]
    assert refused == ["TaskTimedOut"]


def test_a_callback_while_another_execution_is_starting_reaches_its_task(
    engine: LocalEngine, handler: Any
) -> None:
    import threading
    from types import SimpleNamespace

    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    # GIVEN a task waiting for its token, and another execution that has just started (its
    # evaluation environment not built yet)
    events = handler({})
    sfn = engine.clients["stepfunctions"]
    backend = stepfunctions_parser_backends["123456789012"][engine.template.region]
    starting = SimpleNamespace(status=ExecutionStatus.RUNNING, exec_worker=SimpleNamespace(env=None))
    answered: list[str] = []

    def answer() -> None:
        while not events:
            threading.Event().wait(0.05)
        machine = next(m for m in backend.state_machines if m.executions)
        machine.executions.insert(0, starting)
        try:
            # WHEN the decision arrives
            sfn.send_task_success(taskToken=events[0]["token"], output='{"ok": true}')
            answered.append("ok")
        finally:
            machine.executions.remove(starting)

    answering = threading.Thread(target=answer)
    answering.start()
    described = run(engine, {"Wait": waiting_task(engine, 30), "Caught": CAUGHT})
    answering.join()
    # THEN it reached the waiting task (moto alone failed inside with AttributeError)
    assert answered == ["ok"] and described["status"] == "SUCCEEDED"
