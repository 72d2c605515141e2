"""Typed boundaries of the pipeline: what each state receives and returns.

Every Lambda handler parses its event into one of these and serialises one back, so a payload
that does not fit fails at the edge with a message naming the field, never deep in an agent.
Only pydantic and the standard library are imported here: the API and poller functions use
these models too.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Intent = Literal["share", "mean", "distribution"]
Worker = Literal["sql_writer", "weight_applier", "data_processor"]
Status = Literal["answered", "needs_review", "rejected", "failed"]
WORKERS: tuple[Worker, ...] = ("sql_writer", "weight_applier", "data_processor")


def worker_needs(weighted: bool) -> dict[Worker, bool]:
    """The workers a plan runs: every one, the weight applier only for a weighted estimate."""
    return {worker: weighted or worker != "weight_applier" for worker in WORKERS}


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(_Model):
    """Tokens of one model call; the offline provider records zeros."""

    model_id: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


CONVERSATION_ID = r"^c-[0-9a-f]{16}$"
ReadAs = Literal["question", "followup", "new"]
# How many resolved plans a follow-up carries to the planner: enough for "same as before" style
# references, small enough that the payload does not grow with the conversation.
HISTORY_TURNS = 3


class Filter(_Model):
    """Respondents to keep: ``column`` is one of ``values`` or, with ``negate``, none of them
    (a missing value is neither: it is left out either way, as SQL's NOT IN leaves out NULL).
    A plan's filters all apply (AND); the values of one filter are alternatives (OR)."""

    column: str
    values: list[str] = Field(min_length=1)
    negate: bool = False


class _Asked(_Model):
    """What a question asks for: the fields a plan and its reading share."""

    intent: Intent
    measure: str
    values: list[str] = []
    breakdown: str | None = None
    filters: list[Filter] = []
    weighted: bool = True


class Reading(_Asked):
    """A plan reduced to what was asked (no question text, no table): what a conversation keeps
    per turn and what a follow-up is refined from."""

    @classmethod
    def of(cls, plan: BaseModel | dict[str, Any]) -> Reading:
        fields = plan.model_dump(mode="json") if isinstance(plan, BaseModel) else plan
        return cls.model_validate({k: fields[k] for k in cls.model_fields if k in fields})

    def describe(self) -> str:
        """One line in dictionary names: "share of abortion in Yes; by province; gender in Female"."""
        what = self.measure + (
            f" in {', '.join(self.values)}" if self.intent == "share" and self.values else ""
        )
        parts = [f"{self.intent} of {what}"]
        if self.breakdown:
            parts.append(f"by {self.breakdown}")
        parts += [f"{f.column} {'not in' if f.negate else 'in'} {', '.join(f.values)}" for f in self.filters]
        if not self.weighted:
            parts.append("unweighted")
        return "; ".join(parts)


class Conversation(_Model):
    """Which conversation a question belongs to, its turn, and the resolved readings of the last
    turns (oldest first, at most :data:`HISTORY_TURNS`): never transcripts, never tables."""

    conversation_id: str = Field(pattern=CONVERSATION_ID)
    turn: int = Field(ge=1)
    history: list[Reading] = Field(default=[], max_length=HISTORY_TURNS)


class QueryInput(_Model):
    """What starts a pipeline execution."""

    query_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    question: str = Field(min_length=1, max_length=2_000)
    dataset: str = "ces11"
    provider: Literal["offline", "bedrock"] = "offline"
    latency_scale: float = Field(default=0.0, ge=0.0, le=10.0)
    conversation: Conversation | None = None

    @field_validator("question")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty")
        if _CONTROL.search(value):
            raise ValueError("the question contains control characters")
        return value.strip()


class QueryRequest(_Model):
    """The body of ``POST /queries``."""

    question: str = Field(min_length=1, max_length=2_000)
    # Default: the conversation's dataset for a follow-up, else ces11.
    dataset: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    provider: Literal["offline", "bedrock"] = "offline"
    # A follow-up names the conversation the API returned with its first question.
    conversation_id: str | None = Field(default=None, pattern=CONVERSATION_ID)

    @field_validator("question")
    @classmethod
    def _printable(cls, value: str) -> str:
        return QueryInput._printable(value)


class QueryMessage(_Model):
    """What the API puts on the queue and the poller takes off it."""

    query_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    question: str
    dataset: str
    provider: Literal["offline", "bedrock"] = "offline"
    conversation: Conversation | None = None


class Plan(_Asked):
    """BrainPlan's output: what to compute, and which workers compute it."""

    query_id: str
    question: str
    dataset: str
    needs: dict[Worker, bool]
    confidence: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = []
    provider: str
    usage: list[Usage] = []
    latency_scale: float = 0.0
    # The dataset version the plan was made on (its content hash when datasets are served from
    # S3): every later state reads this version, and the result cache keys the answer by it.
    data_version: str | None = None
    # In a conversation: which turn, and whether it was read as a refinement of the last one.
    conversation: Conversation | None = None
    read_as: ReadAs = "question"
    # Set by BrainPlan when the brain's reading was answered before: the workflow persists that
    # answer (under this result-cache key) instead of running the workers.
    cache_key: str | None = None


class ClaimCheck(_Model):
    """A payload too large to travel inline, kept in S3 (:mod:`panelbrain.aws.blobs`): where it
    is and how big; for a table, how many rows and the first of them."""

    claim_check: str
    bytes: int
    rows: int | None = None
    head: list[dict[str, Any]] | None = None


class WorkerResult(_Model):
    """Every worker returns this envelope: skipped workers say so."""

    worker: Worker
    skipped: bool = False
    output: dict[str, Any] = {}
    usage: list[Usage] = []


class Synthesis(_Model):
    """BrainSynthesise's output: the answer, its table, its confidence and why."""

    query_id: str
    question: str
    dataset: str
    answer: str
    # In a workflow state, a table or weighting too large to travel inline is a claim check.
    table: ClaimCheck | list[dict[str, Any]] = Field(union_mode="left_to_right")
    sql: str | None
    weighting: ClaimCheck | dict[str, Any] | None = Field(union_mode="left_to_right")
    confidence: float = Field(ge=0.0, le=1.0)
    confidence_reasons: list[str]
    provider: str
    plan: dict[str, Any]
    usage: list[Usage] = []
    route: Literal["answer", "review", "low_confidence"] = "answer"
    review_reasons: list[str] = []  # why the routing rules sent it to review


class FormattedAnswer(_Model):
    """Markdown for people; programs read the synthesis itself, which travels beside it."""

    query_id: str
    markdown: ClaimCheck | str = Field(union_mode="left_to_right")


class TerminalRecord(_Model):
    """What the Persist state writes: the query's final status and what it ended with."""

    query_id: str
    status: Status
    route: str
    result: dict[str, Any] = {}
    reason: str | None = None
    cache_key: str | None = None  # the answer is the result cache's under this key
