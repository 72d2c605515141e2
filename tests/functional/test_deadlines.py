"""The deadline sweeper: no query stays unfinished for ever, whatever path left it there.

A query past its deadline (queued or started past the queue's redeliveries and the Express
5-minute cap; needs_review past its review and escalation timeouts) is closed as failed with the
reason, counted in QueriesPastDeadline (which alarms), and a late pipeline cannot overwrite it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.functions import api, review_sweeper
from panelbrain.local.engine import LocalEngine
from panelbrain.models import TerminalRecord

EVENTS = Path(__file__).parent.parent.parent / "events"


@pytest.fixture(autouse=True)
def fresh_tables(engine: LocalEngine) -> None:
    engine.clear_table("QueriesTable")
    engine.clear_table("ResultCacheTable")
    engine.empty_queue("QueryQueue")


def posted() -> str:
    request = json.loads((EVENTS / "api/post_query.json").read_text())
    query_id: str = json.loads(api.handler(request, None)["body"])["query_id"]
    return query_id


def later(seconds: float) -> DynamoQueryStore:
    return DynamoQueryStore(clock=lambda: time.time() + seconds)


def query_deadline(engine: LocalEngine) -> float:
    variables = engine.template.resources["ReviewSweeperFunction"]["Properties"]["Environment"]["Variables"]
    return float(variables["QUERY_DEADLINE_S"])


def test_a_query_never_started_is_failed_with_the_reason_and_counted(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a query whose message was lost (queued, never delivered), and a younger one
    stuck = posted()
    created = float(DynamoQueryStore().get(stuck)["created_at"])  # type: ignore[index]
    deadline = query_deadline(engine)
    DynamoQueryStore(clock=lambda: created + 60).create_query("q-younger000000000", {"question": "x"})
    # WHEN the scheduled sweeper runs just past the first one's deadline
    monkeypatch.setattr(
        review_sweeper, "store", lambda: DynamoQueryStore(clock=lambda: created + deadline + 1)
    )
    report = engine.tick("ReviewSweeperFunction")
    # THEN only the stuck one is closed, as failed, saying why, and the metric counts it
    assert report["past_deadline"] == [stuck]
    record = DynamoQueryStore().get(stuck)
    assert record is not None and (record["status"], record["route"]) == ("failed", "deadline")
    assert "never started" in record["reason"] and "queries-past-deadline.md" in record["reason"]
    assert [e["status"] for e in record["history"]] == ["queued", "failed"]
    assert DynamoQueryStore().get("q-younger000000000")["status"] == "queued"  # type: ignore[index]
    # The EMF line the function wrote to its stdout, which the engine keeps as CloudWatch would.
    metric = next(line for line in engine.metric_lines if "QueriesPastDeadline" in line)
    assert json.loads(metric)["QueriesPastDeadline"] in (1, [1])


def test_a_late_pipeline_cannot_overwrite_the_sweepers_failure(engine: LocalEngine) -> None:
    # GIVEN a query closed by the sweeper while its execution was lost
    stuck = posted()
    deadline = query_deadline(engine)
    assert review_sweeper.close_past_deadline(later(deadline + 1), time.time() + deadline + 1) == [stuck]
    # WHEN a late pipeline tries to persist an answer
    written = DynamoQueryStore().put_record(
        TerminalRecord(query_id=stuck, status="answered", route="formatter", result={"markdown": "late"})
    )
    # THEN the first terminal write stands: the query reads failed, never both
    record = DynamoQueryStore().get(stuck)
    assert written is False and record is not None and record["status"] == "failed"


def test_a_review_is_closed_only_after_its_review_and_escalation_timeouts(engine: LocalEngine) -> None:
    query_id = posted()
    DynamoQueryStore().put_record(TerminalRecord(query_id=query_id, status="needs_review", route="review"))
    review_timeout = float(engine.template.parameters["ReviewTimeoutSeconds"])
    now = time.time()
    # Past the query deadline but within two review timeouts: the review is still running.
    assert review_sweeper.close_past_deadline(DynamoQueryStore(), now + query_deadline(engine) + 1) == []
    assert review_sweeper.close_past_deadline(DynamoQueryStore(), now + 2 * review_timeout) == []
    closed = review_sweeper.close_past_deadline(
        DynamoQueryStore(), now + 2 * review_timeout + review_sweeper.REVIEW_MARGIN_S + 1
    )
    assert closed == [query_id]
    record = DynamoQueryStore().get(query_id)
    assert record is not None and "review never recorded" in record["reason"]


def test_a_query_that_moved_on_is_not_closed(engine: LocalEngine) -> None:
    # The index is read first and written after: a query answered in between keeps its answer.
    query_id = posted()
    store = later(query_deadline(engine) + 1)
    before = time.time() + 1
    assert store.past_deadline("queued", before, 10) == [query_id]
    DynamoQueryStore().put_record(TerminalRecord(query_id=query_id, status="answered", route="formatter"))
    assert store.close_past_deadline(query_id, "queued", before, "deadline") is False
    assert DynamoQueryStore().get(query_id)["status"] == "answered"  # type: ignore[index]
