"""The bedrock provider: Sonnet-class brain, Haiku-class workers, through langchain-aws.

Every call goes through ``ChatBedrockConverse`` with structured output into pydantic models,
a prompt-cache point after the system prompt and data dictionary, botocore adaptive retries,
and ``max_tokens`` set (Bedrock reserves quota against it). Token usage is recorded per call,
cache reads and writes apart from plain input. When Bedrock keeps throttling, a circuit breaker
sends the rest of the container's calls to the offline provider for a while, and the answer says
so. langchain loads only when this module is used.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from panelbrain.aws import clients
from panelbrain.data.dictionary import Dataset
from panelbrain.errors import BadInputError, PanelbrainError
from panelbrain.models import WORKERS, Filter, Plan, QueryInput, Usage, Worker

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

Role = Literal["brain", "worker"]
Model = TypeVar("Model", bound=BaseModel)
CACHE_POINT = {"cachePoint": {"type": "default"}}


class ModelThrottledError(PanelbrainError):
    """Bedrock kept throttling after botocore's retries; state machines retry on this name."""


class ModelOutputError(PanelbrainError):
    """The model's structured output did not fit the schema or the data dictionary."""


class PlanDraft(BaseModel):
    """What the brain returns for a question; checked against the dictionary before use."""

    intent: Literal["share", "mean", "distribution"]
    measure: str = Field(description="column to estimate")
    values: list[str] = Field(default=[], description="for a share: the value codes counted")
    breakdown: str | None = Field(default=None, description="column to break the estimate down by")
    filters: list[Filter] = Field(default=[], description="respondents to keep: column and value codes")
    weighted: bool = True
    confidence: float = Field(ge=0, le=1, description="how sure the reading of the question is")
    reasons: list[str] = Field(default=[], description="why, and any guess made")


class SqlDraft(BaseModel):
    sql: str = Field(description="one DuckDB SELECT over the dataset's table")


class Narrative(BaseModel):
    answer: str = Field(description="two to four sentences answering the question from the table")


@dataclass(frozen=True)
class ModelSpec:
    """A role's model: a model id, a cross-region inference profile id, or a provisioned ARN."""

    model_id: str
    base_model_id: str | None = None

    @property
    def is_arn(self) -> bool:
        return self.model_id.startswith("arn:")


@dataclass(frozen=True)
class BedrockSettings:
    brain: ModelSpec
    worker: ModelSpec
    region: str
    max_tokens: int = 2_000
    max_attempts: int = 6

    @classmethod
    def from_env(cls) -> BedrockSettings:
        def spec(role: str, default: str) -> ModelSpec:
            return ModelSpec(
                os.environ.get(f"PANELBRAIN_{role}_MODEL_ID", default),
                os.environ.get(f"PANELBRAIN_{role}_BASE_MODEL_ID"),
            )

        return cls(
            brain=spec("BRAIN", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            worker=spec("WORKER", "us.anthropic.claude-haiku-4-5-20251001-v1:0"),
            region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
        )


class CircuitBreaker:
    """Opens after ``threshold`` throttled calls in a row; stays open for ``cooldown_s``."""

    def __init__(self, threshold: int = 3, cooldown_s: float = 60.0) -> None:
        self.threshold, self.cooldown_s = threshold, cooldown_s
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        with self._lock:
            if self._opened_at is not None and time.monotonic() - self._opened_at > self.cooldown_s:
                self._opened_at, self._failures = None, 0
            return self._opened_at is not None

    def record(self, throttled: bool) -> None:
        with self._lock:
            self._failures = self._failures + 1 if throttled else 0
            if self._failures >= self.threshold:
                self._opened_at = time.monotonic()


BREAKER = CircuitBreaker()


def dictionary_prompt(spec: Dataset) -> str:
    """The data dictionary as the model sees it: stable text, so the cache point pays off."""
    table = spec.main_table
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "label": c.label,
            "synonyms": list(c.synonyms),
            "values": [{"code": v.value, "label": v.label, "synonyms": list(v.synonyms)} for v in c.values],
        }
        for c in table.columns
        if c.role not in ("id", "auxiliary")
    ]
    return json.dumps({"dataset": spec.name, "table": table.name, "columns": columns}, indent=1)


