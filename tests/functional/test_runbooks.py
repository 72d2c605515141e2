"""Every alarm in template.yaml leads to a runbook an operator can follow: the alarm names it,
it has the four sections, its dashboard pointer is true of the template's dashboard, and every
`panelbrain ops ...` command it holds runs, as written, on a local engine."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse
from typer.testing import CliRunner

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.cli import app
from panelbrain.local.engine import LocalEngine
from panelbrain.local.server import LocalServer
from panelbrain.models import QueryMessage, TerminalRecord

ROOT = Path(__file__).parent.parent.parent
RUNBOOK = re.compile(r"Runbook: (docs/runbooks/[A-Za-z0-9_.-]+\.md)")
SECTIONS = ("Symptoms", "Dashboard", "What to run", "How to confirm recovery")
# CloudWatch's limit on an alarm's description: "Length Constraints: Minimum length of 0.
# Maximum length of 1024." (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html)
ALARM_DESCRIPTION_MAX = 1024
WIDGET = re.compile(r'^- (\w+): widget "([^"]+)"', re.MULTILINE)
NO_WIDGET = re.compile(r"^- (\w+): no widget; metric (\S+) (\w+)", re.MULTILINE)
NEW_QUERY = re.compile(r"\bas\s+(q-[0-9a-f]{16})\b")


def _template() -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
    return template


TEMPLATE = _template()
ALARMS: dict[str, dict[str, Any]] = {
    name: resource["Properties"]
    for name, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::CloudWatch::Alarm"
}


def runbook_of(alarm: str) -> Path:
    match = RUNBOOK.search(ALARMS[alarm]["AlarmDescription"])
    assert match, f"{alarm}'s AlarmDescription names no runbook ('Runbook: docs/runbooks/<name>.md')"
    return ROOT / match.group(1)


RUNBOOKS = sorted(
    {runbook_of(alarm).name for alarm in ALARMS if RUNBOOK.search(ALARMS[alarm]["AlarmDescription"])}
)


def sections(text: str) -> dict[str, str]:
    """The runbook's ``## `` sections by title, in order."""
    found: dict[str, str] = {}
    for block in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = block.partition("\n")
        found[title.strip()] = body
    return found


def ops_commands(text: str) -> list[str]:
    """Every `panelbrain ops` line inside the runbook's code blocks, in order."""
    blocks = re.findall(r"^\s*```[^\n]*\n(.*?)^\s*```", text, flags=re.MULTILINE | re.DOTALL)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("panelbrain ops ")
    ]


def dashboard_widgets() -> dict[str, set[tuple[str, str]]]:
    """Each widget's title and the (namespace, metric) pairs it draws."""
    body = TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    document = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    return {
        w["properties"]["title"]: {(m[0], m[1]) for m in w["properties"]["metrics"]}
        for w in document["widgets"]
    }


# -- the alarms and their runbooks ----------------------------------------------------------------


