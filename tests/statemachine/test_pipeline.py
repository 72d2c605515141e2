"""The real ASL on the local engine: routes, retries, failures, reviews, and which workers run."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.errors import TransientError
from panelbrain.local.ask import PIPELINE, REVIEW, ask, new_query_id
from panelbrain.local.engine import LocalEngine
from panelbrain.models import TerminalRecord

CONFIDENT = "What share support a ban on abortion by province?"
AMBIGUOUS = "What share of people in QC strongly support a ban"  # "strongly" cannot be placed: 0.75
UNSURE = "What share of people in QC strongly support a ban by planet"  # and no breakdown found: 0.35


def calls(engine: LocalEngine, query: Any = None) -> Counter[str]:
    return Counter(i.function for i in engine.invocations)


def states(result: dict[str, Any]) -> list[str]:
    return [t["state"] for t in result["trace"]]


def test_every_definition_is_substituted_and_created(engine: LocalEngine) -> None:
    sfn = engine.clients["stepfunctions"]
    for machine, kind in ((PIPELINE, "EXPRESS"), (REVIEW, "STANDARD")):
        described = sfn.describe_state_machine(stateMachineArn=engine.state_machine_arn(machine))
        assert described["type"] == kind
        assert "${" not in described["definition"]
        json.loads(described["definition"])


def test_confident_answer_is_formatted_and_persisted(engine: LocalEngine) -> None:
    result = ask(engine, CONFIDENT)
    assert (result["status"], result["route"]) == ("answered", "formatter")
    assert result["confidence"] >= 0.8
    assert "Quebec" in result["markdown"] and result["sql"].startswith("SELECT province AS grp")
    assert states(result)[-4:] == ["ConfidenceCheck", "Formatter", "CheckFormatted", "PersistAnswered"]
    stored = DynamoQueryStore().get(result["query_id"])
    assert stored is not None and stored["status"] == "answered"


def test_mid_confidence_goes_to_review_and_waits(engine: LocalEngine) -> None:
    result = ask(engine, AMBIGUOUS)
    assert (result["status"], result["route"]) == ("needs_review", "review")
    assert 0.5 <= result["confidence"] < 0.8
    assert "StartReview" in states(result)


def test_low_confidence_goes_to_the_error_handler(engine: LocalEngine) -> None:
    result = ask(engine, UNSURE)
    assert (result["status"], result["route"]) == ("failed", "low_confidence")
    assert result["confidence"] < 0.5
    assert "below the review threshold" in result["reason"]
    assert "LowConfidence" in states(result)


def test_review_approved_is_answered(engine: LocalEngine) -> None:
    result = ask(engine, AMBIGUOUS, review="approve")
    assert (result["status"], result["route"]) == ("answered", "review_approved")
    assert states(result)[-4:] == ["RequestReview", "Formatter", "CheckFormatted", "PersistAnswered"]


def test_review_rejected_is_rejected(engine: LocalEngine) -> None:
    result = ask(engine, AMBIGUOUS, review="reject")
    assert (result["status"], result["route"], result["reason"]) == (
        "rejected",
        "review_rejected",
        "rejected by a reviewer",
    )


def test_worker_failing_once_is_retried_and_answered(engine: LocalEngine) -> None:
    failures: list[str] = []

    def fail_first_sql(function: str, event: dict[str, Any]) -> None:
        if function == "SqlWriterFunction" and not failures:
            failures.append(function)
            raise TransientError("database busy, try again")

    engine.faults.append(fail_first_sql)
    before = calls(engine)["SqlWriterFunction"]
    result = ask(engine, CONFIDENT)
    assert result["status"] == "answered"
    assert calls(engine)["SqlWriterFunction"] - before == 2


def test_worker_failing_every_time_fails_the_query_with_the_reason(engine: LocalEngine) -> None:
    def always(function: str, event: dict[str, Any]) -> None:
        if function == "DataProcessorFunction":
            raise TransientError("disk on fire")

    engine.faults.append(always)
    result = ask(engine, CONFIDENT)
    assert (result["status"], result["route"]) == ("failed", "error")
    assert result["reason"] == "TransientError: disk on fire"
    assert "ErrorHandler" in states(result)


def test_only_the_needed_workers_run(engine: LocalEngine) -> None:
    before = calls(engine)
    result = ask(engine, "Unweighted share of rural by province")
    after = calls(engine)
    assert result["status"] == "answered"
    assert after["WeightApplierFunction"] == before["WeightApplierFunction"]
    assert after["SqlWriterFunction"] == before["SqlWriterFunction"] + 1
    assert "SkipWeightApplier" in states(result) and "WeightApplier" not in states(result)


def test_unanswerable_question_fails_with_the_planner_reason(engine: LocalEngine) -> None:
    result = ask(engine, "what is the weather like")
    assert (result["status"], result["route"]) == ("failed", "error")
    assert result["reason"].startswith("PlanningError: nothing in 'what is the weather like' names")


def test_terminal_state_is_written_once(engine: LocalEngine) -> None:
    store = DynamoQueryStore()
    query_id = new_query_id()
    first = TerminalRecord(query_id=query_id, status="answered", route="formatter")
    again = TerminalRecord(query_id=query_id, status="failed", route="error", reason="late duplicate")
    assert store.put_record(first) is True
    assert store.put_record(again) is False
    stored = store.get(query_id)
    assert stored is not None and stored["status"] == "answered"
