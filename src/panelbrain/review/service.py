"""The review service: open a review, decide it once, keep it alive, remind, close it.

Every decision path (signed e-mail link, Slack button, reviewer page, command line) ends in
:meth:`ReviewService.decide`, which checks the principal (allow-list or reviewer group), claims
the review with a conditional write (the first one wins; a second click is told who decides),
hands the decision to the waiting Step Functions task, and only then records it. A claim whose
decider died between the two is finished by the sweeper (:meth:`ReviewService.sweep`), so the
review table ends saying what the workflow was told.

The world is reached through :mod:`panelbrain.review.ports` only: no AWS SDK in here.
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

from panelbrain.errors import PanelbrainError, RefusedError
from panelbrain.models import Reading
from panelbrain.review import links
from panelbrain.review.models import (
    Action,
    Channel,
    Decision,
    Principal,
    PrincipalSource,
    Review,
    ReviewLink,
)
from panelbrain.review.ports import (
    Claim,
    Notifier,
    ReviewStore,
    TaskCallbacks,
    TaskCallbackUnavailableError,
    TaskTokenGoneError,
)

__all__ = [
    "REJECTED_ERROR",
    "DecisionError",
    "Notifier",
    "ReviewService",
    "ReviewSettings",
    "SweepReport",
    "already_decided",
    "principal_named",
]

REJECTED_ERROR = "ReviewRejectedError"


class DecisionError(RefusedError):
    """A decision that was refused; nothing changed. ``status`` is the HTTP status."""


def principal_named(identity: str, source: PrincipalSource) -> Principal:
    """The principal for a name its channel vouches for; an empty name is refused (400)."""
    if not identity.strip():
        raise DecisionError("say who you are: the approver is empty", 400)
    return Principal(identity=identity.strip(), source=source)


@dataclass(frozen=True)
class ReviewSettings:
    allow_list: frozenset[str]
    base_url: str
    reminder_before_s: int = 600
    # Members of this user pool group decide as if on the allow-list (signed-in users only).
    reviewer_group: str = "reviewers"
    # How long a decider holds its claim before the sweeper may finish it: far past the review
    # API function's Timeout (10 s), so the sweeper never races a decider that is still at work.
    claim_s: float = 60.0
    # After the sweeper finds a claim's task gone, how long it waits for the workflow's
    # CloseReview (run on the task's timeout, 12 s a try, 3 tries) to record a timeout before
    # it takes the task for told. Longer than CloseReview's whole retry budget.
    gone_grace_s: float = 120.0

    @classmethod
    def from_env(cls) -> ReviewSettings:
        allowed = {a.strip().lower() for a in os.environ.get("REVIEWERS", "").split(",") if a.strip()}
        return cls(
            allow_list=frozenset(allowed),
            base_url=os.environ.get("REVIEW_BASE_URL", "http://127.0.0.1:3000"),
            reminder_before_s=int(os.environ.get("REVIEW_REMINDER_BEFORE_S", "600")),
            reviewer_group=os.environ.get("REVIEWER_GROUP", "reviewers"),
        )


@dataclass
class SweepReport:
    open: int = 0
    oldest_age_s: float = 0.0
    heartbeats: int = 0
    reminders: int = 0
    closed: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)  # claims a dead decider left, finished
    errors: list[str] = field(default_factory=list)  # callbacks Step Functions did not take now


@dataclass
class ReviewService:
    store: ReviewStore
    callbacks: TaskCallbacks
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
        self,
        *,
        query_id: str,
        level: int,
        token: str,
        synthesis: dict[str, Any],
        timeout_s: int,
        attempt: int = 0,
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
            conversation=_conversation_so_far(synthesis.get("plan") or {}),
        )
        stored = self.store.open(review, token, attempt)
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
        # The workflow's word that its task timed out: a decision still being delivered (or
        # left by a decider that died) never reached the task, so the timeout wins over it.
        self.store.close(review_id, self._timed_out(reason), deciding_too=True)
        return self.store.get(review_id)

    def _timed_out(self, reason: str) -> Decision:
        return Decision(
            decision="timed_out", approver="system", at=self.clock(), comment=reason, channel="system"
        )

    # -- deciding ------------------------------------------------------------------------------

    def waiting(self, review_id: str) -> Review:
        """The review if it still waits for a decision; :class:`DecisionError` says why not."""
        review = self.store.get(review_id)
        if review is None:
            raise DecisionError(f"no review {review_id!r}", 404)
        if review.status != "open":
            raise DecisionError(already_decided(review), 410 if review.status == "timed_out" else 409)
        return review

    def authorise(self, principal: Principal) -> str:
        """The identity the audit record holds, if ``principal`` may decide reviews."""
        if principal.source == "system":
            raise DecisionError("the workflow never decides a review itself: a reviewer must", 403)
        who = principal.identity.strip().lower()
        if not who:
            raise DecisionError("say who you are: the approver is empty", 400)
        if who in self.settings.allow_list:
            return who
        if principal.source == "cognito":
            if self.settings.reviewer_group in principal.groups:
                return who
            raise DecisionError(
                f"{principal.identity.strip()!r} is neither on the reviewer allow-list nor in the "
                f"{self.settings.reviewer_group!r} group: ask an administrator to add you",
                403,
            )
        raise DecisionError(f"{principal.identity.strip()!r} is not on the reviewer allow-list", 403)

    def decide(
        self,
        review_id: str,
        action: Action,
        *,
        principal: Principal,
        comment: str,
        channel: Channel,
    ) -> Review:
        """Decide a review once: claim it, tell the waiting task, then record the decision.

        The review table never says approved or rejected before the task was told. A decider
        that dies after the claim leaves it ``deciding``; the sweeper finishes it (see
        :meth:`settle_claims`). Raises :class:`DecisionError`: 403 not a reviewer, 404 no such
        review, 409 decided or being decided by someone else, 410 timed out (also when the task
        stopped waiting before the decision reached it), 503 Step Functions unavailable."""
        who = self.authorise(principal)
        if len(comment) > 2000:
            raise DecisionError(f"the comment is {len(comment):,} characters; at most 2,000", 400)
        self.waiting(review_id)
        verdict: Literal["approved", "rejected"] = "approved" if action == "approve" else "rejected"
        now = self.clock()
        decision = Decision(decision=verdict, approver=who, at=now, comment=comment.strip(), channel=channel)
        claim = Claim(review_id=review_id, decision=decision, expires_at=now + self.settings.claim_s)
        if not self.store.claim(claim):
            raced = self.store.get(review_id)
            if raced is None:
                raise DecisionError(f"no review {review_id!r}", 404)
            raise DecisionError(already_decided(raced), 410 if raced.status == "timed_out" else 409)
        # Anything but the two errors below (a bug, the handler's own timeout) leaves the claim
        # for the sweeper: whether the task was told is then unknown, and it finds out.
        try:
            self._tell_current(claim)
        except TaskTokenGoneError as exc:
            if exc.maybe_delivered:
                raise DecisionError(_UNCONFIRMED, 503) from None
            # The token ended, which is not yet the review's end: the workflow's CloseReview
            # records a timeout, and a retried notifier stores a new token and tells the
            # reviewers again (settling the review timed out here left that retried task
            # waiting for a decision nobody could give: 6 of 1,000 reviews in a chaos run).
            self.store.release(claim)
            raise DecisionError(
                "the workflow was not waiting for a decision when yours arrived (the review timed "
                "out, or its notification is being sent again); nothing was decided",
                410,
            ) from None
        except TaskCallbackUnavailableError as exc:
            if exc.maybe_delivered:
                raise DecisionError(_UNCONFIRMED, 503) from None
            self.store.release(claim)
            raise DecisionError(
                f"the workflow could not be told ({exc.message}); nothing was decided: try again in a minute",
                503,
            ) from None
        self.store.settle(claim, decision)
        decided = self.store.get(review_id)
        assert decided is not None
        return decided

    def _tell_current(self, claim: Claim, attempts: int = 3) -> None:
        """:meth:`_tell`, again while the review's token changes under it: a retried notifier
        stores its new task's token, and the old one's task no longer waits."""
        for attempt in range(attempts):
            told = self.store.token(claim.review_id)
            try:
                self._tell(claim, told)
                return
            except TaskTokenGoneError as exc:
                if (
                    exc.maybe_delivered
                    or attempt == attempts - 1
                    or self.store.token(claim.review_id) == told
                ):
                    raise

    def _tell(self, claim: Claim, token: str | None = None) -> None:
        """Hand the claim's decision to the waiting task (on ``token``, else the stored one)."""
        token = token or self.store.token(claim.review_id)
        if token is None:
            raise PanelbrainError(
                f"review {claim.review_id} has no task token in the review table: the notifier "
                "stores it with the review; the claim stays for the sweeper"
            )
        d = claim.decision
        detail = json.dumps(
            {
                "review_id": claim.review_id,
                "decision": d.decision,
                "approver": d.approver,
                "comment": d.comment,
                "channel": d.channel,
            }
        )
        if d.decision == "approved":
            self.callbacks.send_success(token, detail)
        else:
            self.callbacks.send_failure(token, REJECTED_ERROR, detail)

    # -- the schedule --------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """Heartbeat every waiting review's task, remind before the timeout, close dead ones,
        and finish the claims dead deciders left."""
        now = self.clock()
        report = SweepReport()
        # Every open review, not a page of them: one left out misses its heartbeat and times out.
        # A review being decided waits too until its task is told: a claim whose decider died
        # (or could not confirm delivery) is settled a minute or more later, and its task must
        # not time out on heartbeats meanwhile (3 of 1,000 reviews did, in a throttled run).
        waiting = [
            *self.store.with_status("open", limit=None),
            *self.store.with_status("deciding", limit=None),
        ]
        for review in waiting:
            token = self.store.token(review.review_id)
            try:
                if token is None:
                    raise TaskTokenGoneError("NoToken", "no task token in the review table")
                self.callbacks.send_heartbeat(token)
            except TaskCallbackUnavailableError as exc:
                report.errors.append(f"{review.review_id}: heartbeat: {exc.message}")
                continue
            except TaskTokenGoneError:
                # Before the review's timeout a token that ended is not the review's end: a
                # retried notifier stores a new one (a token stored a moment ago may also not be
                # known yet). Past it, the workflow has stopped waiting, whatever stopped it. A
                # claim's review is the claim's to settle (settle_claims).
                if now < review.expires_at or review.status != "open":
                    continue
                if self.store.close(review.review_id, self._timed_out("the workflow stopped waiting")):
                    report.closed.append(review.review_id)
                continue
            report.heartbeats += 1
            if review.status != "open":
                continue
            self.store.heartbeat(review.review_id, now)
            report.open += 1
            report.oldest_age_s = max(report.oldest_age_s, now - review.created_at)
            if now >= review.expires_at - self.settings.reminder_before_s and self.store.mark_reminded(
                review.review_id, now
            ):
                self._notify(review, reminder=True)
                report.reminders += 1
        self.settle_claims(now, report)
        return report

    def settle_claims(self, now: float, report: SweepReport) -> None:
        """Finish every claim past its expiry, so the table ends saying what the task was told.

        The decider died somewhere between its claim and its record. Telling the task again
        settles it: taken, the task had not been told, and now is. Step Functions refuses a
        callback on a task that no longer waits with the same answer whether an earlier
        callback closed it or it timed out (TaskTimedOut: "the task token has either expired or
        the task associated with the token has already been closed",
        https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html).
        A timeout is what the workflow reports itself: its CloseReview records timed_out over a
        claim (:meth:`close`). So a task found gone is noted, and if no timeout was recorded
        ``gone_grace_s`` later, the task was told: the claim's decision is recorded."""
        for claim in self.store.claims():
            if now < claim.expires_at:
                continue  # its decider may still be at work
            if claim.gone_at is not None:
                told = now >= claim.gone_at + self.settings.gone_grace_s
                if told and self.store.settle(claim, claim.decision):
                    report.settled.append(claim.review_id)
                continue
            try:
                self._tell(claim)
            except TaskTokenGoneError:
                self.store.mark_gone(claim, now)
                continue
            except TaskCallbackUnavailableError as exc:
                report.errors.append(f"{claim.review_id}: decision: {exc.message}")
                continue
            if self.store.settle(claim, claim.decision):
                report.settled.append(claim.review_id)

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


_UNCONFIRMED = (
    "your decision was sent to the workflow but Step Functions did not confirm it; it is "
    "settled within a few minutes either way: reload the reviewer page then, do not decide again"
)


def already_decided(review: Review) -> str:
    d = review.decision
    if d is None:
        return f"review {review.review_id} is already {review.status}"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(d.at))
    if review.status == "deciding":
        verb = "approve" if d.decision == "approved" else "reject"
        return f"already being decided by {d.approver} ({verb}, via {d.channel} at {when})"
    if d.decision == "timed_out":
        return f"this review timed out at {when}; nothing was decided"
    return f"already {d.decision} by {d.approver} at {when} (via {d.channel})"


def _conversation_so_far(plan: dict[str, Any]) -> list[str]:
    """The readings a follow-up refined, oldest first, each with its turn: what the reviewer
    needs to judge "only women" or "what about Quebec?"."""
    conversation = plan.get("conversation") or {}
    history = conversation.get("history") or []
    first = int(conversation.get("turn", len(history) + 1)) - len(history)
    return [f"turn {first + i}: {Reading.model_validate(r).describe()}" for i, r in enumerate(history)]
