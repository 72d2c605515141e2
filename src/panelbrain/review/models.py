"""What a review is: the answer under review, its task, and the decision taken on it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# deciding: claimed by a reviewer, the waiting task not yet told (ReviewService.decide)
ReviewStatus = Literal["open", "deciding", "approved", "rejected", "timed_out"]
Action = Literal["approve", "reject"]
Channel = Literal["email", "slack", "web", "cli", "system"]
ACTIONS: tuple[Action, ...] = ("approve", "reject")


class Decision(BaseModel):
    """The audit record of one decision: who, when, what, why and through which channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Literal["approved", "rejected", "timed_out"]
    approver: str
    at: float
    comment: str = ""
    channel: Channel


class Review(BaseModel):
    """One open or closed review, as the review table holds it.

    The Step Functions task token lives beside it in the table and never in this model, so
    nothing rendered from a review (pages, e-mails, Slack messages, logs) can carry it.
    """

    model_config = ConfigDict(extra="forbid")

    review_id: str
    query_id: str
    level: int = Field(default=1, ge=1, le=2)  # 2: re-notified to the second-level channel
    status: ReviewStatus = "open"
    created_at: float
    expires_at: float  # when the waiting task times out
    question: str
    dataset: str
    answer: str
    table: list[dict[str, Any]] = []
    sql: str | None = None
    confidence: float
    confidence_reasons: list[str] = []
    review_reasons: list[str] = []  # why this answer went to review
    # A follow-up's conversation so far: the readings of its last turns, oldest first.
    conversation: list[str] = []
    heartbeats: int = 0
    last_heartbeat_at: float | None = None
    reminded_at: float | None = None
    decision: Decision | None = None


PrincipalSource = Literal["cognito", "email_link", "slack", "cli", "system"]


class Principal(BaseModel):
    """Who decides, as a channel proved it: never a name typed into a form.

    ``identity`` is what the allow-list and the audit record hold (an e-mail address, or
    ``slack:<team>/<user>``); ``groups`` are the user pool groups a signed-in user belongs to
    (membership of the reviewer group can stand in for the allow-list); ``source`` is how the
    identity was proved: a verified Cognito token, a link signed for one recipient, a signed
    Slack payload, the operator's own shell, or the workflow itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str = Field(min_length=1)
    source: PrincipalSource
    groups: frozenset[str] = frozenset()


class ReviewLink(BaseModel):
    """A signed decision link's parts: the review id, the action, an expiry and an HMAC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    review_id: str
    action: Action
    expires: int
    signature: str
    # Where the link was issued, bound by its signature: it is the decision's audit channel.
    channel: Literal["email", "web"] = "email"
