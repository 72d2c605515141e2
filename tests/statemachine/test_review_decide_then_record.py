"""A reviewer's request that dies mid-decision, on the local engine's real review workflow: the
review table never says approved while the task was not told, and the sweeper brings the table
to what the workflow did (issue 12: "any other error leaves 'approved' in the review table
while the query ends rejected").

The sweeper runs only when a test ticks it, with the review service's clock moved past the
claim's expiry (and the grace for a timeout to be recorded) rather than waiting minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.functions.review_common import service
from panelbrain.local.ask import open_review
from panelbrain.review.models import Principal
from panelbrain.review.ports import TaskCallbacks
from tests.e2e.reviewing import Reviewing, reviewing, submit, wait_review, wait_status

ALICE = Principal(identity="alice@example.com", source="cli")


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield  # this module does not use the shared engine


@dataclass
class DiesAround:
    """The real callbacks, with the decider dying (its own timeout) before or after the call."""

    real: TaskCallbacks
    after: bool

    def _die(self) -> None:
        raise RuntimeError("Task timed out after 10.00 seconds")

    def send_success(self, token: str, output: str) -> None:
        if not self.after:
            self._die()
        self.real.send_success(token, output)
        self._die()

    def send_failure(self, token: str, error: str, cause: str) -> None:
        raise AssertionError("these reviewers approve")

    def send_heartbeat(self, token: str) -> None:
        self.real.send_heartbeat(token)


def sweep_at(r: Reviewing, at: float) -> dict[str, object]:
    service().clock = lambda: at
    result: dict[str, object] = r.engine.tick("ReviewSweeperFunction")
    return result


@pytest.mark.parametrize("told", [True, False], ids=["dies-after-the-task-was-told", "dies-before"])
def test_a_decider_that_dies_leaves_the_review_deciding_and_the_sweeper_settles_it(told: bool) -> None:
    with reviewing({"ReviewTimeoutSeconds": "600", "ReviewHeartbeatSeconds": "300"}, schedule_s=3600) as r:
        query_id = submit(r)
        review = open_review(query_id, wait_s=30)
        reviews = service()
        reviews.callbacks = DiesAround(reviews.callbacks, after=told)
        with pytest.raises(RuntimeError):
            reviews.decide(review.review_id, "approve", principal=ALICE, comment="", channel="cli")
        reviews.callbacks = reviews.callbacks.real  # type: ignore[attr-defined]
        assert reviews.store.get(review.review_id).status == "deciding"  # type: ignore[union-attr]
        if told:
            # The task took the approval: the workflow answers the query meanwhile.
            assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"
        now = time.time()
        settings = reviews.settings
        swept = sweep_at(r, now + settings.claim_s + 1)
        if told:
            # Step Functions refuses the repeat as it would after a timeout: the sweeper waits
            # for a CloseReview that never comes, then records what the task was told.
            assert swept["settled"] == []
            swept = sweep_at(r, now + settings.claim_s + settings.gone_grace_s + 2)
        assert swept["settled"] == [review.review_id]
        assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"
        wait_review(r, query_id)
        decided = reviews.store.get(review.review_id)
        assert decided is not None and decided.decision is not None
        assert (decided.status, decided.decision.approver) == ("approved", "alice@example.com")
        stored = DynamoQueryStore().get(query_id)
        assert stored is not None and stored["status"] == "answered"
