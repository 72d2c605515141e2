"""What the review service needs from the world, as interfaces: the review table, the
notification channels, and the waiting Step Functions task.

The AWS implementations live in :mod:`panelbrain.aws` (``aws.reviews.DynamoReviewStore``,
``aws.notify.AwsNotifier``, ``aws.callbacks.StepFunctionsCallbacks``) and translate botocore's
errors into the domain errors below, so nothing under :mod:`panelbrain.review` imports
``panelbrain.aws`` or botocore, and the service's races run in unit tests against in-memory fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from panelbrain.errors import PanelbrainError
from panelbrain.review.models import Decision, Review

__all__ = [
    "Claim",
    "Notifier",
    "ReviewStore",
    "TaskCallbackError",
    "TaskCallbackUnavailableError",
    "TaskCallbacks",
    "TaskTokenGoneError",
]


@dataclass(frozen=True)
class Claim:
    """A decision taken but not yet delivered to the waiting task: the review is ``deciding``.

    ``decision`` is the pending audit record (approved or rejected, who, when, how); the claim
    is the decider's until ``expires_at``, after which the sweeper finishes it. ``gone_at`` is
    when the sweeper found the task no longer waiting (delivered before a crash, or timed out:
    Step Functions answers the same to both)."""

    review_id: str
    decision: Decision
    expires_at: float
    gone_at: float | None = None


class ReviewStore(Protocol):
    """The review table: one record per review, its task token beside it, every change of
    status a conditional write (two deciders at once: one wins, the other is told)."""

    def open(self, review: Review, token: str, attempt: int = 0) -> Review:
        """Store a review and its token; a repeat (a retried notifier, ``attempt`` its Task's
        retry count) refreshes the token of a review still open or being decided, unless a
        later attempt's token is already stored (the writes of a timed-out attempt can land
        after its retry's), and returns what is stored."""
        ...

    def get(self, review_id: str) -> Review | None:
        """The review; a ``deciding`` one carries its pending decision in ``decision``."""
        ...

    def token(self, review_id: str) -> str | None: ...

    def close(self, review_id: str, decision: Decision, *, deciding_too: bool = False) -> bool:
        """Record ``decision`` if the review is open (or deciding too, when ``deciding_too``:
        the workflow says its task timed out, so no pending decision reached it); False if it
        was not."""
        ...

    def claim(self, claim: Claim) -> bool:
        """open -> deciding with ``claim``; False if the review was not open (someone else
        decides or decided, or it closed)."""
        ...

    def settle(self, claim: Claim, decision: Decision) -> bool:
        """deciding (by this very claim) -> ``decision.decision``, ``decision`` the audit record;
        False if the claim is no longer the review's (settled by someone else, or closed)."""
        ...

    def release(self, claim: Claim) -> bool:
        """deciding (by this claim) -> open again: the task was not told; False if not held."""
        ...

    def mark_gone(self, claim: Claim, at: float) -> bool:
        """Note on the claim that its task was found no longer waiting at ``at``."""
        ...

    def claims(self) -> list[Claim]:
        """Every ``deciding`` review's claim."""
        ...

    def heartbeat(self, review_id: str, at: float) -> None: ...

    def mark_reminded(self, review_id: str, at: float) -> bool:
        """True the first time only: one reminder per review."""
        ...

    def with_status(
        self, status: str, limit: int | None = 100, *, newest_first: bool = False
    ) -> list[Review]:
        """Reviews with ``status``, oldest first (newest first if asked): at most ``limit``,
        or all of them when ``limit`` is None."""
        ...

    def of_query(self, query_id: str) -> list[Review]: ...


class Notifier(Protocol):
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
    ) -> None: ...


class TaskCallbackError(PanelbrainError):
    """The waiting task could not be told. ``reason`` is Step Functions' error code (or the
    failure's name); ``maybe_delivered`` is True when an earlier attempt of the same call may
    have reached Step Functions (the SDK retried, or the answer was lost on the way back)."""

    def __init__(self, reason: str, message: str = "", *, maybe_delivered: bool = False) -> None:
        super().__init__(message or reason, reason=reason, maybe_delivered=maybe_delivered)
        self.reason = reason
        self.maybe_delivered = maybe_delivered


class TaskTokenGoneError(TaskCallbackError):
    """The task is no longer waiting: it timed out, was closed by an earlier callback, or its
    execution ended (Step Functions' TaskTimedOut, TaskDoesNotExist or InvalidToken)."""


class TaskCallbackUnavailableError(TaskCallbackError):
    """Step Functions could not be asked now (throttled, unreachable, failing): try later."""


class TaskCallbacks(Protocol):
    """The callback side of a ``.waitForTaskToken`` task. Each call raises
    :class:`TaskTokenGoneError` when the task no longer waits and :class:`TaskCallbackUnavailableError`
    when Step Functions could not be asked."""

    def send_success(self, token: str, output: str) -> None:
        """The task succeeds with ``output`` (a JSON document)."""
        ...

    def send_failure(self, token: str, error: str, cause: str) -> None:
        """The task fails with ``error`` (what the workflow's Catch matches) and ``cause``."""
        ...

    def send_heartbeat(self, token: str) -> None: ...
