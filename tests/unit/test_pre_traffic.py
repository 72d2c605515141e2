"""The pre-traffic check's verdicts, against fake agents: an answer of the wrong shape fails the
deployment naming what was wrong, and every outcome reaches CodeDeploy (an unreported hook holds
the deployment until CodeDeploy gives up on it)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from panelbrain.aws import clients
from panelbrain.aws.pre_traffic import (
    VERSION_VARIABLES,
    PreTrafficCheckError,
    lambda_invoker,
    query_id_for,
    run_question,
)
from panelbrain.functions import pre_traffic_check

VERSIONS = {agent: f"arn:aws:lambda:us-east-1:123456789012:function:{agent}:7" for agent in VERSION_VARIABLES}
PLAN = {"query_id": "q", "needs": {"sql_writer": True, "weight_applier": False, "data_processor": True}}
SYNTHESIS = {"route": "answer", "confidence": 0.9, "table": [{"province": "QC", "share": 0.4}]}


def agents(**answers: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    """Fake agents answering by role (overridable per role); records each call."""
    calls: list[tuple[str, dict[str, Any]]] = []
    default = {"plan": PLAN, "synthesise": SYNTHESIS, "formatter": {"markdown": "| QC | 40 % |"}}
    by_version = {VERSIONS[role]: answers.get(role, default.get(role, {"worker": role})) for role in VERSIONS}

    def invoke(function: str, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append((function, payload))
        return by_version[function]

    return calls, invoke


def test_the_question_walks_the_pipeline_path_at_the_given_versions() -> None:
    calls, invoke = agents()
    outcome = run_question(invoke, VERSIONS, query_id="pre-traffic-d-1", provider="offline")
    # BrainPlan gets the query; only the workers the plan needs run; skipped ones are marked
    assert [f for f, _ in calls] == [
        VERSIONS[r] for r in ("plan", "sql_writer", "data_processor", "synthesise", "formatter")
    ]
    assert calls[0][1]["question"] and calls[0][1]["provider"] == "offline"
    workers = calls[3][1]["workers"]
    assert workers[1] == {"worker": "weight_applier", "skipped": True}
    assert (outcome.route, outcome.confidence) == ("answer", 0.9)


@pytest.mark.parametrize(
    ("answers", "named"),
    [
        ({"plan": {"needs": {"sql_writer": "yes"}}}, "BrainPlan returned no boolean needs"),
        ({"plan": {"needs": dict.fromkeys(PLAN["needs"], False)}}, "asked for no worker"),
        ({"synthesise": {**SYNTHESIS, "route": "maybe"}}, "BrainSynthesise returned route 'maybe'"),
        ({"synthesise": {**SYNTHESIS, "confidence": 1.7}}, "confidence 1.7"),
        ({"synthesise": {**SYNTHESIS, "table": []}}, "no table"),
        ({"formatter": {"markdown": ""}}, "Formatter returned no markdown"),
    ],
)
def test_an_answer_of_the_wrong_shape_fails_the_check_naming_it(answers: dict[str, Any], named: str) -> None:
    _, invoke = agents(**answers)
    with pytest.raises(PreTrafficCheckError, match=named):
        run_question(invoke, VERSIONS, query_id="q", provider="offline")


class Verdicts:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    def put_lifecycle_event_hook_execution_status(self, **kwargs: Any) -> dict[str, Any]:
        self.statuses.append(kwargs["status"])
        return {}


def test_a_hook_that_cannot_run_the_check_still_reports_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a hook whose environment lacks the versions to test (a template regression)
    for name in VERSION_VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    with clients.override("codedeploy", Verdicts()) as codedeploy:
        # WHEN CodeDeploy invokes it
        outcome = pre_traffic_check.handler(
            {"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "h-1"}, None
        )
    # THEN it reports Failed rather than leaving the deployment waiting, and says why
    assert codedeploy.statuses == ["Failed"]
    assert "PRE_TRAFFIC_PLAN_VERSION" in outcome["reason"]


def test_query_ids_keep_to_the_query_id_alphabet() -> None:
    assert query_id_for("d-AB/CD:EF") == "pre-traffic-d-AB-CD-EF"
    assert len(query_id_for("d-" + "X" * 100)) == 64


class FlakyLambda:
    """A Lambda client whose invocations answer the given (errorType or None) in turn."""

    def __init__(self, *errors: str | None) -> None:
        self.errors, self.calls = list(errors), 0

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        error = self.errors.pop(0)
        body = {"errorType": error, "errorMessage": "slow down"} if error else {"ok": True}
        return {
            "Payload": io.BytesIO(json.dumps(body).encode()),
            **({"FunctionError": "Unhandled"} if error else {}),
        }


def test_a_passing_throttle_is_retried_as_the_workflow_would() -> None:
    client = FlakyLambda("TransientError", None)
    assert lambda_invoker(client, backoff_s=0)("fn:7", {}) == {"ok": True}
    assert client.calls == 2


def test_a_failure_that_is_not_transient_fails_at_once_naming_the_version_and_error() -> None:
    client = FlakyLambda("ValidationError", None)
    with pytest.raises(PreTrafficCheckError, match="fn:7 failed: ValidationError: slow down"):
        lambda_invoker(client, backoff_s=0)("fn:7", {})
    assert client.calls == 1
