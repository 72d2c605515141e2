"""Zero-downtime deploys, pinned on the template as SAM transforms it (what CloudFormation
receives): every function alias is updated by CodeDeploy with alarms that roll it back, the
pipeline's agents go through the pre-traffic hook, and each state machine is a version behind
alias ``live`` that its callers start executions through. docs/deploy.md tells the story."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents import AGENTS
from tests.unit.test_template import transformed

HOOK = "PreTrafficCheckFunction"
MACHINES = ("QueryPipelineStateMachine", "HumanReviewStateMachine")


def resolved(value: Any, stage: str) -> Any:
    """``value`` with the template's IsProd condition decided for ``stage`` and SAM's
    ``Fn::Sub [text, {name: value}]`` of a literal filled in."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, yes, no = value["Fn::If"]
        assert condition == "IsProd", f"unexpected condition {condition}"
        return resolved(yes if stage == "prod" else no, stage)
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], list):
        text, names = value["Fn::Sub"]
        for name, filling in resolved(names, stage).items():
            text = text.replace("${" + name + "}", str(filling))
        return text
    if isinstance(value, dict):
        kept = {k: resolved(v, stage) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(value, list):
        return [resolved(v, stage) for v in value]
    return value


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> tuple[str, dict[str, dict[str, Any]]]:
    stage = str(request.param)
    return stage, transformed({"Stage": stage, "Reviewers": "reviewer@example.com"})["Resources"]


def aliases(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Function logical id -> its AWS::Lambda::Alias."""
    return {
        r["Properties"]["FunctionName"]["Ref"]: r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Alias"
    }


def test_every_function_alias_is_shifted_by_codedeploy_with_rollback_alarms(
    stack: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    stage, resources = stack
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function" and n != HOOK]
    assert len(functions) == 16  # HealthFunction (GET /health, docs/multi-region.md) is the 16th
    found = aliases(resources)
    expected = (
        "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        if stage == "prod"
        else "CodeDeployDefault.LambdaAllAtOnce"
    )
    for function in functions:
        update = found[function].get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate")
        assert update, f"{function}'s alias has no CodeDeployLambdaAliasUpdate"
        assert update["ApplicationName"] == {"Ref": "ServerlessDeploymentApplication"}
        group = resources[update["DeploymentGroupName"]["Ref"]]["Properties"]
        assert resolved(group["DeploymentConfigName"], stage) == expected
        assert group["AutoRollbackConfiguration"]["Enabled"] is True
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
        alarms = [a["Name"] for a in group["AlarmConfiguration"]["Alarms"]]
        assert group["AlarmConfiguration"]["Enabled"] is True
        assert {"Ref": f"{function}NewVersionErrors"} in alarms
        # only the agents go through the pre-traffic hook; the rest (side effects) rely on alarms
        hook = update.get("BeforeAllowTrafficHook")
        assert hook == ({"Ref": HOOK} if function in AGENTS else None), function


def test_each_rollback_alarm_watches_the_version_being_deployed(
    stack: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    _, resources = stack
    for function, alias in aliases(resources).items():
        if function == HOOK:
            continue
        new_version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        metrics = {m["Id"]: m for m in resources[f"{function}NewVersionErrors"]["Properties"]["Metrics"]}
        errors = {d["Name"]: d["Value"] for d in metrics["errors"]["MetricStat"]["Metric"]["Dimensions"]}
        assert errors["ExecutedVersion"] == {"Fn::GetAtt": [new_version, "Version"]}
        assert errors["Resource"] == {"Fn::Sub": "${" + function + "}:live"}
        assert metrics["throttles"]["MetricStat"]["Metric"]["MetricName"] == "Throttles"
        assert metrics["failed"]["ReturnData"] is True


def test_the_pre_traffic_hook_can_be_invoked_by_codedeploy_and_invokes_the_new_versions(
    stack: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    stage, resources = stack
    hook = resources[HOOK]["Properties"]
    # SAM's CodeDeploy role (AWSCodeDeployRoleForLambda) invokes only CodeDeployHook_* functions
    assert hook["FunctionName"]["Fn::Sub"].startswith("CodeDeployHook_")
    # the hook itself is not deployed gradually (it would be its own hook)
    assert "UpdatePolicy" not in aliases(resources)[HOOK]
    assert f"{HOOK}DeploymentGroup" not in resources
    # it is told each agent's new version, and may invoke exactly those and report its verdict
    variables = hook["Environment"]["Variables"]
    found = aliases(resources)
    versions = {f: {"Ref": found[f]["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]} for f in AGENTS}
    assert sorted(map(str, versions.values())) == sorted(
        str(v) for k, v in variables.items() if k.startswith("PRE_TRAFFIC_") and k.endswith("_VERSION")
    )
    assert resolved(variables["PRE_TRAFFIC_PROVIDER"], stage) == ("bedrock" if stage == "prod" else "offline")
    statements = [
        s
        for policy in resources[f"{HOOK}Role"]["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]
    invoke = next(s for s in statements if s["Action"] == "lambda:InvokeFunction")
    assert sorted(map(str, invoke["Resource"])) == sorted(map(str, versions.values()))
    assert any(s["Action"] == "codedeploy:PutLifecycleEventHookExecutionStatus" for s in statements)


def test_each_state_machine_is_a_version_behind_alias_live_with_a_deployment_preference(
    stack: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    stage, resources = stack
    for machine in MACHINES:
        version = resources[f"{machine}Version"]
        assert version["Type"] == "AWS::StepFunctions::StateMachineVersion"
        assert version["Properties"]["StateMachineArn"] == {"Ref": machine}
        # kept on update, so an execution running on the old version finishes on it
        assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")
        alias = resources[f"{machine}Aliaslive"]
        assert alias["Type"] == "AWS::StepFunctions::StateMachineAlias"
        assert alias["Properties"]["Name"] == "live"
        preference = resolved(alias["Properties"]["DeploymentPreference"], stage)
        assert preference["StateMachineVersionArn"] == {"Ref": f"{machine}Version"}
        # the workflow's own failure alarms (the pipeline's also time-outs) roll its alias back
        expected = (
            ["PipelineFailures", "PipelineTimedOut"] if machine == MACHINES[0] else ["HumanReviewFailures"]
        )
        assert preference["Alarms"] == [{"Ref": name} for name in expected]
        if stage == "prod":
            assert (preference["Type"], preference["Percentage"], preference["Interval"]) == ("CANARY", 10, 5)
        else:
            assert preference["Type"] == "ALL_AT_ONCE"
            assert "Percentage" not in preference and "Interval" not in preference


def test_executions_start_through_the_state_machine_aliases(
    stack: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    _, resources = stack
    poller = resources["PollerFunction"]["Properties"]["Environment"]["Variables"]
    start_review = resources["StartReviewFunction"]["Properties"]["Environment"]["Variables"]
    assert poller["PIPELINE_STATE_MACHINE_ARN"] == {"Ref": "QueryPipelineStateMachineAliaslive"}
    assert start_review["REVIEW_STATE_MACHINE_ARN"] == {"Ref": "HumanReviewStateMachineAliaslive"}