def test_the_template_has_alarms_and_a_dashboard() -> None:
    assert len(ALARMS) >= 11 and dashboard_widgets()


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_every_alarm_names_its_runbook_within_cloudwatchs_limit(alarm: str) -> None:
    description = ALARMS[alarm]["AlarmDescription"]
    assert len(description) <= ALARM_DESCRIPTION_MAX
    # botocore's model of the API says the same, so a deploy would not be refused for it
    import botocore.session

    model = botocore.session.get_session().get_service_model("cloudwatch")
    assert model.operation_model("PutMetricAlarm").input_shape.members["AlarmDescription"].metadata[
        "max"
    ] == (ALARM_DESCRIPTION_MAX)
    assert runbook_of(alarm).is_file(), f"{alarm} names {runbook_of(alarm)}, which does not exist"


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_every_runbook_has_the_four_sections(alarm: str) -> None:
    found = sections(runbook_of(alarm).read_text(encoding="utf-8"))
    assert [title for title in found if title in SECTIONS] == list(SECTIONS)
    assert all(found[title].strip() for title in SECTIONS)


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_the_dashboard_section_points_at_the_alarms_widget_or_says_there_is_none(alarm: str) -> None:
    # GIVEN the alarm's metric and the template's dashboard
    props = ALARMS[alarm]
    # A metric-math alarm (a deploy's rollback alarm) reads several metrics: the widget draws one.
    metrics = (
        {(props["Namespace"], props["MetricName"])}
        if "MetricName" in props
        else {
            (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
            for m in props["Metrics"]
            if "MetricStat" in m
        }
    )
    widgets = dashboard_widgets()
    dashboard = sections(runbook_of(alarm).read_text(encoding="utf-8"))["Dashboard"]
    named = {a: title for a, title in WIDGET.findall(dashboard)}
    missing = {a: (namespace, name) for a, namespace, name in NO_WIDGET.findall(dashboard)}
    # THEN the runbook names a widget that draws the alarm's metric...
    if alarm in named:
        assert named[alarm] in widgets, f"no widget titled {named[alarm]!r}; there are {sorted(widgets)}"
        assert metrics & widgets[named[alarm]], f"widget {named[alarm]!r} draws none of {metrics}"
    # ...or says there is none, names the metric, and no widget draws it
    else:
        assert alarm in missing, f"the Dashboard section has no line for {alarm}"
        assert missing[alarm] in metrics
        assert not [title for title, drawn in widgets.items() if metrics & drawn], "a widget does draw it"


# -- the commands the runbooks name, on a local engine ----------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalEngine.running() as engine:
        running = LocalServer(engine, port=0, poll_s=0.02).start()
        yield running
        running.stop()


def _store(server: LocalServer) -> DynamoQueryStore:
    engine = server.engine
    return DynamoQueryStore(engine.template.resolve({"Ref": "QueriesTable"}), engine.clients["dynamodb"])


def invoke(server: LocalServer, args: list[str]) -> Any:
    """``panelbrain *args`` through typer's CliRunner, finding the server by PANELBRAIN_URL (the
    server runs in this process; a `panelbrain serve` runs in its own)."""
    return CliRunner().invoke(app, args, env={"PANELBRAIN_URL": server.url, "PANELBRAIN_STACK": None})


def _status(server: LocalServer, query_id: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = _store(server).get(query_id) or {}
        if record.get("status") in statuses:
            return record
        time.sleep(0.05)
    raise AssertionError(f"{query_id} never reached {statuses}: {_store(server).get(query_id)}")


def _closed_by_the_sweeper(server: LocalServer, query_id: str, question: str) -> None:
    """A query the deadline sweeper closed: what `ops stuck` lists and `ops replay` takes."""
    store = _store(server)
    store.create_query(query_id, {"question": question, "dataset": "ces11", "provider": "offline"})
    store.close_past_deadline(query_id, "queued", time.time() + 1, "deadline: never started within 1800 s")


def _dead_lettered(server: LocalServer, query_id: str, question: str) -> None:
    """A query whose message failed three starts: failed by the dead-letter route, its message
    in the dead-letter queue."""
    store = _store(server)
    store.create_query(query_id, {"question": question, "dataset": "ces11", "provider": "offline"})
    store.put_record(
        TerminalRecord(
            query_id=query_id,
            status="failed",
            route="dead_letter",
            reason="could not start after 3 deliveries",
        )
    )
    engine = server.engine
    engine.clients["sqs"].send_message(
        QueueUrl=engine.template.resolve({"Ref": "QueryDeadLetterQueue"}),
        MessageBody=QueryMessage(query_id=query_id, question=question, dataset="ces11").model_dump_json(),
        MessageAttributes={"query_id": {"DataType": "String", "StringValue": query_id}},
    )


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_every_ops_command_in_the_runbook_runs_on_the_local_engine(server: LocalServer, runbook: str) -> None:
    # GIVEN a local engine with what the runbook's commands act on: a query the sweeper closed
    # (for <query_id>) and, for the dead-letter runbook, a message in the dead-letter queue
    text = (ROOT / "docs" / "runbooks" / runbook).read_text(encoding="utf-8")
    commands = ops_commands(text)
    assert commands, f"{runbook} names no `panelbrain ops` command"
    closed, dead = f"q-closed{RUNBOOKS.index(runbook):08d}", f"q-deadlt{RUNBOOKS.index(runbook):08d}"
    _closed_by_the_sweeper(server, closed, "What share oppose a ban on abortion?")
    if any("dlq --redrive" in c for c in commands):
        _dead_lettered(server, dead, "What share say religion is very important?")
    replayed: list[str] = []
    # WHEN each command runs as written (the local server found through PANELBRAIN_URL)
    for command in commands:
        args = shlex.split(command.replace("<query_id>", closed))[1:]
        result = invoke(server, args)
        # THEN it succeeds and says something
        assert result.exit_code == 0, f"{runbook}: `{command}` failed: {result.output}{result.exception!r}"
        assert result.stdout.strip()
        if args[:2] == ["ops", "replay"]:
            match = NEW_QUERY.search(result.stdout)
            assert match, result.output
            replayed.append(match.group(1))
    # AND what the commands set in motion ends as the runbook says it does
    for query_id in replayed:  # a replay is a new query that is answered; the old one stays failed
        assert _status(server, query_id, {"answered", "needs_review"})["status"] in (
            "answered",
            "needs_review",
        )
        assert (_store(server).get(closed) or {})["status"] == "failed"
    if any("dlq --redrive" in c for c in commands):  # the redriven query starts under its own id
        assert _status(server, dead, {"answered"})["status"] == "answered"
    assert server.intake.enabled, f"{runbook} leaves intake paused"


def test_pause_intake_leaves_questions_in_the_queue_until_resumed(server: LocalServer) -> None:
    assert invoke(server, ["ops", "pause-intake"]).exit_code == 0
    try:
        query_id = "q-0000000000pause1"
        _store(server).create_query(query_id, {"question": "What share support a ban on abortion?"})
        engine = server.engine
        engine.clients["sqs"].send_message(
            QueueUrl=engine.template.resolve({"Ref": "QueryQueue"}),
            MessageBody=QueryMessage(
                query_id=query_id, question="What share support a ban on abortion?", dataset="ces11"
            ).model_dump_json(),
        )
        shown = invoke(server, ["ops", "intake", "--json"])
        document = json.loads(shown.stdout)
        assert document["intake"] == "Disabled" and document["query_queue"]["visible"] == 1
        time.sleep(0.3)  # several of the poller's 0.02 s rounds: none may take it
        assert (_store(server).get(query_id) or {})["status"] == "queued"
    finally:
        assert invoke(server, ["ops", "resume-intake"]).exit_code == 0
    assert _status(server, query_id, {"answered"})["route"] in ("formatter", "cache")


def test_the_ops_route_takes_json_from_this_machine_only(server: LocalServer) -> None:
    def post(headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"{server.url}/local/ops/dlq", data=b"{}", method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert post({"Content-Type": "application/json"}) == 200
    assert post({"Content-Type": "application/x-www-form-urlencoded"}) == 415  # a cross-site form
    assert post({"Content-Type": "application/json", "Origin": "https://evil.example"}) == 403


def _cli(*args: str, env: dict[str, str], drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    kept = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**kept, **env},
    )


def test_ops_without_a_server_or_a_region_says_what_to_do(tmp_path: Path) -> None:
    no_server = _cli("ops", "dlq", "--url", "http://127.0.0.1:9", env={"PANELBRAIN_STACK": ""})
    assert no_server.returncode == 1
    assert no_server.stderr.startswith("error: no `panelbrain serve` answers at http://127.0.0.1:9")
    assert "--stack NAME" in no_server.stderr
    isolated = {
        "PANELBRAIN_STACK": "panelbrain-prod",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
    }
    no_region = _cli("ops", "stuck", env=isolated, drop=("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"))
    assert no_region.returncode == 2
    assert no_region.stderr.strip() == "error: no AWS region for --stack: pass --region or set AWS_REGION"
