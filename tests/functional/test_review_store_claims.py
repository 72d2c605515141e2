"""The review table's claim lifecycle on the template's own table (the local engine's emulator):
the conditional writes ReviewService.decide and the sweeper rely on, as DynamoDB runs them."""

from __future__ import annotations

import pytest

from panelbrain.aws.reviews import DynamoReviewStore
from panelbrain.local.engine import LocalEngine
from panelbrain.review.models import Decision
from panelbrain.review.ports import Claim
from tests.unit.review_fakes import a_review

NOW = 1_800_000_000.0


@pytest.fixture
def store(engine: LocalEngine) -> DynamoReviewStore:
    engine.clear_table("ReviewsTable")
    store = DynamoReviewStore()
    store.open(a_review("rv_00000000000000000001", at=NOW), "token-1")
    return store


def claim_by(approver: str, at: float = NOW) -> Claim:
    decision = Decision(decision="approved", approver=approver, at=at, channel="web")
    return Claim(review_id="rv_00000000000000000001", decision=decision, expires_at=at + 60)


def test_one_claim_at_a_time_and_a_deciding_review_shows_who_decides(store: DynamoReviewStore) -> None:
    alice, bob = claim_by("alice@example.com"), claim_by("bob@example.com")
    assert store.claim(alice)
    assert not store.claim(bob)
    review = store.get(alice.review_id)
    assert review is not None and review.decision is not None
    assert (review.status, review.decision.approver) == ("deciding", "alice@example.com")
    # A retried notifier does not reopen a review being decided, but its new task's token is
    # the one the decision must reach: it is stored under the claim.
    assert (
        store.open(review.model_copy(update={"status": "open", "decision": None}), "token-2", 1).status
        == "deciding"
    )
    assert store.token(alice.review_id) == "token-2"
    # An earlier attempt's write landing late leaves the later attempt's token.
    store.open(review.model_copy(update={"status": "open", "decision": None}), "token-late", 0)
    assert store.token(alice.review_id) == "token-2"
    assert store.claims() == [alice]
    # Once decided, a late notifier changes nothing.
    assert store.settle(alice, alice.decision)
    store.open(review.model_copy(update={"status": "open", "decision": None}), "token-3", 2)
    assert (store.token(alice.review_id), store.get(alice.review_id).status) == ("token-2", "approved")  # type: ignore[union-attr]


def test_only_the_claim_holder_settles_or_releases(store: DynamoReviewStore) -> None:
    alice = claim_by("alice@example.com")
    assert store.claim(alice)
    assert not store.settle(claim_by("bob@example.com"), claim_by("bob@example.com").decision)
    assert not store.release(claim_by("alice@example.com", at=NOW + 1))
    assert store.release(alice)
    assert store.get(alice.review_id).status == "open"  # type: ignore[union-attr]
    assert store.claims() == []
    bob = claim_by("bob@example.com", at=NOW + 5)
    assert store.claim(bob)
    assert not store.settle(alice, alice.decision)  # alice's released claim is no longer hers
    assert store.settle(bob, bob.decision)
    review = store.get(bob.review_id)
    assert review is not None and review.decision is not None
    assert (review.status, review.decision.approver, review.decision.at) == (
        "approved",
        "bob@example.com",
        NOW + 5,
    )
    assert store.claims() == []


def test_a_gone_claim_is_noted_once_and_a_timeout_closes_over_it(store: DynamoReviewStore) -> None:
    alice = claim_by("alice@example.com")
    assert store.claim(alice)
    assert store.mark_gone(alice, NOW + 70)
    assert not store.mark_gone(alice, NOW + 130)
    assert store.claims() == [Claim(alice.review_id, alice.decision, alice.expires_at, gone_at=NOW + 70)]
    timed_out = Decision(decision="timed_out", approver="system", at=NOW + 80, channel="system")
    assert not store.close(alice.review_id, timed_out)  # the sweeper's close: open reviews only
    assert store.close(alice.review_id, timed_out, deciding_too=True)  # the workflow's CloseReview
    assert not store.settle(alice, alice.decision)
    review = store.get(alice.review_id)
    assert review is not None and review.decision == timed_out
    assert store.claims() == []
