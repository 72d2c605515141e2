"""`panelbrain local invoke` and `local start-api`: `sam local invoke` / `start-api` on the local
engine, without Docker. Every function runs with each of its events/ files through the command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from panelbrain import cli
from panelbrain.local.engine import LocalEngine, find_template
from panelbrain.local.invoke import environment_overrides, events_folder, function_names, invoke
from panelbrain.local.lambda_rules import api_routes
from panelbrain.local.template import Template

ROOT = Path(__file__).parent.parent.parent
TEMPLATE = Template.load(find_template(ROOT))
CASES = [
    (function, event)
    for function in function_names(TEMPLATE)
    for event in sorted(events_folder(TEMPLATE, function).glob("*.json"))
]
# What each event needs that a fresh engine does not hold; the function still runs and answers.
NEEDS_STATE = {
    # A query record: POST /queries first (see test_get_query_answers_a_query_posted_before).
    "api/get_query": (404, "no query 'q-0123456789abcdef'"),
}


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["panelbrain", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


def test_every_function_has_an_event_to_invoke() -> None:
    missing = [f for f in function_names(TEMPLATE) if not any(case[0] == f for case in CASES)]
    assert not missing, f"functions without an events/ file: {missing}"


@pytest.mark.parametrize(
    ("function", "event"), CASES, ids=[f"{f}-{e.parent.name}/{e.stem}" for f, e in CASES]
)
def test_local_invoke_runs_the_function_with_its_event(
    function: str, event: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a function of the template and one of its sample events
    # WHEN `panelbrain local invoke FUNCTION -e EVENT` runs it
    code, out, err = run_cli(capsys, monkeypatch, "local", "invoke", function, "-e", str(event))
    # THEN it exits 0 and stdout holds the function's response alone, one JSON document
    assert code == 0, err
    response = json.loads(out)
    # ... and the function named ran, on its alias, as its event sources invoke it
    assert re.search(rf"REPORT {function}:live Duration: [0-9.]+ ms", err), err
    key = f"{event.parent.name}/{event.stem}"
    if key in NEEDS_STATE:
        status, message = NEEDS_STATE[key]
        assert (response["statusCode"], json.loads(response["body"])["message"]) == (status, message)
    elif "statusCode" in response:  # an API Gateway proxy response: answered, never a 5xx
        assert response["statusCode"] < 500, response
    if function == "PollerFunction":
        assert response == {"batchItemFailures": []}


def test_get_query_answers_a_query_posted_before() -> None:
    # GIVEN an engine where POST /queries has recorded a query
    events = ROOT / "events" / "api"
    with LocalEngine.running() as engine:
        posted = invoke(engine, "ApiFunction", json.loads((events / "post_query.json").read_text()), {})
        query_id = json.loads(json.loads(posted.payload)["body"])["query_id"]
        get = json.loads((events / "get_query.json").read_text().replace("q-0123456789abcdef", query_id))
        # WHEN get_query.json asks for that query
        answer = invoke(engine, "ApiFunction", get, {})
    # THEN the function answers with the record
    assert answer.error is None
    response = json.loads(answer.payload)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["query_id"] == query_id


def test_an_unknown_function_is_refused_naming_the_valid_ones(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(capsys, monkeypatch, "local", "invoke", "PersistFunctoin")
    assert code == 2 and out == ""
    assert err.startswith("error: 'PersistFunctoin' is not a function of template.yaml; ")
    assert "PersistFunction" in err and "ApiFunction" in err and len(err.splitlines()) == 1


def test_a_function_error_prints_lambdas_error_payload_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no event (sam local invoke then passes {}), which Persist cannot take
    code, out, err = run_cli(capsys, monkeypatch, "local", "invoke", "PersistFunction")
    # THEN stdout holds Lambda's error payload, stderr one error line, and it exits 1
    assert code == 1
    assert json.loads(out)["errorType"] == "MalformedStateError"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: PersistFunction failed: MalformedStateError: persist: its input is malformed: "
        "3 validation errors for TerminalRecord"
    ]


def test_a_bad_event_file_is_refused_before_the_engine_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "event.json"
    broken.write_text('{"query_id": ')
    code, _, err = run_cli(capsys, monkeypatch, "local", "invoke", "PersistFunction", "-e", str(broken))
    assert code == 2
    assert (
        err == f"error: event file {str(broken)!r} is not valid JSON: Expecting value at line 1, column 14\n"
    )


def test_env_vars_follow_sams_precedence_and_template_declarations() -> None:
    # GIVEN an env-vars file with global values, the function's own, and names it does not declare
    document = {
        "Parameters": {"REVIEW_TIMEOUT_S": "10", "PANELBRAIN_STAGE": "qa", "UNDECLARED": "x"},
        "StartReviewFunction": {"REVIEW_TIMEOUT_S": 20, "REVIEW_HEARTBEAT_S": None},
        "StartReviewFunctoin": {"REVIEW_TIMEOUT_S": "30"},
    }
    # WHEN they are resolved for StartReviewFunction
    overrides, notes = environment_overrides(document, TEMPLATE, "StartReviewFunction")
    # THEN the function's own values win, values become strings, undeclared names are left out
    assert overrides == {"REVIEW_TIMEOUT_S": "20", "PANELBRAIN_STAGE": "qa", "REVIEW_HEARTBEAT_S": ""}
    assert any("UNDECLARED is not an environment variable of StartReviewFunction" in n for n in notes)
    assert any("'StartReviewFunctoin' is neither 'Parameters' nor a function" in n for n in notes)


def test_env_vars_apply_to_the_invocation(tmp_path: Path) -> None:
    # GIVEN an env-vars file that points Persist at a table that does not exist
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"PersistFunction": {"QUERIES_TABLE": "NoSuchTable"}}))
    event = ROOT / "events" / "persist" / "pipeline.json"
    # WHEN the command runs (its own process: a handler keeps its store for its process's life)
    command = [sys.executable, "-m", "panelbrain.cli", "local", "invoke", "PersistFunction", "-e", str(event)]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    with_env = subprocess.run(
        [*command, "--env-vars", str(env_vars)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    # THEN the plain run persists, and the overridden one fails on the table it was given
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["written"] is True
    assert with_env.returncode == 1
    assert "ResourceNotFound" in json.loads(with_env.stdout)["errorType"]


def test_start_api_mounts_every_route_of_the_template() -> None:
    from panelbrain.local.ask import api_gateway_event
    from panelbrain.local.server import _routed

    # GIVEN the template's API routes, as sam local start-api mounts them
    routes = api_routes(TEMPLATE)
    assert ("POST", "/queries", "ApiFunction") in routes
    assert ("GET", "/reviews/{review_id}", "ReviewApiFunction") in routes
    for method, resource, _ in routes:
        path = re.sub(r"\{[^}]+\}", "x1", resource)
        # THEN the server behind `panelbrain local start-api` passes each to the function...
        assert _routed(method, path), f"{method} {resource} is not served"
        # ... in an event that names the template's resource, as API Gateway's does
        assert api_gateway_event(method, path)["resource"] == resource
