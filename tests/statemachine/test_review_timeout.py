"""Reviews nobody decides: heartbeats keep them waiting, a reminder goes out, the timeout ends
them through the escalation rule, and the query's terminal state is persisted.

Each case has its own engine with a 3 s review timeout and a 1 s heartbeat (instead of the
template's 3600 s and 300 s), and the review sweeper running every 0.25 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.functions.review_common import service
from panelbrain.review.models import Principal
from tests.e2e.reviewing import forms_in, http, links_in, reviewing, submit, wait_review, wait_status

SHORT = {"ReviewTimeoutSeconds": "3", "ReviewHeartbeatSeconds": "1", "ReviewReminderSeconds": "2"}


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield  # this module does not use the shared engine


def test_no_decision_heartbeats_then_times_out_and_is_rejected() -> None:
    with reviewing(SHORT, schedule_s=0.25) as r:
        started = time.monotonic()
        query_id = submit(r)
        review_id = r.email_for(query_id)["attributes"]["review_id"]
        wait_review(r, query_id)
        waited = time.monotonic() - started
        stored = DynamoQueryStore().get(query_id)
        assert stored is not None
        assert (stored["status"], stored["route"]) == ("rejected", "review_timeout")
        assert stored["reason"] == "no review decision before the timeout: rejected by the escalation rule"
        # Heartbeats kept the task past its 1 s heartbeat timeout, up to the 3 s timeout.
        assert waited >= 3
        review = service().store.get(review_id)
        assert review is not None and review.heartbeats >= 3
        assert review.status == "timed_out" and review.decision is not None
        assert review.decision.approver == "system"
        # One reminder per reviewer, 2 s before the timeout; no escalation topic message under "reject".
        reminders = [
            m
            for m in r.emails()
            if m["subject"].startswith("Reminder") and m["attributes"].get("recipient") == "alice@example.com"
        ]
        assert len(reminders) == 1 and reminders[0]["attributes"]["review_id"] == review_id
        assert r.emails("EscalationTopic") == []
        # Its links are dead (they expire with the review): no form is offered.
        status, page = http(r.server.url, "GET", links_in(r.email_for(query_id)["body"])["approve"])
        assert status == 410 and "<form" not in page


def test_without_heartbeats_the_task_fails_at_the_heartbeat_timeout() -> None:
    # The sweeper effectively off (hourly): the task dies at its 1 s heartbeat timeout. The
    # review itself would wait 60 s, so an execution that ends within the 30 s wait ended on
    # the heartbeat (no clock in the assertion: a loaded machine cannot make it flaky).
    with reviewing({**SHORT, "ReviewTimeoutSeconds": "60"}, schedule_s=3600) as r:
        query_id = submit(r)
        wait_status(r, query_id, {"needs_review"})
        wait_review(r, query_id)
        assert wait_status(r, query_id, {"rejected"})["route"] == "review_timeout"


def test_renotify_escalates_once_to_the_second_level_who_can_approve() -> None:
    with reviewing({**SHORT, "ReviewEscalation": "renotify"}, schedule_s=0.25) as r:
        query_id = submit(r)
        first = r.email_for(query_id)["attributes"]["review_id"]
        escalated = r.email_for(query_id, "EscalationTopic", timeout_s=30)
        assert escalated["subject"].startswith("Escalated review needed")
        second = escalated["attributes"]["review_id"]
        assert second != first
        first_review = service().store.get(first)
        assert first_review is not None and first_review.status == "timed_out"
        status, page = http(r.server.url, "GET", links_in(escalated["body"])["approve"])
        assert status == 200
        (form,) = forms_in(page)
        status, _ = http(
            r.server.url, "POST", f"/reviews/{second}", form={**form["fields"], "approver": "bob@example.com"}
        )
        assert status == 200
        record = wait_status(r, query_id, {"answered"})
        assert record["route"] == "review_approved"


def test_renotify_then_silence_ends_rejected() -> None:
    with reviewing({**SHORT, "ReviewEscalation": "renotify"}, schedule_s=0.25) as r:
        query_id = submit(r)
        wait_status(r, query_id, {"needs_review"})
        wait_review(r, query_id)
        escalations = [m for m in r.emails("EscalationTopic") if not m["subject"].startswith("Reminder")]
        assert sorted(m["attributes"]["recipient"] for m in escalations) == [
            "alice@example.com",
            "bob@example.com",
        ]
        assert wait_status(r, query_id, {"rejected"})["route"] == "review_timeout"
        assert [x.status for x in service().store.of_query(query_id)] == ["timed_out", "timed_out"]


def test_a_decision_before_the_notifier_returns_is_taken() -> None:
    # The notifier stores the token, then returns; a reviewer can decide in between. AWS takes
    # that decision; the engine must too, not wait out the heartbeat interval and time out.
    with reviewing({"ReviewTimeoutSeconds": "60", "ReviewHeartbeatSeconds": "20"}, schedule_s=3600) as r:
        notify = r.engine.handlers["NotifyReviewFunction"]

        def notify_then_decide(event: dict[str, Any], context: Any) -> Any:
            result = notify(event, context)
            service().decide(
                result["review_id"],
                "approve",
                principal=Principal(identity="alice@example.com", source="cli"),
                comment="",
                channel="cli",
            )
            return result

        r.engine.handlers["NotifyReviewFunction"] = notify_then_decide
        started = time.monotonic()
        query_id = submit(r)
        record = wait_status(r, query_id, {"answered", "rejected"}, timeout_s=15)
        assert record["route"] == "review_approved"
        assert time.monotonic() - started < 15  # not a heartbeat interval (20 s) later
