"""A notifier retried after it had already stored the review (its first attempt ran out of time
once the reviewers were told, issue 12's last review timeouts at 30 % throttling): the retry
waits on a token of its own, the sweeper's heartbeats reach it, and a reviewer's decision ends
the query. Before, the engine handed the retry the first attempt's closed token, so every
heartbeat and decision was refused and the review timed out with nobody able to decide it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from panelbrain.errors import TransientError
from panelbrain.functions.review_common import service
from panelbrain.local.ask import open_review
from panelbrain.review.models import Principal
from tests.e2e.reviewing import reviewing, submit, wait_status

ALICE = Principal(identity="alice@example.com", source="cli")
# A 2 s heartbeat: the decision comes after it, so only the sweeper's heartbeats keep it waiting.
SHORT = {"ReviewTimeoutSeconds": "60", "ReviewHeartbeatSeconds": "2", "ReviewReminderSeconds": "50"}


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield  # this module does not use the shared engine


def test_a_retried_notifier_waits_on_its_own_token_and_the_reviewer_decides() -> None:
    with reviewing(SHORT, schedule_s=0.25) as r:
        real = r.engine.handlers["NotifyReviewFunction"]
        tokens: list[str] = []

        def first_attempt_times_out(event: dict[str, Any], context: Any) -> Any:
            tokens.append(event["token"])
            output = real(event, context)
            if len(tokens) == 1:
                raise TransientError("the reviewers were told, then the attempt ran out of time")
            return output

        r.engine.handlers["NotifyReviewFunction"] = first_attempt_times_out
        query_id = submit(r)
        deadline = time.monotonic() + 30
        while len(tokens) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # THEN the retry was handed a token of its own, and that is the one the review holds
        assert len(tokens) == 2 and tokens[0] != tokens[1]
        review = open_review(query_id)
        assert service().store.token(review.review_id) == tokens[1]
        # WHEN a reviewer decides after more than one heartbeat interval (the sweeper's beats
        # keep the task waiting)
        time.sleep(3)
        decided = service().decide(review.review_id, "approve", principal=ALICE, comment="", channel="cli")
        # THEN the decision reaches the workflow and the query is answered
        assert decided.status == "approved"
        assert wait_status(r, query_id, {"answered", "rejected", "failed"})["route"] == "review_approved"


def test_a_decision_taken_before_the_notifier_failed_ends_the_review() -> None:
    with reviewing(SHORT, schedule_s=0.25) as r:
        real = r.engine.handlers["NotifyReviewFunction"]
        tokens: list[str] = []
        decided = threading.Event()

        def fails_after_the_decision(event: dict[str, Any], context: Any) -> Any:
            tokens.append(event["token"])
            output = real(event, context)
            if len(tokens) == 1:
                decided.wait(30)
                raise TransientError("a reviewer decided, then the attempt ran out of time")
            return output

        r.engine.handlers["NotifyReviewFunction"] = fails_after_the_decision
        query_id = submit(r)
        review = open_review(query_id)
        # WHEN a reviewer decides while the notifier that told them is still running, and that
        # notifier then fails
        approved = service().decide(review.review_id, "approve", principal=ALICE, comment="", channel="cli")
        decided.set()
        # THEN the decision closed the task: the query is answered, and no retry re-opened a review
        # that was already decided (before: the attempt failed, its retry waited on a new token
        # for a decision already taken, and the query ended rejected by timeout while the review
        # table said approved)
        assert approved.status == "approved"
        assert wait_status(r, query_id, {"answered", "rejected", "failed"})["route"] == "review_approved"
        assert len(tokens) == 1
