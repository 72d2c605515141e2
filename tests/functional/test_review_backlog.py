"""A review backlog larger than one page of the review table's index.

The sweeper must keep every open review's task alive, however many are open (a review it skips
times out at its heartbeat interval), and the reviewer page's history must show the latest
decisions when there are more than it lists.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from panelbrain.aws.reviews import DynamoReviewStore
from panelbrain.functions import review_api
from panelbrain.local.ask import api_gateway_event
from panelbrain.local.engine import LocalEngine
from panelbrain.local.signin import LocalSignIn
from panelbrain.review.models import Decision, Review
from panelbrain.review.service import Notifier, ReviewService, ReviewSettings

NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def empty_reviews(engine: LocalEngine) -> None:
    engine.clear_table("ReviewsTable")


class RecordingCallbacks:
    """Stands in for Step Functions' task callbacks: keeps every heartbeat it is sent."""

    def __init__(self) -> None:
        self.heartbeats: list[str] = []

    def send_heartbeat(self, token: str) -> None:
        self.heartbeats.append(token)

    def send_success(self, token: str, output: str) -> None:
        raise AssertionError("a sweep of open reviews decides nothing")

    def send_failure(self, token: str, error: str, cause: str) -> None:
        raise AssertionError("a sweep of open reviews decides nothing")


class SilentNotifier(Notifier):
    def notify(self, review: Review, approve: str, reject: str, page: str, **_: Any) -> None:
        raise AssertionError(f"nobody should be reminded of {review.review_id} yet")


def open_reviews(store: DynamoReviewStore, count: int) -> dict[str, str]:
    """``count`` open reviews created a second apart, an hour from timing out; id -> token."""
    tokens = {}
    for i in range(count):
        created = NOW - count + i
        review = Review(
            review_id=f"rv_{i:020d}",
            query_id=f"q-{i:016x}",
            created_at=created,
            expires_at=created + 3_600,
            question=f"Question {i:03d}",
            dataset="ces11",
            answer="About a fifth.",
            confidence=0.7,
        )
        tokens[review.review_id] = f"token-{i:03d}"
        store.open(review, tokens[review.review_id])
    return tokens


def test_one_sweep_heartbeats_every_open_review(engine: LocalEngine) -> None:
    # GIVEN 150 open reviews, more than one page of the by_status index holds by default
    store = DynamoReviewStore()
    tokens = open_reviews(store, 150)
    callbacks = RecordingCallbacks()
    service = ReviewService(
        store=store,
        callbacks=callbacks,
        notifier=SilentNotifier(),
        signing_key=lambda: b"k" * 32,
        settings=ReviewSettings(allow_list=frozenset({"alice@example.com"}), base_url="http://x"),
        clock=lambda: NOW,
    )
    # WHEN the sweeper runs once
    report = service.sweep()
    # THEN every waiting task got its heartbeat, the oldest and the newest alike
    assert sorted(callbacks.heartbeats) == sorted(tokens.values())
    assert (report.open, report.heartbeats) == (150, 150)
    assert all(r.heartbeats == 1 for r in store.with_status("open", limit=None))


def history_questions(page: str) -> list[str]:
    history = page.split("<h2>Decision history</h2>", 1)[1]
    return re.findall(r"<tr><td>(Question \d{3})</td>", history)


def test_reviewer_page_shows_the_newest_decisions_first(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 80 reviews decided one after another, 60 of them approved: more than the page's
    # history lists (50), and more of one status than it lists
    store = DynamoReviewStore()
    for review_id in open_reviews(store, 80):
        index = int(review_id[3:])
        decision = Decision(
            decision="approved" if index % 4 else "rejected",
            approver="alice@example.com",
            at=NOW + index,
            channel="web",
        )
        assert store.close(review_id, decision)
    # WHEN a reviewer, signed in, opens the page
    sign_in = LocalSignIn(engine, ["alice@example.com"])
    monkeypatch.setenv("REVIEWER_JWKS_URL", sign_in.jwks_url)
    event = api_gateway_event("GET", "/reviews", headers={"Cookie": sign_in.cookie("alice@example.com")})
    event["stageVariables"] = sign_in.stage_variables()
    response = review_api.handler(event, None)
    assert response["statusCode"] == 200
    # THEN the history lists the 50 latest decisions, the latest first
    shown = history_questions(response["body"])
    assert shown == [f"Question {i:03d}" for i in range(79, 29, -1)]


def test_open_reviews_are_listed_in_full_when_asked(engine: LocalEngine) -> None:
    store = DynamoReviewStore()
    open_reviews(store, 120)
    listed = store.with_status("open", limit=None)
    assert len(listed) == 120
    assert [r.created_at for r in listed] == sorted(r.created_at for r in listed)  # oldest first
    newest = store.with_status("open", limit=5, newest_first=True)
    assert [r.question for r in newest] == [f"Question {i:03d}" for i in range(119, 114, -1)]
