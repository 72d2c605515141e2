"""One query's journey in the logs, as an operator reads it: ``panelbrain logs QUERY_ID``.

A mid-confidence question is asked over HTTP (``panelbrain serve``'s server), goes to review,
and a reviewer approves it through the signed link in their e-mail. Every function on the way
logged JSON lines keyed by the query id, and both workflows logged their execution events;
``panelbrain logs`` reads them back from the session log file, in the order they happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from panelbrain.cli import app
from tests.e2e.reviewing import Reviewing, forms_in, http, links_in, reviewing, submit, wait_status

# The way through, in order: API, poller, the pipeline's functions, the review's, the last write.
JOURNEY = [
    "ApiFunction",
    "PollerFunction",
    "BrainPlanFunction",
    "BrainSynthesiseFunction",
    "StartReviewFunction",
    "NotifyReviewFunction",
    "ReviewApiFunction",
    "FormatterFunction",
    "PersistFunction",
]
WORKERS = {"SqlWriterFunction", "WeightApplierFunction", "DataProcessorFunction"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Reviewing, Path]]:
    log_file = tmp_path_factory.mktemp("state") / "logs.jsonl"
    with reviewing({"ReviewTimeoutSeconds": "120", "ReviewHeartbeatSeconds": "2"}, log_file=log_file) as r:
        yield r, log_file


def in_order(expected: list[str], seen: list[str]) -> bool:
    """Whether ``expected`` occur in ``seen`` in that order (others may come between)."""
    rest = iter(seen)
    return all(name in rest for name in expected)


def approved_query(r: Reviewing) -> str:
    """Ask a question that goes to review; approve it from the e-mail link; wait for the answer."""
    r.engine.clear_table("ResultCacheTable")
    query_id = submit(r)
    wait_status(r, query_id, {"needs_review"})
    approve = links_in(r.email_for(query_id)["body"])["approve"]
    status, page = http(r.server.url, "GET", approve)
    assert status == 200, page
    (form,) = forms_in(page)
    review_id = approve.split("/reviews/")[1].split("?")[0]
    status, page = http(r.server.url, "POST", f"/reviews/{review_id}", form=dict(form["fields"]))
    assert status == 200, page
    assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"
    r.engine.settle("HumanReviewStateMachine", timeout_s=10)
    return query_id


def test_logs_show_a_reviewed_query_end_to_end_in_order(session: tuple[Reviewing, Path]) -> None:
    r, log_file = session
    # GIVEN a question answered after a reviewer approved it, and another asked beside it
    query_id = approved_query(r)
    other = submit(r, "What share support a ban on abortion?")
    wait_status(r, other, {"answered", "needs_review"})

    # WHEN the operator asks for the query's logs
    result = CliRunner().invoke(app, ["logs", query_id, "--file", str(log_file)])
    document = CliRunner().invoke(app, ["logs", query_id, "--file", str(log_file), "--json"])

    # THEN every function on the way appears, in the order the query went through them
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    sources = [line.split()[1] for line in lines]
    functions = [s for s in sources if s.endswith("Function")]
    assert in_order(JOURNEY, functions), result.output
    assert set(functions) >= WORKERS
    # (the client's reads, GET /queries/{id}, come and go throughout; the last write is the answer)
    writes = [line for line in lines if line.split()[1].endswith("Function") and "query read" not in line]
    assert writes[-1].split()[1] == "PersistFunction"
    assert "status=answered route=review_approved" in writes[-1]
    # ... with both workflows' states between them, in order
    states = [line.split()[2:4] for line in lines if "StateMachine" in line.split()[1]]
    entered = [s[1] for s in states if s[0].endswith("StateEntered")]
    assert entered.index("BrainPlan") < entered.index("StartReview") < entered.index("RequestReview")
    assert entered[-1] == "PersistAnswered"
    assert ["ExecutionSucceeded"] in [s[:1] for s in states]
    # ... and every line is that query's alone: function lines carry its query_id, workflow
    # events its executions (named by it); nothing of the other query
    records = json.loads(document.output)["records"]
    for record in records:
        if record["log_group"].startswith("/aws/lambda/"):
            assert record["message"]["query_id"] == query_id
        else:
            assert record["execution_arn"].endswith(f":{query_id}")
    assert other not in result.output and other not in document.output


def test_every_function_logs_json_lines_with_the_query_id(session: tuple[Reviewing, Path]) -> None:
    r, _ = session
    # GIVEN a reviewed query's run WHEN its functions' lines are read from the engine's logs
    query_id = approved_query(r)
    lines = [
        record
        for record in r.engine.logs
        if record["log_group"].startswith("/aws/lambda/") and query_id in json.dumps(record["message"])
    ]
    # THEN each is a JSON object (Powertools Logger), keyed by the query, with the cold-start flag
    assert {record["source"] for record in lines} >= set(JOURNEY) | WORKERS
    for record in lines:
        message = record["message"]
        assert isinstance(message, dict), message
        assert message["query_id"] == query_id
        assert message["function_name"] == record["source"]
        assert {"level", "timestamp", "cold_start", "function_request_id"} <= set(message)