SYSTEM = """You are the planning brain of panelbrain, which answers questions about survey data
with weighted estimates. Read the analyst's question and return a plan: the intent (share of
respondents giving some value codes, mean of a numeric column, or distribution of a categorical
column), the measure column, the value codes, an optional breakdown column, filters, and whether
to weight (weight unless the question says unweighted). Use only the column names and value codes
of the data dictionary below. Lower your confidence and say why whenever you have to guess.

Data dictionary:
"""


class BedrockProvider:
    """Structured calls to Bedrock for one role each; clients injected for tests."""

    def __init__(self, settings: BedrockSettings, client: BedrockRuntimeClient | None = None) -> None:
        self.settings = settings
        self._client = client

    @classmethod
    def from_env(cls, client: BedrockRuntimeClient | None = None) -> BedrockProvider:
        return cls(BedrockSettings.from_env(), client)

    @property
    def client(self) -> BedrockRuntimeClient:
        """The given client, else the builder's: one per container (a provider is made per
        invocation), so the adaptive retry rate that botocore learns on a client carries over
        from one invocation to the next."""
        if self._client is not None:
            return self._client
        return clients.client(
            "bedrock-runtime",
            region=self.settings.region,
            # On a laptop the local engine fills the environment with the emulator's fake
            # credentials; a named profile (read from ~/.aws) reaches the real Bedrock instead.
            profile=os.environ.get("PANELBRAIN_BEDROCK_PROFILE") or None,
            # https://docs.aws.amazon.com/boto3/latest/guide/retries.html (adaptive mode)
            config={"retries": {"mode": "adaptive", "max_attempts": self.settings.max_attempts}},
        )

    def _chat(self, role: Role) -> Any:
        from langchain_aws import ChatBedrockConverse

        spec = self.settings.brain if role == "brain" else self.settings.worker
        options: dict[str, Any] = {}
        if spec.is_arn:  # provisioned throughput or application profile: langchain needs the family
            options = {"provider": "anthropic", "base_model_id": spec.base_model_id}
        return ChatBedrockConverse(
            model=spec.model_id,
            client=self.client,
            max_tokens=self.settings.max_tokens,
            temperature=0.0,
            **options,
        )

    def structured(self, role: Role, schema: type[Model], system: str, user: str) -> tuple[Model, Usage]:
        """One call: system prompt + cache point, the user turn, parsed into ``schema``."""
        from botocore.exceptions import ClientError
        from langchain_core.messages import HumanMessage, SystemMessage

        spec = self.settings.brain if role == "brain" else self.settings.worker
        runnable = self._chat(role).with_structured_output(schema, include_raw=True)
        messages = [
            SystemMessage(content=[{"type": "text", "text": system}, CACHE_POINT]),
            HumanMessage(user),
        ]
        try:
            result = runnable.invoke(messages)
        except ClientError as exc:
            throttled = exc.response.get("Error", {}).get("Code") in (
                "ThrottlingException",
                "TooManyRequestsException",
            )
            BREAKER.record(throttled)
            if throttled:
                raise ModelThrottledError(f"Bedrock throttled {spec.model_id} after retries") from exc
            raise
        BREAKER.record(False)
        if result.get("parsing_error") is not None or result.get("parsed") is None:
            raise ModelOutputError(f"{spec.model_id} returned output that does not fit {schema.__name__}")
        return result["parsed"], usage_of(spec.model_id, result["raw"])

    def plan(self, query: QueryInput, spec: Dataset) -> Plan:
        from panelbrain.agents.offline import OfflinePlanner

        if BREAKER.open:
            return fallback(OfflinePlanner(spec).plan(query), "Bedrock kept throttling")
        try:
            draft, usage = self.structured(
                "brain", PlanDraft, SYSTEM + dictionary_prompt(spec), query.question
            )
        except ModelThrottledError:
            if BREAKER.open:
                return fallback(OfflinePlanner(spec).plan(query), "Bedrock kept throttling")
            raise
        return checked_plan(draft, query, spec, usage)


