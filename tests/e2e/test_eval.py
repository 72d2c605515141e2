"""`panelbrain eval --provider offline` over the shipped gold set: the issue's acceptance.

Runs the whole set once (one local engine, ~30 s) through the command a user runs, then holds
the report to the three thresholds. A Bedrock run is recorded with stubbed responses and
replayed with none, as a real Bedrock run is re-scored offline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from panelbrain.eval import runner
from panelbrain.eval.runner import run_eval
from tests.bedrock_stubs import RecordingClient, converse_tool_response


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", "eval", "--provider", "offline", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _listing(report: dict[str, Any], ids: list[str]) -> str:
    rows = [r for r in report["results"] if r["id"] in ids]
    return "\n".join(
        f"{r['id']} {r['question']!r}: {r['route']} at {r['confidence']}; "
        + "; ".join(r["differences"] + r["missing_words"] + ([r["reason"]] if r["reason"] else []))
        for r in rows
    )


def test_no_answer_is_confidently_wrong(report: dict[str, Any]) -> None:
    wrong = report["confidently_wrong"]["ids"]
    assert wrong == [], "answered at or above the threshold and wrong:\n" + _listing(report, wrong)


def test_the_reading_matches_the_gold_reading_for_at_least_95_percent(report: dict[str, Any]) -> None:
    missed = [r["id"] for r in report["results"] if r["kind"] == "answer" and not r["reading_ok"]]
    reading = report["reading"]
    assert reading["answerable"] >= 80
    assert reading["exact"] / reading["answerable"] >= 0.95, (
        f"{reading['exact']}/{reading['answerable']} read as meant; missed:\n" + _listing(report, missed)
    )


def test_every_must_fail_question_fails_with_a_reason(report: dict[str, Any]) -> None:
    missed = report["must_fail"]["missed"]
    assert report["must_fail"]["total"] >= 8
    assert missed == [], "must fail, naming what is unknown:\n" + _listing(report, missed)


def test_every_right_reading_carries_the_data_planes_numbers(report: dict[str, Any]) -> None:
    # The pipeline's table for a question it read right equals the data plane's, cell for cell.
    read_right = [r for r in report["results"] if r["reading_ok"]]
    assert read_right
    off = [r["id"] for r in read_right if not r["estimate_ok"]]
    assert off == [], "right reading, other numbers:\n" + _listing(report, off)


def test_every_question_is_routed_and_counted(report: dict[str, Any]) -> None:
    assert sum(report["routes"].values()) == report["questions"] == len(report["results"])
    assert report["calibration"]["n"] == sum(b["n"] for b in report["calibration"]["bins"])
    # The offline provider calls no model: no tokens, nothing to pay.
    assert report["usage"] == {} and report["cost_usd"] == 0.0


QUESTION = "What share support a ban on abortion by province?"
PLAN = {
    "intent": "share",
    "measure": "abortion",
    "values": ["Yes"],
    "breakdown": "province",
    "filters": [],
    "weighted": True,
    "confidence": 0.95,
    "reasons": ["plain question"],
}
SQL = (
    "SELECT province AS grp, abortion AS category, count(*) AS n FROM ces11 "
    "GROUP BY grp, category ORDER BY grp, category"
)


def test_a_recorded_bedrock_run_replays_without_bedrock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stubbed = RecordingClient()
    stubbed.respond(converse_tool_response("PlanDraft", PLAN, plain=200, out=80))
    stubbed.respond(converse_tool_response("SqlDraft", {"sql": SQL}, plain=300, out=50))
    stubbed.respond(
        converse_tool_response("Narrative", {"answer": "Support varies by province."}, plain=900, out=40)
    )
    # Recording wraps the client the provider would build; here that client is stubbed.
    monkeypatch.setattr(runner, "_live_client", lambda: stubbed.client)
    only = lambda q: q.question == QUESTION  # noqa: E731
    recorded = run_eval("gold", "bedrock", record=tmp_path, only=only)
    assert recorded["recorded"] == len(stubbed.requests) > 0
    assert (tmp_path / "report.json").is_file()

    replayed = run_eval("gold", replay=tmp_path, only=only)
    assert replayed["provider"] == "bedrock"
    assert (replayed["replayed"], replayed["replay_misses"]) == (recorded["recorded"], 0)
    first, again = recorded["results"][0], replayed["results"][0]
    assert first["provider"] == again["provider"] == "bedrock"
    assert first["reading_ok"] and again["reading_ok"]
    for field in ("reading", "confidence", "route", "usage", "estimate_error", "correct"):
        assert again[field] == first[field], field
    assert replayed["usage"] and replayed["usage"] == recorded["usage"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", "eval", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "nope"],
            "error: --set: no gold set 'nope'; sets: followups, followups-holdout, gold, holdout",
        ),
        (["--provider", "offline", "--record", "runs/x"], "use them with --provider bedrock"),
        (["--replay", "no-such-folder"], "record one first with `panelbrain eval --provider bedrock"),
        (["--record", "a", "--replay", "b"], "--record and --replay exclude each other"),
    ],
)
def test_bad_options_are_one_line_errors_before_anything_runs(args: list[str], message: str) -> None:
    result = _cli(*args)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


@pytest.mark.parametrize("name", ["followups", "followups-holdout"])
def test_follow_up_chains_are_read_exactly_and_never_confidently_wrong(name: str) -> None:
    # GIVEN the follow-up chains, each asked as one conversation through the command a user runs
    result = subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", "eval", "--set", name, "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    chains: dict[str, Any] = json.loads(result.stdout)
    # THEN at least 95 % of the turns get the reading the analyst meant, and none is wrong at
    # the answer threshold
    wrong = chains["confidently_wrong"]["ids"]
    assert wrong == [], _listing(chains, wrong)
    reading = chains["reading"]
    missed = [r["id"] for r in chains["results"] if not r["reading_ok"]]
    assert reading["exact"] / reading["answerable"] >= 0.95, _listing(chains, missed)
