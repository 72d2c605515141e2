"""The review service: open a review, decide it once, keep it alive, remind, close it.

Every decision path (signed e-mail link, Slack button, reviewer page, command line) ends in
:meth:`ReviewService.decide`, which checks the approver against the allow-list, records the
decision with a conditional write (the first one wins; a second click is told who decided),
and only then hands the decision to the waiting Step Functions task.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from panelbrain.aws.reviews import ReviewStore
from panelbrain.errors import RefusedError
from panelbrain.review import links
from panelbrain.review.models import Action, Channel, Decision, Review, ReviewLink

# What Step Functions answers about a token whose task is no longer waiting.
_DEAD_TOKEN = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
REJECTED_ERROR = "ReviewRejectedError"
# A token this young that Step Functions does not know yet is not taken for a dead one.
_TOKEN_GRACE_S = 60.0


class DecisionError(RefusedError):
    """A decision that was refused; nothing changed. ``status`` is the HTTP status."""


@dataclass(frozen=True)
class ReviewSettings:
    allow_list: frozenset[str]
    base_url: str
    reminder_before_s: int = 600

    @classmethod
    def from_env(cls) -> ReviewSettings:
        allowed = {a.strip().lower() for a in os.environ.get("REVIEWERS", "").split(",") if a.strip()}
        return cls(
            allow_list=frozenset(allowed),
            base_url=os.environ.get("REVIEW_BASE_URL", "http://127.0.0.1:3000"),
            reminder_before_s=int(os.environ.get("REVIEW_REMINDER_BEFORE_S", "600")),
        )


class Notifier:
    """Where notifications go; the AWS one publishes to SNS and posts to Slack."""

    def notify(
        self,
        review: Review,
        approve: str,
        reject: str,
        page: str,
        *,
        reminder: bool = False,
        minutes_left: int | None = None,
    ) -> None:
        raise NotImplementedError


@dataclass
class SweepReport:
    open: int = 0
    oldest_age_s: float = 0.0
    heartbeats: int = 0
    reminders: int = 0
    closed: list[str] = field(default_factory=list)


@dataclass
class ReviewService:
    store: ReviewStore
    stepfunctions: Any
    notifier: Notifier
    signing_key: Callable[[], bytes]
    settings: ReviewSettings
    clock: Callable[[], float] = time.time

    # -- ids and links --------------------------------------------------------------------------

    def review_id(self, query_id: str, level: int) -> str:
        """Unguessable without the key, yet the same for a retried notifier (one review, not two)."""
        mac = hmac.new(self.signing_key(), f"review-id\n{query_id}\n{level}".encode(), hashlib.sha256)
        return "rv_" + base64.urlsafe_b64encode(mac.digest()[:15]).decode()

    def links(self, review: Review) -> tuple[ReviewLink, ReviewLink]:
        """Approve and reject links that live as long as the review waits."""
        key, expires = self.signing_key(), int(review.expires_at)
        return links.sign(key, review.review_id, "approve", expires), links.sign(
            key, review.review_id, "reject", expires
        )

    def page_url(self) -> str:
        return f"{self.settings.base_url.rstrip('/')}/reviews"

    # -- opening and closing --------------------------------------------------------------------

    def open(
        self, *, query_id: str, level: int, token: str, synthesis: dict[str, Any], timeout_s: int
    ) -> Review:
        now = self.clock()
        table = synthesis.get("table") or []
        review_reasons = list(synthesis.get("review_reasons") or [])
        if isinstance(table, dict):
            # Too large to travel inline (panelbrain.aws.blobs): its first rows travel with it,
            # and the reviewer is told the rest exist.
            head = table.get("head") or []
            review_reasons.append(
                f"the table has {table.get('rows', 0):,} rows, too many to show here: the first "
                f"{len(head):,} are below; the answer, once approved, carries them all"
            )
            table = head
        review = Review(
            review_id=self.review_id(query_id, level),
            query_id=query_id,
            level=level,
            created_at=now,
            expires_at=now + timeout_s,
            question=synthesis["question"],
            dataset=synthesis["dataset"],
            answer=synthesis["answer"],
            table=table,
            sql=synthesis.get("sql"),
            confidence=synthesis["confidence"],
            confidence_reasons=synthesis.get("confidence_reasons") or [],
            review_reasons=review_reasons,
        )
        stored = self.store.open(review, token)
        if stored.status == "open":
            self._notify(stored)
        return stored

    def _notify(self, review: Review, *, reminder: bool = False) -> None:
        approve, reject = self.links(review)
        base = self.settings.base_url
        minutes_left = max(0, int((review.expires_at - self.clock()) // 60)) if reminder else None
        self.notifier.notify(
            review,
            links.url(base, approve),
            links.url(base, reject),
            self.page_url(),
            reminder=reminder,
            minutes_left=minutes_left,
        )

    def close(self, query_id: str, level: int, reason: str) -> Review | None:
        """The workflow stopped waiting (timeout): close the review so its links stop working."""
        review_id = self.review_id(query_id, level)
        self.store.close(
            review_id,
            Decision(
                decision="timed_out", approver="system", at=self.clock(), comment=reason, channel="system"
            ),
        )
        return self.store.get(review_id)

    # -- deciding ------------------------------------------------------------------------------

    def waiting(self, review_id: str) -> Review:
        """The review if it still waits for a decision; :class:`DecisionError` says why not."""
        review = self.store.get(review_id)
        if review is None:
            raise DecisionError(f"no review {review_id!r}", 404)
        if review.status != "open":
            raise DecisionError(already_decided(review), 410 if review.status == "timed_out" else 409)
        return review

    def decide(
        self, review_id: str, action: Action, *, approver: str, comment: str, channel: Channel
    ) -> Review:
        from botocore.exceptions import ClientError

        who = approver.strip().lower()
        if not who:
            raise DecisionError("say who you are: the approver is empty", 400)
        if who not in self.settings.allow_list:
            raise DecisionError(f"{approver.strip()!r} is not on the reviewer allow-list", 403)
        if len(comment) > 2000:
            raise DecisionError(f"the comment is {len(comment):,} characters; at most 2,000", 400)
        self.waiting(review_id)
        verdict: Literal["approved", "rejected"] = "approved" if action == "approve" else "rejected"
        decision = Decision(
            decision=verdict, approver=who, at=self.clock(), comment=comment.strip(), channel=channel
        )
        if not self.store.close(review_id, decision):
            raced = self.store.get(review_id)
            raise DecisionError(already_decided(raced) if raced else f"no review {review_id!r}", 409)
        token = self.store.token(review_id)
        detail = {
            "review_id": review_id,
            "decision": verdict,
            "approver": who,
            "comment": decision.comment,
            "channel": channel,
        }
        try:
            if verdict == "approved":
                self.stepfunctions.send_task_success(taskToken=token, output=json.dumps(detail))
            else:
                self.stepfunctions.send_task_failure(
                    taskToken=token, error=REJECTED_ERROR, cause=json.dumps(detail)
                )
        except ClientError as exc:
            self.store.reopen(review_id, decision)
            if exc.response["Error"]["Code"] in _DEAD_TOKEN:
                self.store.close(
                    review_id,
                    Decision(
                        decision="timed_out",
                        approver="system",
                        at=self.clock(),
                        comment="the workflow stopped waiting before the decision arrived",
                        channel="system",
                    ),
                )
                raise DecisionError(
                    "this review timed out before your decision arrived; nothing was decided", 410
                ) from None
            raise
        decided = self.store.get(review_id)
        assert decided is not None
        return decided

    # -- the schedule --------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """Heartbeat every open review's task, remind before the timeout, close dead ones."""
        from botocore.exceptions import ClientError

        now = self.clock()
        report = SweepReport()
        # Every open review, not a page of them: one left out misses its heartbeat and times out.
        for review in self.store.with_status("open", limit=None):
            token = self.store.token(review.review_id)
            try:
                self.stepfunctions.send_task_heartbeat(taskToken=token)
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code not in _DEAD_TOKEN:
                    raise
                if code != "TaskTimedOut" and now - review.created_at < _TOKEN_GRACE_S:
                    # Stored by the notifier a moment ago: the task may not accept beats yet.
                    continue
                self.store.close(
                    review.review_id,
                    Decision(
                        decision="timed_out",
                        approver="system",
                        at=now,
                        comment="the workflow stopped waiting",
                        channel="system",
                    ),
                )
                report.closed.append(review.review_id)
                continue
            self.store.heartbeat(review.review_id, now)
            report.heartbeats += 1
            report.open += 1
            report.oldest_age_s = max(report.oldest_age_s, now - review.created_at)
            if now >= review.expires_at - self.settings.reminder_before_s and self.store.mark_reminded(
                review.review_id, now
            ):
                self._notify(review, reminder=True)
                report.reminders += 1
        return report

    # -- the reviewer page ---------------------------------------------------------------------

    def pending(self) -> list[tuple[Review, ReviewLink, ReviewLink]]:
        return [(r, *self.links(r)) for r in self.store.with_status("open")]

    def history(self, limit: int = 50) -> list[Review]:
        """The ``limit`` latest decisions, latest first.

        The index orders reviews by creation: the ``limit`` newest of each status are read,
        then ordered by decision time. Reviews are decided in about the order they open (each
        within its timeout), so a decision is missed only if ``limit`` reviews of its status
        opened after it and were all decided before it."""
        closed = [
            r
            for s in ("approved", "rejected", "timed_out")
            for r in self.store.with_status(s, limit, newest_first=True)
        ]
        closed.sort(key=lambda r: r.decision.at if r.decision else 0.0, reverse=True)
        return closed[:limit]


def already_decided(review: Review) -> str:
    d = review.decision
    if d is None:
        return f"review {review.review_id} is already {review.status}"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(d.at))
    if d.decision == "timed_out":
        return f"this review timed out at {when}; nothing was decided"
    return f"already {d.decision} by {d.approver} at {when} (via {d.channel})"
