"""Zero-downtime deploys, as far as the local engine holds them (docs/deploy.md): the poller and
StartReview start executions through the state machines' aliases, a start through an alias the
template does not create is refused, and the pre-traffic hook asks the known question of the
versions AutoPublishAlias published. The engine runs no CodeDeploy: the alias points at its one
version from the start."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from panelbrain.aws import clients
from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine
from tests.agents import AGENTS

CONFIDENT = "What share support a ban on abortion by province?"  # answered by the formatter
AMBIGUOUS = "What share of people in QC strongly support a ban"  # goes to review
PIPELINE, REVIEW = "QueryPipelineStateMachine", "HumanReviewStateMachine"


class FakeCodeDeploy:
    """Records the verdicts the hook reports (moto does not implement the hook API)."""

    def __init__(self) -> None:
        self.reported: list[dict[str, Any]] = []

    def put_lifecycle_event_hook_execution_status(self, **kwargs: Any) -> dict[str, Any]:
        self.reported.append(kwargs)
        return {"lifecycleEventHookExecutionId": kwargs["lifecycleEventHookExecutionId"]}


def hook_event(deployment: str) -> dict[str, str]:
    """What CodeDeploy sends a lifecycle hook."""
    return {"DeploymentId": deployment, "LifecycleEventHookExecutionId": f"hook-{deployment}"}


def test_the_poller_starts_the_pipeline_through_its_alias(engine: LocalEngine) -> None:
    # GIVEN the template's stack, whose pipeline has AutoPublishAlias live
    engine.clear_table("ResultCacheTable")
    # WHEN a question goes through the API's queue and the poller
    result = ask(engine, CONFIDENT)
    # THEN the execution was started through the alias and runs the version the alias points at
    assert result["status"] == "answered"
    described = engine.describe(engine.execution_arn(PIPELINE, result["query_id"]))
    alias = engine.template.state_machine_alias_arn(PIPELINE)
    assert alias.endswith(":QueryPipelineStateMachine:live")
    assert described["stateMachineAliasArn"] == alias
    assert described["stateMachineVersionArn"] == engine.state_machine_arn(PIPELINE) + ":1"


def test_start_review_starts_the_review_through_its_alias(engine: LocalEngine) -> None:
    # GIVEN an answer uncertain enough to go to review
    engine.clear_table("ResultCacheTable")
    # WHEN the pipeline hands it over (StartReview starts the review workflow)
    result = ask(engine, AMBIGUOUS, review="approve")
    # THEN the review ran on the version behind the review workflow's alias
    assert (result["status"], result["route"]) == ("answered", "review_approved")
    described = engine.describe(engine.execution_arn(REVIEW, result["query_id"]))
    assert described["stateMachineAliasArn"] == engine.template.state_machine_alias_arn(REVIEW)
    assert described["stateMachineVersionArn"] == engine.state_machine_arn(REVIEW) + ":1"


def test_a_start_through_an_alias_the_template_does_not_create_is_refused(engine: LocalEngine) -> None:
    # GIVEN the pipeline's ARN qualified by an alias no deploy created
    wrong = engine.state_machine_arn(PIPELINE) + ":canary"
    # WHEN something starts an execution through it
    with pytest.raises(ClientError) as refused:
        engine.clients["stepfunctions"].start_execution(stateMachineArn=wrong, name="misrouted", input="{}")
    # THEN Step Functions refuses it, naming the ARN, and nothing runs
    assert refused.value.response["Error"]["Code"] == "StateMachineDoesNotExist"
    assert wrong in refused.value.response["Error"]["Message"]


def test_the_pre_traffic_hook_asks_the_known_question_of_the_published_versions(engine: LocalEngine) -> None:
    # GIVEN a deployment's PreTraffic hook event
    before = len(engine.invocations)
    with clients.override("codedeploy", FakeCodeDeploy()) as codedeploy:
        # WHEN CodeDeploy invokes the hook
        outcome = engine.call("PreTrafficCheckFunction", hook_event("d-GOOD"))
    # THEN every agent ran at the published version (not the alias, not $LATEST) ...
    ran = {(i.function, i.qualifier) for i in engine.invocations[before:] if i.function in AGENTS}
    assert {function for function, _ in ran} >= {
        "BrainPlanFunction",
        "BrainSynthesiseFunction",
        "FormatterFunction",
    }
    assert {qualifier for _, qualifier in ran} == {"1"}
    # ... and the hook reported success for this deployment's hook run
    assert outcome["status"] == "Succeeded"
    assert codedeploy.reported == [
        {"deploymentId": "d-GOOD", "lifecycleEventHookExecutionId": "hook-d-GOOD", "status": "Succeeded"}
    ]


def test_the_pre_traffic_hook_fails_the_deployment_when_a_new_version_fails(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a new BrainSynthesise version that fails every invocation
    def broken(function: str, event: dict[str, Any]) -> None:
        if function == "BrainSynthesiseFunction":
            raise RuntimeError("the new synthesiser is broken")

    monkeypatch.setattr(engine, "faults", [broken])
    with clients.override("codedeploy", FakeCodeDeploy()) as codedeploy:
        # WHEN CodeDeploy invokes the hook
        outcome = engine.call("PreTrafficCheckFunction", hook_event("d-BAD"))
    # THEN the hook reports Failed (CodeDeploy then stops and rolls back), saying which version failed
    assert [r["status"] for r in codedeploy.reported] == ["Failed"]
    assert outcome["status"] == "Failed"
    assert "BrainSynthesiseFunction:1 failed: RuntimeError" in outcome["reason"]


def test_a_start_past_the_alias_is_refused_by_the_strict_engine(engine: LocalEngine) -> None:
    # GIVEN the pipeline's unqualified ARN (what the poller used before its alias)
    unqualified = engine.state_machine_arn(PIPELINE)
    reported = len(engine.violations)
    # WHEN something starts an execution through it
    with pytest.raises(ClientError) as refused:
        engine.clients["stepfunctions"].start_execution(stateMachineArn=unqualified, name="past", input="{}")
    # THEN the strict engine refuses it (AWS would run the latest revision past the canary), naming the alias
    assert refused.value.response["Error"]["Code"] == "UnqualifiedStartError"
    assert f"{unqualified}:live" in refused.value.response["Error"]["Message"]
    assert len(engine.violations) == reported + 1


def test_a_lenient_engine_runs_a_start_past_the_alias_and_reports_it(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "strict", False)
    reported = len(engine.violations)
    sfn = engine.clients["stepfunctions"]
    started = sfn.start_execution(
        stateMachineArn=engine.state_machine_arn(PIPELINE), name="lenient", input="{}"
    )
    described = engine.wait(started["executionArn"], timeout_s=60)
    # AWS runs it, associated with no alias and no version; the engine lists it as a violation
    assert "stateMachineAliasArn" not in described and "stateMachineVersionArn" not in described
    assert "the unqualified ARN of a state machine with alias live" in engine.violations[reported]
