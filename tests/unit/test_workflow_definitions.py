"""The ASL files as committed: the seed's timeouts and retries, and what each Catch matches."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panelbrain.local.template import Template

ROOT = Path(__file__).parent.parent.parent


def states(name: str) -> dict[str, Any]:
    definition = json.loads((ROOT / "statemachines" / name).read_text())
    found: dict[str, Any] = {}

    def walk(block: dict[str, Any]) -> None:
        for state_name, state in block["States"].items():
            found[state_name] = state
            for branch in state.get("Branches", []):
                walk(branch)

    walk(definition)
    return found


def test_agents_retry_model_throttles_and_timeouts_once_and_outlast_their_functions() -> None:
    # The seed's timeouts (60 s plan, 120 s workers, two retries) do not fit the Express
    # 5-minute cap (ADR 0014): one retry each, and every Task waits longer than its function runs,
    # so the function's own timeout (Lambda.Unknown to Step Functions) is what the Retry sees.
    s = states("query_pipeline.asl.json")
    template = Template.load(ROOT / "template.yaml")
    for state, function in (
        ("BrainPlan", "BrainPlanFunction"),
        ("SqlWriter", "SqlWriterFunction"),
        ("WeightApplier", "WeightApplierFunction"),
        ("DataProcessor", "DataProcessorFunction"),
        ("BrainSynthesise", "BrainSynthesiseFunction"),
        ("Formatter", "FormatterFunction"),
    ):
        retry = s[state]["Retry"][0]
        assert retry["MaxAttempts"] == 1 and retry["BackoffRate"] == 2.0, state
        assert {"TransientError", "ThrottlingException", "ModelThrottledError", "Lambda.Unknown"} <= set(
            retry["ErrorEquals"]
        ), state
        assert s[state]["TimeoutSeconds"] > template.resources[function]["Properties"]["Timeout"], state


def test_review_waits_on_a_token_with_the_seed_timeouts_by_default() -> None:
    s = states("human_review.asl.json")["RequestReview"]
    assert s["Resource"] == "${LambdaInvokeWaitForTaskToken}"
    assert s["Parameters"]["Payload"]["token.$"] == "$$.Task.Token"
    assert (s["TimeoutSecondsPath"], s["HeartbeatSecondsPath"]) == (
        "$.settings.timeout_s",
        "$.settings.heartbeat_s",
    )
    caught = {tuple(c["ErrorEquals"]): c["Next"] for c in s["Catch"]}
    assert caught[("ReviewRejectedError",)] == "PersistRejected"
    assert caught[("States.Timeout", "States.HeartbeatTimeout")] == "CloseReview"
    parameters = Template.load(ROOT / "template.yaml").parameters
    assert (parameters["ReviewTimeoutSeconds"], parameters["ReviewHeartbeatSeconds"]) == ("3600", "300")
    assert (parameters["AnswerConfidenceThreshold"], parameters["ReviewConfidenceThreshold"]) == (
        "0.8",
        "0.5",
    )


def test_every_path_ends_in_a_persist_state() -> None:
    for name in ("query_pipeline.asl.json", "human_review.asl.json"):
        top_level = json.loads((ROOT / "statemachines" / name).read_text())["States"]
        ends = {state_name: state for state_name, state in top_level.items() if state.get("End")}
        assert ends and all(s["Resource"] == "${PersistFunctionArn}" for s in ends.values()), name


# The last writers: if they fail too, the deadline sweeper closes the query (tests/functional/
# test_deadlines.py).
LAST_RESORT = {"PersistUnhandled", "PersistReviewFailed"}


def tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from tasks(branch["States"])


def test_every_task_catches_everything_into_a_path_that_persists_the_query() -> None:
    for file in ("query_pipeline.asl.json", "human_review.asl.json"):
        top = json.loads((ROOT / "statemachines" / file).read_text())["States"]
        for name, state in tasks(top):
            if name in LAST_RESORT or name not in top:  # a Parallel's branch: the Parallel catches
                continue
            caught = [c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
            assert caught, f"{file}: Task {name} has no Catch on States.ALL"
        for name, state in top.items():
            if state["Type"] == "Parallel":
                assert any("States.ALL" in c["ErrorEquals"] for c in state["Catch"]), f"{file}: {name}"


def test_every_task_whose_function_calls_aws_retries_a_throttle_the_sdk_gave_up_on() -> None:
    # A handler under @aws_errors turns a throttle that outlasted botocore's retries into
    # TransientError; a Task that does not retry it fails its query on one unlucky request
    # (8 of 1,000 reviews failed so with throttle=0.3 in a chaos run: NotifyReview's Task had none).
    template = Template.load(ROOT / "template.yaml")
    for file in ("query_pipeline.asl.json", "human_review.asl.json"):
        for name, state in tasks(json.loads((ROOT / "statemachines" / file).read_text())["States"]):
            reference = state.get("Parameters", {}).get("FunctionName", state["Resource"])
            function = reference.removeprefix("${").removesuffix("Arn}")
            module = template.resources[function]["Properties"]["Handler"].rpartition(".")[0]
            source = (ROOT / "src" / Path(*module.split("."))).with_suffix(".py").read_text()
            if "@aws_errors" not in source:
                continue
            retried = {
                e for r in state.get("Retry", []) if r.get("MaxAttempts", 3) > 0 for e in r["ErrorEquals"]
            }
            assert retried & {"TransientError", "States.ALL"}, f"{file}: {name} ({function})"


def test_a_malformed_input_is_never_retried_by_a_catch_all_retrier() -> None:
    for file in ("query_pipeline.asl.json", "human_review.asl.json"):
        for name, state in tasks(json.loads((ROOT / "statemachines" / file).read_text())["States"]):
            retriers = [r["ErrorEquals"] for r in state.get("Retry", [])]
            if ["States.ALL"] in retriers:
                assert retriers.index(["MalformedStateError"]) < retriers.index(["States.ALL"]), name


@pytest.mark.parametrize(
    "module",
    [
        "plan",
        "sql_writer",
        "weight_applier",
        "data_processor",
        "synthesise",
        "formatter",
        "error_handler",
        "persist",
    ],
)
def test_handlers_import_no_langchain(module: str) -> None:
    loaded = "any(m.startswith('langchain') for m in sys.modules)"
    code = f"import sys, panelbrain.functions.{module}; print({loaded})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    "module",
    ["api", "poller", "start_review", "notify_review", "close_review", "review_api", "review_sweeper"],
)
def test_api_facing_handlers_import_neither_pandas_nor_langchain(module: str) -> None:
    heavy = (
        "sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'langchain', 'langchain_aws', 'numpy'})"
    )
    code = f"import sys, panelbrain.functions.{module}; print({heavy})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
