"""The chaos ledger: each way a query can end badly is detected, and a short faulted run on the
engine accounts for every query it submitted.

The ledger is checked on hand-made states of the query store, the review table and the
executions (one per kind of failure); the short run goes through the real local path.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from panelbrain.errors import BadInputError
from panelbrain.ops.chaos import (
    ISSUE_RATES,
    PIPELINE,
    REVIEW,
    ChaosConfig,
    Injection,
    QueryFacts,
    draw,
    failure_line,
    judge,
    ledger,
    parse_faults,
    run,
)


def record(status: str, route: str | None = None, *terminal_at: float) -> dict[str, Any]:
    history = [{"status": "queued", "at": 100.0}, {"status": "started", "at": 100.5}]
    history += [{"status": status, "at": at} for at in terminal_at]
    return {"status": status, "route": route, "history": history}


def review(status: str, level: int = 1, approver: str | None = None) -> dict[str, Any]:
    decided = {"approved": "approved", "rejected": "rejected", "timed_out": "timed_out"}.get(status)
    decision = (
        {"decision": decided, "approver": approver or "system", "at": 1.0, "channel": "web"}
        if decided
        else None
    )
    return {"review_id": f"rv_{level}", "level": level, "status": status, "decision": decision}


def facts(**fields: Any) -> QueryFacts:
    return QueryFacts(query_id="q-1", submitted_at=100.0, **fields)


# GIVEN the three sources agree WHEN the ledger judges THEN the query has one terminal state.
AGREEING = [
    facts(record=record("answered", "formatter", 102.0), executions={PIPELINE: ["SUCCEEDED"]}),
    facts(
        record=record("answered", "review_approved", 110.0),
        reviews=[review("approved", approver="alice@example.com")],
        executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["SUCCEEDED"]},
    ),
    facts(
        record=record("rejected", "review_timeout", 120.0),
        reviews=[review("timed_out")],
        executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["SUCCEEDED"]},
    ),
    facts(record=record("failed", "error_handler", 101.0), executions={PIPELINE: ["SUCCEEDED"]}),
    facts(record=record("failed", "dead_letter", 130.0)),  # a poison message: never started
    # Approved, then the review workflow failed to format or record the answer: it says so.
    facts(
        record=record("failed", "review_failed", 115.0),
        reviews=[review("approved", approver="alice@example.com")],
        executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["SUCCEEDED"]},
    ),
]


@pytest.mark.parametrize("agreeing", AGREEING, ids=lambda f: str(f.record and f.record["route"]))
def test_sources_that_agree_give_one_terminal_state(agreeing: QueryFacts) -> None:
    verdict = judge(agreeing)
    assert verdict.outcome == agreeing.record["status"]  # type: ignore[index]
    assert (verdict.stuck, verdict.duplicated, verdict.mismatched) == ([], [], [])
    assert verdict.seconds == agreeing.record["history"][-1]["at"] - 100.0  # type: ignore[index]


# GIVEN each kind of failure WHEN the ledger judges THEN it is named, with why.
FAILURES = {
    "lost: accepted, nothing in the store": (facts(record=None), "lost", "no item in the query store"),
    "stuck: claimed, never started": (facts(record=record("started")), "stuck", "status 'started'"),
    "stuck: waiting for a review that is gone": (
        facts(record=record("needs_review"), executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["FAILED"]}),
        "stuck",
        "status 'needs_review'",
    ),
    "stuck: terminal but an execution still runs": (
        facts(record=record("failed", "error_handler", 101.0), executions={PIPELINE: ["RUNNING"]}),
        "stuck",
        "still RUNNING",
    ),
    "stuck: terminal but a review still open": (
        facts(record=record("failed", "deadline", 101.0), reviews=[review("open")]),
        "stuck",
        "still open",
    ),
    "duplicated: two pipeline runs": (
        facts(
            record=record("answered", "formatter", 102.0), executions={PIPELINE: ["SUCCEEDED", "SUCCEEDED"]}
        ),
        "duplicated",
        "2 QueryPipelineStateMachine executions",
    ),
    "duplicated: two reviews at one level": (
        facts(
            record=record("rejected", "review_timeout", 120.0),
            reviews=[review("timed_out"), review("timed_out")],
            executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["SUCCEEDED"]},
        ),
        "duplicated",
        "2 reviews at level 1",
    ),
    "duplicated: two terminal writes": (
        facts(record=record("failed", "error_handler", 101.0, 102.0), executions={PIPELINE: ["SUCCEEDED"]}),
        "duplicated",
        "2 terminal writes",
    ),
    "mismatched: approved in the review table, rejected in the store": (
        facts(
            record=record("rejected", "review_timeout", 120.0),
            reviews=[review("approved", approver="alice@example.com")],
            executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["SUCCEEDED"]},
        ),
        "mismatched",
        "a reviewer approved, the query store says rejected",
    ),
    "mismatched: approved in the store, no approval recorded": (
        facts(
            record=record("answered", "review_approved", 110.0),
            reviews=[review("timed_out")],
            executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["SUCCEEDED"]},
        ),
        "mismatched",
        "route review_approved but the review table says timed_out",
    ),
    "mismatched: failed query, review started anyway": (
        facts(
            record=record("failed", "error_handler", 101.0),
            reviews=[review("approved", approver="bob@example.com")],
            executions={PIPELINE: ["SUCCEEDED"], REVIEW: ["SUCCEEDED"]},
        ),
        "mismatched",
        "yet the review table holds approved",
    ),
    "mismatched: answered, yet the pipeline failed": (
        facts(record=record("answered", "formatter", 102.0), executions={PIPELINE: ["FAILED"]}),
        "mismatched",
        "execution ended FAILED",
    ),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_each_kind_of_failure_is_detected(name: str) -> None:
    given, kind, why = FAILURES[name]
    verdict = judge(given)
    if kind in ("lost", "stuck"):
        assert verdict.outcome == kind
        reasons = verdict.stuck
    else:
        reasons = getattr(verdict, kind)
    assert any(why in reason for reason in reasons), reasons
    result = ledger([given])
    assert result.failures[kind] == 1 and not result.ok
    assert f"1 {kind}" in failure_line(result)


def test_ledger_counts_per_fault_outcomes_and_times() -> None:
    # GIVEN three queries, two hit by faults WHEN the ledger is drawn up
    ok = replace(AGREEING[0], index=0)
    stuck = replace(FAILURES["stuck: claimed, never started"][0], query_id="q-2", index=1)
    mismatched = replace(
        FAILURES["mismatched: approved in the review table, rejected in the store"][0],
        query_id="q-3",
        index=2,
    )
    injections = [
        Injection("poller_crash", "PollerFunction", 1),
        Injection("timeout", "StartReviewFunction", 2),
        Injection("timeout", "NotifyReviewFunction", 2),
    ]
    document = ledger([ok, stuck, mismatched], dead_letters=4, injections=injections).document()
    # THEN each fault's queries are counted by how they ended, and the problems are listed
    assert document["per_fault"] == {
        "poller_crash": {"injected": 1, "queries": 1, "stuck": 1},
        "timeout": {"injected": 2, "queries": 1, "rejected": 1, "mismatched": 1},
    }
    assert (document["lost"], document["stuck"], document["mismatched"], document["dead_letters"]) == (
        0,
        1,
        1,
        4,
    )
    assert [p["query_id"] for p in document["problems"]] == ["q-2", "q-3"]
    assert document["p50_s"] is not None


def test_fault_rates_parse_and_refuse_what_is_wrong() -> None:
    assert parse_faults(None) == ISSUE_RATES
    assert parse_faults("none") == {}
    assert parse_faults("worker=0.1, poison=0.02") == {"worker": 0.1, "poison": 0.02}
    for bad, said in (
        ("workers=0.1", "unknown fault 'workers'"),
        ("throttle=3", "between 0 and 1"),
        ("timeout", "timeout needs a rate"),
    ):
        with pytest.raises(BadInputError, match=said):
            parse_faults(bad)


def test_fault_choice_is_fixed_by_the_seed() -> None:
    # Faults are drawn from (seed, kind, function, query, attempt), not a shared generator that
    # moto's threads would consume in a different order each run.
    assert draw(12, "worker", "SqlWriterFunction", 3, 1) == draw(12, "worker", "SqlWriterFunction", 3, 1)
    assert draw(12, "worker", "SqlWriterFunction", 3, 1) != draw(13, "worker", "SqlWriterFunction", 3, 1)


def test_short_faulted_run_ends_every_query_in_one_agreed_terminal_state() -> None:
    # GIVEN 30 questions through API -> SQS -> poller -> pipeline -> review, with faults at every
    # kind the issue names, reviewers answering some reviews and leaving others to time out
    config = ChaosConfig(
        queries=30,
        rates={
            "worker": 0.1,
            "throttle": 0.3,
            "duplicate": 0.1,
            "poison": 0.05,
            "malformed": 0.05,
            "timeout": 0.02,
            "poller_crash": 0.05,
        },
        seed=3,  # draws at least one of each fault kind among 30 queries
        # A query no workflow ends is closed by the sweeper after this (then counted as failed,
        # with the reason); the run waits that long only if one is left.
        query_deadline_s=90,
        settle_timeout_s=400,
    )
    # WHEN the run settles and the ledger is drawn up
    result = run(config)
    # THEN every submitted query is accounted for, and none is lost, stuck, duplicated or mismatched
    assert len(result.verdicts) == 30
    assert {i.kind for i in result.injections} == set(config.rates), "a fault kind was never injected"
    assert result.ok, failure_line(result) + f": {result.document()['problems'][:3]}"


def test_command_exits_1_naming_the_counts_when_the_ledger_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run whose ledger holds one stuck and one mismatched query
    from panelbrain import cli
    from panelbrain.ops import chaos

    bad = [FAILURES["stuck: claimed, never started"][0], AGREEING[0]]
    bad.append(FAILURES["mismatched: failed query, review started anyway"][0])
    monkeypatch.setattr(chaos, "run", lambda config, progress=None: ledger(bad, dead_letters=2))
    monkeypatch.setattr("sys.argv", ["panelbrain", "chaos", "--queries", "3", "--json"])
    # WHEN the command runs
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    # THEN it writes the ledger as one document, and fails with one line naming the counts
    captured = capsys.readouterr()
    assert exit_.value.code == 1
    document = json.loads(captured.out)
    assert (document["stuck"], document["mismatched"], document["dead_letters"]) == (1, 1, 2)
    assert captured.err.strip().splitlines() == [
        "error: chaos ledger: 0 lost, 1 stuck, 0 duplicated, 1 mismatched of 3 queries "
        "(dead-letter queue: 2); see the problems in --json"
    ]


def test_command_refuses_an_unknown_fault_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from panelbrain import cli

    monkeypatch.setattr("sys.argv", ["panelbrain", "chaos", "--faults", "gremlins=0.5"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert "unknown fault 'gremlins'" in capsys.readouterr().err
