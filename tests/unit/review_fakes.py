"""In-memory fakes of the review service's three ports, faithful where the service relies on
them: every status change of the store is atomic and conditional (as a DynamoDB conditional
update is on one item), and the callbacks behave as Step Functions' task API does: the first
callback closes the task, any later one (or one after a timeout) is refused as TaskTimedOut."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from panelbrain.review.models import Decision, Review
from panelbrain.review.ports import (
    Claim,
    TaskCallbackUnavailableError,
    TaskTokenGoneError,
)


def a_review(review_id: str, *, at: float, **fields: Any) -> Review:
    """An open review of a small answer, created at ``at`` and waiting an hour."""
    base: dict[str, Any] = {
        "query_id": "q-1",
        "question": "What share support a ban?",
        "dataset": "ces11",
        "answer": "12%",
        "confidence": 0.7,
    }
    return Review(review_id=review_id, created_at=at, expires_at=at + 3600, **{**base, **fields})


@dataclass
class _Row:
    review: Review
    token: str
    attempt: int = 0
    claim: Claim | None = None


class MemoryReviewStore:
    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()

    def open(self, review: Review, token: str, attempt: int = 0) -> Review:
        with self._lock:
            row = self._rows.get(review.review_id)
            if row is None:
                self._rows[review.review_id] = _Row(
                    review.model_copy(update={"status": "open"}), token, attempt
                )
            elif row.review.status in ("open", "deciding") and attempt > row.attempt:
                row.token, row.attempt = token, attempt
            return self._view(self._rows[review.review_id])

    def _view(self, row: _Row) -> Review:
        if row.review.status == "deciding" and row.claim is not None:
            return row.review.model_copy(update={"decision": row.claim.decision})
        return row.review.model_copy()

    def get(self, review_id: str) -> Review | None:
        with self._lock:
            row = self._rows.get(review_id)
            return self._view(row) if row else None

    def token(self, review_id: str) -> str | None:
        with self._lock:
            row = self._rows.get(review_id)
            return row.token if row else None

    def _set(self, row: _Row, status: str, decision: Decision | None, claim: Claim | None) -> None:
        row.review = row.review.model_copy(update={"status": status, "decision": decision})
        row.claim = claim

    def close(self, review_id: str, decision: Decision, *, deciding_too: bool = False) -> bool:
        with self._lock:
            row = self._rows.get(review_id)
            allowed = ("open", "deciding") if deciding_too else ("open",)
            if row is None or row.review.status not in allowed:
                return False
            self._set(row, decision.decision, decision, None)
            return True

    def claim(self, claim: Claim) -> bool:
        with self._lock:
            row = self._rows.get(claim.review_id)
            if row is None or row.review.status != "open":
                return False
            self._set(row, "deciding", None, claim)
            return True

    def _held(self, claim: Claim) -> _Row | None:
        row = self._rows.get(claim.review_id)
        if row is None or row.review.status != "deciding" or row.claim is None:
            return None
        return row if row.claim.decision == claim.decision else None

    def settle(self, claim: Claim, decision: Decision) -> bool:
        with self._lock:
            row = self._held(claim)
            if row is None:
                return False
            self._set(row, decision.decision, decision, None)
            return True

    def release(self, claim: Claim) -> bool:
        with self._lock:
            row = self._held(claim)
            if row is None:
                return False
            self._set(row, "open", None, None)
            return True

    def mark_gone(self, claim: Claim, at: float) -> bool:
        with self._lock:
            row = self._held(claim)
            if row is None or row.claim is None or row.claim.gone_at is not None:
                return False
            row.claim = Claim(claim.review_id, claim.decision, claim.expires_at, gone_at=at)
            return True

    def claims(self) -> list[Claim]:
        with self._lock:
            return [r.claim for r in self._rows.values() if r.review.status == "deciding" and r.claim]

    def heartbeat(self, review_id: str, at: float) -> None:
        with self._lock:
            row = self._rows[review_id]
            if row.review.status == "open":
                beats = row.review.heartbeats + 1
                row.review = row.review.model_copy(update={"heartbeats": beats, "last_heartbeat_at": at})

    def mark_reminded(self, review_id: str, at: float) -> bool:
        with self._lock:
            row = self._rows[review_id]
            if row.review.reminded_at is not None or row.review.status != "open":
                return False
            row.review = row.review.model_copy(update={"reminded_at": at})
            return True

    def with_status(
        self, status: str, limit: int | None = 100, *, newest_first: bool = False
    ) -> list[Review]:
        with self._lock:
            found = sorted(
                (self._view(r) for r in self._rows.values() if r.review.status == status),
                key=lambda r: r.created_at,
                reverse=newest_first,
            )
        return found if limit is None else found[:limit]

    def of_query(self, query_id: str) -> list[Review]:
        with self._lock:
            return [self._view(r) for r in self._rows.values() if r.review.query_id == query_id]


TaskState = Literal["waiting", "succeeded", "failed", "timed_out"]


@dataclass
class Task:
    state: TaskState = "waiting"
    output: str | None = None
    error: str | None = None
    heartbeats: int = 0


@dataclass
class FakeStepFunctions:
    """The waiting tasks, by token. ``fault`` (if set) is called around each callback: with
    ``before=True`` before Step Functions takes it, ``before=False`` after; what it raises is
    what the caller sees (a crash, a lost answer, a throttle)."""

    tasks: dict[str, Task] = field(default_factory=dict)
    fault: Callable[[str, bool], None] | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, token: str) -> Task:
        self.tasks[token] = Task()
        return self.tasks[token]

    def time_out(self, token: str) -> None:
        self.tasks[token].state = "timed_out"

    def _callback(self, kind: str, token: str, close: Callable[[Task], None] | None) -> None:
        if self.fault:
            self.fault(kind, True)
        with self._lock:
            self.calls.append((kind, token))
            task = self.tasks.get(token)
            if task is None:
                raise TaskTokenGoneError("InvalidToken", "the provided token is not valid")
            if task.state != "waiting":
                raise TaskTokenGoneError(
                    "TaskTimedOut",
                    "the task token has either expired or the task associated with the token "
                    "has already been closed",
                )
            if close is None:
                task.heartbeats += 1
            else:
                close(task)
        if self.fault:
            self.fault(kind, False)

    def send_success(self, token: str, output: str) -> None:
        def succeed(task: Task) -> None:
            task.state, task.output = "succeeded", output

        self._callback("success", token, succeed)

    def send_failure(self, token: str, error: str, cause: str) -> None:
        def fail(task: Task) -> None:
            task.state, task.error = "failed", error

        self._callback("failure", token, fail)

    def send_heartbeat(self, token: str) -> None:
        self._callback("heartbeat", token, None)


def throttled(kind: str, before: bool) -> None:
    """A fault: Step Functions refuses every call now (nothing taken)."""
    if before:
        raise TaskCallbackUnavailableError("ThrottlingException", "rate exceeded")


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bool]] = []

    def notify(self, review: Review, approve: str, reject: str, page: str, **options: Any) -> None:
        self.sent.append((review.review_id, bool(options.get("reminder"))))