def usage_of(model_id: str, message: Any) -> Usage:
    """Tokens of one response; langchain's input count includes cache reads and writes."""
    meta = getattr(message, "usage_metadata", None) or {}
    details = meta.get("input_token_details", {}) or {}
    read, write = int(details.get("cache_read", 0)), int(details.get("cache_creation", 0))
    return Usage(
        model_id=model_id,
        input_tokens=max(int(meta.get("input_tokens", 0)) - read - write, 0),
        output_tokens=int(meta.get("output_tokens", 0)),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def fallback(plan: Plan, why: str) -> Plan:
    reasons = [f"{why}: answered by the offline provider instead", *plan.reasons]
    return plan.model_copy(update={"provider": "offline (bedrock fallback)", "reasons": reasons})


def checked_plan(draft: PlanDraft, query: QueryInput, spec: Dataset, usage: Usage) -> Plan:
    """Hold the model's plan to the dictionary: unknown columns fail, unknown values are dropped."""
    table = spec.main_table
    names = set(table.column_names)
    for column in [draft.measure, draft.breakdown, *(f.column for f in draft.filters)]:
        if column is not None and column not in names:
            raise BadInputError(f"the model named a column {column!r} that {spec.name} does not have")
    confidence, reasons = draft.confidence, list(draft.reasons)

    def known(column: str, values: list[str]) -> list[str]:
        nonlocal confidence
        codes = {v.value for v in table.column(column).values}
        kept = [v for v in values if v in codes]
        if len(kept) != len(values):
            confidence -= 0.3
            reasons.append(f"dropped value codes the dictionary does not list for {column}")
        return kept

    values = known(draft.measure, draft.values) if draft.intent == "share" else []
    filters = [
        Filter(column=f.column, values=kept) for f in draft.filters if (kept := known(f.column, f.values))
    ]
    intent = draft.intent if draft.intent != "share" or values else "distribution"
    needs: dict[Worker, bool] = dict.fromkeys(WORKERS, True)
    needs["weight_applier"] = draft.weighted and spec.weighting is not None
    return Plan(
        query_id=query.query_id,
        question=query.question,
        dataset=spec.name,
        intent=intent,
        measure=draft.measure,
        values=values,
        breakdown=draft.breakdown,
        filters=filters,
        weighted=draft.weighted and spec.weighting is not None,
        needs=needs,
        confidence=round(max(min(confidence, 1.0), 0.0), 4),
        reasons=reasons,
        provider="bedrock",
        usage=[usage],
        latency_scale=query.latency_scale,
    )


SQL_SYSTEM = """You write one DuckDB SELECT for panelbrain's SQL writer. It must count respondents
for a plan: columns `grp` (the breakdown column, only when the plan has one), `category` (the
measure's value, for shares and distributions) and `n` (count(*)); apply the plan's filters in
WHERE; GROUP BY and ORDER BY grp, category. For a mean, return `grp`, `n` (count of the measure)
and `unweighted_mean`. Use only the table and columns of the data dictionary below; no other
tables, no table functions, no files.

Data dictionary:
"""

NARRATE_SYSTEM = """You write the answer paragraph for panelbrain: two to four plain sentences that
answer the analyst's question from the weighted table given, quoting estimates as percentages
(or means) with their 95 % intervals and bases, naming the groups flagged as different, and
saying whether the figures are weighted. Never invent a number that is not in the table."""


def write_sql(
    provider: BedrockProvider, plan: Plan, spec: Dataset, feedback: str | None = None
) -> tuple[str, Usage]:
    user = json.dumps(
        plan.model_dump(mode="json", include={"intent", "measure", "values", "breakdown", "filters"})
    )
    if feedback:
        user += f"\n\nYour previous statement was refused: {feedback}. Write it again within the rules."
    draft, usage = provider.structured("worker", SqlDraft, SQL_SYSTEM + dictionary_prompt(spec), user)
    return draft.sql, usage


def narrate(
    provider: BedrockProvider, question: str, rows: list[dict[str, Any]], weighted: bool
) -> tuple[str, Usage]:
    user = json.dumps({"question": question, "weighted": weighted, "table": rows})
    draft, usage = provider.structured("brain", Narrative, NARRATE_SYSTEM, user)
    return draft.answer, usage
