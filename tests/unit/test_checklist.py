"""The production checklist: the real template passes every rule, and each rule is tripped by a
deliberately broken copy of the template, an ASL file or samconfig.toml, and by nothing else.

The broken copies are mutation functions over the current files rather than fixture files: the
template is edited every week, and a stored 1,800-line copy would drift from it and start failing
for reasons other than the one it demonstrates. A mutation is the real template minus one thing,
and reads as the defect it plants.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from panelbrain.ops.checklist import RULES, Report, run, worst_case
from panelbrain.ops.stack import Deployment, Machine, Source

ROOT = Path(__file__).parent.parent.parent
PIPELINE = "statemachines/query_pipeline.asl.json"
REVIEW = "statemachines/human_review.asl.json"


@dataclass
class Copy:
    """A mutable copy of what the checklist reads."""

    template: dict[str, Any]
    asl: dict[str, dict[str, Any]]
    environments: dict[str, tuple[str, dict[str, str]]]

    def resource(self, name: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][name]
        return resource

    def properties(self, name: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resource(name)["Properties"]
        return properties

    def parameter(self, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.template["Parameters"][name]
        return spec

    def state(self, uri: str, name: str) -> dict[str, Any]:
        def find(block: dict[str, Any]) -> dict[str, Any] | None:
            for state_name, state in block["States"].items():
                if state_name == name:
                    found_state: dict[str, Any] = state
                    return found_state
                for branch in state.get("Branches", []):
                    found = find(branch)
                    if found is not None:
                        return found
            return None

        state = find(self.asl[uri])
        assert state is not None, f"{uri} has no state {name}: update the fixture"
        return state

    def alarm(self, match: Callable[[dict[str, Any]], bool]) -> str:
        names = [
            n
            for n, r in self.template["Resources"].items()
            if r["Type"] == "AWS::CloudWatch::Alarm" and match(r["Properties"])
        ]
        assert len(names) == 1, f"expected one alarm to break, found {names}: update the fixture"
        return names[0]


@cache
def source() -> Source:
    return Source.load(ROOT)


@cache
def baseline() -> Report:
    return run(ROOT, source())


def broken(mutate: Callable[[Copy], None]) -> Report:
    real = source()
    editable = Copy(copy.deepcopy(real.template), copy.deepcopy(real.asl), copy.deepcopy(real.environments))
    mutate(editable)
    return run(ROOT, Source(ROOT, editable.template, editable.asl, editable.environments))


# --- The deliberately broken copies, one or more per rule ----------------------------------------


def add_step_scaling(c: Copy) -> None:
    c.template["Resources"]["BrainPlanFunctionStepUp"] = {
        "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
        "Properties": {
            "PolicyName": "step-up",
            "PolicyType": "StepScaling",
            "ScalingTargetId": {"Ref": "BrainPlanFunctionConcurrency"},
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 2}],
            },
        },
    }


def drop_api_gateway_account(c: Copy) -> None:
    del c.template["Resources"]["ApiGatewayAccount"]
    c.resource("QueryApi").pop("DependsOn")


def integration_invokes_unqualified(c: Copy) -> None:
    post = c.properties("QueryApi")["DefinitionBody"]["paths"]["/queries"]["post"]
    post["x-amazon-apigateway-integration"]["uri"] = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        "${ApiFunction.Arn}/invocations"
    }


def task_invokes_unqualified(c: Copy) -> None:
    substitutions = c.properties("QueryPipelineStateMachine")["DefinitionSubstitutions"]
    (key,) = [k for k, v in substitutions.items() if v == {"Ref": "BrainPlanFunction.Alias"}]
    substitutions[key] = {"Fn::GetAtt": ["BrainPlanFunction", "Arn"]}


def schedule_invokes_unqualified(c: Copy) -> None:
    c.template["Resources"]["NightlySweep"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "ScheduleExpression": "rate(1 day)",
            "Targets": [{"Arn": {"Fn::GetAtt": ["ReviewSweeperFunction", "Arn"]}, "Id": "nightly"}],
        },
    }


def alarm_topic_aws_managed_key(c: Copy) -> None:
    c.properties("AlarmTopic")["KmsMasterKeyId"] = "alias/aws/sns"


def alarm_key_without_cloudwatch(c: Copy) -> None:
    policy = c.properties("AlarmTopicKey")["KeyPolicy"]
    policy["Statement"] = [s for s in policy["Statement"] if "cloudwatch" not in json.dumps(s)]


def express_without_logging(c: Copy) -> None:
    c.properties("QueryPipelineStateMachine").pop("Logging")


def review_without_tracing(c: Copy) -> None:
    c.properties("HumanReviewStateMachine").pop("Tracing")


def plan_retries_past_budget(c: Copy) -> None:
    c.state(PIPELINE, "BrainPlan")["Retry"][0]["MaxAttempts"] = 6


def drop_timed_out_alarm(c: Copy) -> None:
    del c.template["Resources"][c.alarm(lambda p: p.get("MetricName") == "ExecutionsTimedOut")]


def allow_no_profile(c: Copy) -> None:
    c.parameter("InferenceProfilePrefix")["AllowedValues"].append("none")


def empty_reviewers_default(c: Copy) -> None:
    spec = c.parameter("Reviewers")
    for constraint in ("MinLength", "AllowedPattern", "ConstraintDescription"):
        spec.pop(constraint, None)
    spec["Default"] = ""


def heartbeat_below_sweeps(c: Copy) -> None:
    c.parameter("ReviewHeartbeatSeconds")["MinValue"] = 30


def retry_without_client_timeout(c: Copy) -> None:
    for retrier in c.state(PIPELINE, "BrainPlan")["Retry"]:
        retrier["ErrorEquals"] = [
            e for e in retrier["ErrorEquals"] if e != "Lambda.ClientExecutionTimeoutException"
        ]


def add_unaliased_function(c: Copy) -> None:
    c.template["Resources"]["UnaliasedFunction"] = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Handler": "index.handler",
            "Runtime": "python3.13",
            "Role": {"Fn::GetAtt": ["FormatterFunctionRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
            "Timeout": 5,
        },
    }


def function_without_timeout(c: Copy) -> None:
    c.template["Globals"]["Function"].pop("Timeout", None)
    c.properties("ErrorHandlerFunction").pop("Timeout")


def traced_function_passthrough(c: Copy) -> None:
    c.properties("BrainPlanFunction")["Tracing"] = "PassThrough"


def untraced_function_active(c: Copy) -> None:
    c.properties("FormatterFunction")["Tracing"] = "Active"


def function_outlasts_its_task(c: Copy) -> None:
    c.properties("FormatterFunction")["Timeout"] = max(
        c.state(PIPELINE, "Formatter")["TimeoutSeconds"], c.state(REVIEW, "Formatter")["TimeoutSeconds"]
    )


def review_topic_subscribed_unfiltered(c: Copy) -> None:
    c.template["Resources"]["OpsReviewSubscription"] = {
        "Type": "AWS::SNS::Subscription",
        "Properties": {
            "TopicArn": {"Ref": "ReviewTopic"},
            "Protocol": "email",
            "Endpoint": "ops@example.com",
        },
    }


def queue_without_redrive(c: Copy) -> None:
    c.properties("QueryQueue").pop("RedrivePolicy")


def dead_letter_queue_unwatched(c: Copy) -> None:
    del c.template["Resources"][
        c.alarm(lambda p: p.get("Namespace") == "AWS/SQS" and "QueryDeadLetterQueue" in json.dumps(p))
    ]


def prod_heartbeat_at_timeout(c: Copy) -> None:
    c.environments["prod"][1]["ReviewHeartbeatSeconds"] = c.parameter("ReviewTimeoutSeconds")["Default"]


def token_task_without_heartbeat(c: Copy) -> None:
    c.state(REVIEW, "RequestReview").pop("HeartbeatSecondsPath")


def synthesise_without_retry(c: Copy) -> None:
    c.state(PIPELINE, "BrainSynthesise").pop("Retry")


def plan_without_catch(c: Copy) -> None:
    c.state(PIPELINE, "BrainPlan").pop("Catch")


def answer_path_ends_unpersisted(c: Copy) -> None:
    c.asl[PIPELINE]["States"]["PersistAnswered"] = {"Type": "Succeed"}


def persist_without_retry(c: Copy) -> None:
    c.state(PIPELINE, "PersistOutcome").pop("Retry")


def express_waits_for_a_job(c: Copy) -> None:
    c.state(PIPELINE, "StartReview")["Resource"] = "arn:aws:states:::states:startExecution.sync:2"


def alarm_names_missing_runbook(c: Copy) -> None:
    c.properties("PipelineFailures")["AlarmDescription"] = (
        "Failing. Runbook docs/runbooks/no-such-runbook.md."
    )


def wildcard_s3_read(c: Copy) -> None:
    c.properties("ApiFunction")["Policies"].append(
        {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    )


def substitution_missing(c: Copy) -> None:
    c.properties("HumanReviewStateMachine")["DefinitionSubstitutions"].pop("PersistFunctionArn")


def staging_unknown_profile(c: Copy) -> None:
    c.environments["staging"][1]["InferenceProfilePrefix"] = "mars"


def prod_west_global_profile(c: Copy) -> None:
    c.environments["prod-west"][1]["InferenceProfilePrefix"] = "global"


def formatter_deployed_at_once(c: Copy) -> None:
    c.properties("FormatterFunction")["DeploymentPreference"] = {"Enabled": False}


def formatter_deployed_without_alarms(c: Copy) -> None:
    c.properties("FormatterFunction")["DeploymentPreference"].pop("Alarms")


def hook_named_by_cloudformation(c: Copy) -> None:
    c.properties("PreTrafficCheckFunction").pop("FunctionName")


def poller_starts_the_pipeline_unqualified(c: Copy) -> None:
    variables = c.properties("PollerFunction")["Environment"]["Variables"]
    variables["PIPELINE_STATE_MACHINE_ARN"] = {"Ref": "QueryPipelineStateMachine"}


# rule id -> (the broken copy, text the finding must contain: the resource or state it names)
FIXTURES: list[tuple[str, Callable[[Copy], None], str]] = [
    ("scaling-policy-types", add_step_scaling, "BrainPlanFunctionStepUp is a StepScaling policy on a lambda"),
    ("api-gateway-account", drop_api_gateway_account, "QueryApiStage writes access logs"),
    (
        "api-integrations-invoke-alias",
        integration_invokes_unqualified,
        "QueryApi POST /queries invokes ApiFunction",
    ),
    ("state-machines-invoke-alias", task_invokes_unqualified, "state BrainPlan invokes BrainPlanFunction"),
    ("event-sources-invoke-alias", schedule_invokes_unqualified, "NightlySweep target nightly"),
    ("alarm-topic-key", alarm_topic_aws_managed_key, "AlarmTopic (target of"),
    ("alarm-topic-key", alarm_key_without_cloudwatch, "does not allow cloudwatch.amazonaws.com"),
    ("express-logging", express_without_logging, "QueryPipelineStateMachine is EXPRESS without Logging"),
    ("state-machine-tracing", review_without_tracing, "HumanReviewStateMachine is not traced"),
    ("express-budget", plan_retries_past_budget, "QueryPipelineStateMachine: worst case"),
    ("express-timeout-alarm", drop_timed_out_alarm, "no alarm on AWS/States ExecutionsTimedOut"),
    ("inference-profile-prefix", allow_no_profile, "InferenceProfilePrefix allows 'none'"),
    (
        "data-residency",
        prod_west_global_profile,
        "FailoverRole=SECONDARY in us-west-2 with InferenceProfilePrefix=global",
    ),
    ("reviewers-required", empty_reviewers_default, "Reviewers defaults to empty"),
    (
        "heartbeat-minimum",
        heartbeat_below_sweeps,
        "ReviewHeartbeatSeconds (heartbeat of HumanReviewStateMachine",
    ),
    (
        "lambda-retry-names",
        retry_without_client_timeout,
        "state BrainPlan retries Lambda service errors but not",
    ),
    ("function-alias", add_unaliased_function, "UnaliasedFunction has no alias"),
    ("gradual-deploys", formatter_deployed_at_once, "FormatterFunction alias live changes all at once"),
    (
        "gradual-deploys",
        formatter_deployed_without_alarms,
        "FormatterFunction alias live: its deployment group",
    ),
    ("gradual-deploys", hook_named_by_cloudformation, "PreTrafficCheckFunction is a CodeDeploy hook named"),
    (
        "executions-start-through-alias",
        poller_starts_the_pipeline_unqualified,
        "PollerFunction PIPELINE_STATE_MACHINE_ARN names QueryPipelineStateMachine unqualified",
    ),
    ("function-timeout", function_without_timeout, "ErrorHandlerFunction has no Timeout"),
    ("function-tracing", traced_function_passthrough, "BrainPlanFunction builds a Tracer"),
    ("function-tracing", untraced_function_active, "FormatterFunction traces Active but builds no Tracer"),
    ("task-timeout-over-function", function_outlasts_its_task, "state Formatter times out at"),
    ("sqs-redrive", queue_without_redrive, "QueryQueue has no RedrivePolicy"),
    (
        "review-subscriptions-filtered",
        review_topic_subscribed_unfiltered,
        "OpsReviewSubscription subscribes to review topic ReviewTopic without a FilterPolicy",
    ),
    ("sqs-alarms", dead_letter_queue_unwatched, "QueryDeadLetterQueue has no CloudWatch alarm"),
    ("task-token-timeouts", prod_heartbeat_at_timeout, "is not below its timeout"),
    ("task-token-timeouts", token_task_without_heartbeat, "RequestReview: no HeartbeatSeconds"),
    ("task-retries-lambda-errors", synthesise_without_retry, "state BrainSynthesise does not retry"),
    ("task-catch-persists", plan_without_catch, "state BrainPlan has no Catch on States.ALL"),
    ("paths-end-in-persist", answer_path_ends_unpersisted, "the path through PersistAnswered ends"),
    ("persist-retries-all", persist_without_retry, "state PersistOutcome persists a terminal status"),
    ("express-request-response-only", express_waits_for_a_job, "state StartReview uses"),
    ("alarm-runbooks", alarm_names_missing_runbook, "docs/runbooks/no-such-runbook.md, which does not exist"),
    ("iam-wildcard-resources", wildcard_s3_read, "allows s3:GetObject on Resource '*'"),
    ("machine-definitions", substitution_missing, "HumanReviewStateMachine ${PersistFunctionArn}"),
    ("parameter-values", staging_unknown_profile, "InferenceProfilePrefix='mars' is not one of"),
]


def test_the_real_template_passes_every_rule() -> None:
    report = baseline()
    assert not report.failed, "\n".join(f"{r.rule.id}: {f}" for r in report.failed for f in r.findings)


@pytest.mark.parametrize(
    ("rule_id", "mutate", "names"), FIXTURES, ids=[f"{r}-{m.__name__}" for r, m, _ in FIXTURES]
)
def test_each_broken_copy_trips_exactly_its_rule(
    rule_id: str, mutate: Callable[[Copy], None], names: str
) -> None:
    before = {r.rule.id: r.findings for r in baseline().results}
    after = {r.rule.id: r.findings for r in broken(mutate).results}
    changed = {rule for rule in after if after[rule] != before[rule]}
    assert changed == {rule_id}, {rule: after[rule] for rule in changed}
    new = set(after[rule_id]) - set(before[rule_id])
    assert any(names in finding for finding in new), new


def test_every_rule_has_a_broken_copy() -> None:
    assert {r.id for r in RULES} == {rule_id for rule_id, _, _ in FIXTURES}
    assert len({r.id for r in RULES}) == len(RULES)


def test_a_finding_in_only_some_deployments_names_them() -> None:
    rule = {r.rule.id: r for r in broken(prod_heartbeat_at_timeout).results}["task-token-timeouts"]
    assert rule.findings and all(f.endswith("[in: samconfig prod]") for f in rule.findings)


def test_the_checklist_document_lists_every_rule_with_its_source() -> None:
    text = (ROOT / "docs" / "production-checklist.md").read_text()
    table = text.split("| Rule |", 1)[1].split("\n\n", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")
    }
    assert set(rows) == {r.id for r in RULES}
    for rule in RULES:
        assert rule.source in rows[rule.id], f"{rule.id}: the document cites another source than the code"


# --- The Express worst case, by hand -----------------------------------------------------------


def machine(states: dict[str, Any], start: str = "A") -> tuple[Deployment, Machine]:
    definition = {"StartAt": start, "States": states}
    built = Machine("M", "EXPRESS", definition)
    return Deployment("test", "us-east-1", {}, {}, {}, {}, {"M": built}, {}, ROOT), built


def task(timeout: int, **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:putItem",
        "TimeoutSeconds": timeout,
        **fields,
    }


def test_worst_case_uses_every_retry_backoff_the_slowest_branch_and_the_catch_after_retries() -> None:
    d, m = machine(
        {
            # 1 + 2 + 1 attempts x 10 s, backoff 3 + 6 (x2.0) + 5 (capped by MaxDelaySeconds) = 54 s
            "A": task(
                10,
                Retry=[
                    {"ErrorEquals": ["X"], "MaxAttempts": 2, "IntervalSeconds": 3, "BackoffRate": 2.0},
                    {"ErrorEquals": ["Y"], "MaxAttempts": 1, "IntervalSeconds": 100, "MaxDelaySeconds": 5},
                ],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}],
                Next="P",
            ),
            # slowest branch: defaults MaxAttempts 3, IntervalSeconds 1, BackoffRate 2.0 -> 4 x 5 + 7 = 27 s
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "B1", "States": {"B1": task(20, End=True)}},
                    {"StartAt": "B2", "States": {"B2": task(5, Retry=[{"ErrorEquals": ["Z"]}], End=True)}},
                ],
                "Next": "E",
            },
            "E": task(1, End=True),
            "H": task(50, End=True),
        }
    )
    worst = worst_case(d, m)
    # 54 + max(P 27 + E 1, H 50): the Catch edge after the last retry is the slower way out.
    assert worst.seconds == 104
    assert [leg.state for leg in worst.legs] == ["A", "H"]
    assert worst.legs[0].seconds == 54


def test_worst_case_has_no_bound_on_a_loop_or_a_task_without_a_timer() -> None:
    d, looping = machine(
        {"A": task(1, Next="B"), "B": {"Type": "Choice", "Choices": [{"Next": "A"}], "Default": "A"}}
    )
    assert worst_case(d, looping).seconds is None and "loop" in worst_case(d, looping).problem
    d, untimed = machine({"A": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "End": True}})
    assert worst_case(d, untimed).seconds is None and "no TimeoutSeconds" in worst_case(d, untimed).problem


# --- The command ------------------------------------------------------------------------------


def test_check_prints_each_rule_and_the_worst_case_and_exits_2_naming_the_failure(tmp_path: Path) -> None:
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "statemachines", tmp_path / "statemachines")
    shutil.copytree(ROOT / "docs" / "runbooks", tmp_path / "docs" / "runbooks")
    asl = json.loads((tmp_path / PIPELINE).read_text())
    asl["States"]["PersistOutcome"].pop("Retry")
    (tmp_path / PIPELINE).write_text(json.dumps(asl))

    command = [sys.executable, "-m", "panelbrain.cli", "check", "--root", str(tmp_path)]
    text = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert text.returncode == 2, text.stderr
    assert "FAIL  persist-retries-all" in text.stdout and "PASS  express-budget" in text.stdout
    assert "Express worst case, QueryPipelineStateMachine:" in text.stdout
    assert text.stderr.strip().splitlines() == [
        "error: 1 checklist rule(s) fail: persist-retries-all (see docs/production-checklist.md)"
    ]

    as_json = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    document = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and document["passed"] is False
    failing = [r["id"] for r in document["rules"] if not r["passed"]]
    assert failing == ["persist-retries-all"]
    (worst,) = document["express_worst_case"]
    assert worst["machine"] == "QueryPipelineStateMachine" and 0 < worst["seconds"] <= worst["budget_s"]
