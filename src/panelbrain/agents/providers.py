"""One provider interface for the agents: an offline and a Bedrock implementation, and one
fallback wrapper that turns any model failure into the offline answer with a note.

The agents ask :func:`provider_for` for the provider a query names and call its three steps
(plan, SQL, narration); none of them checks which provider it has. The wrapper is the only
place that knows Bedrock can fail: a throttle, a timeout, a refused request or output that does
not fit comes back as the offline provider's result, flagged ``fallback`` and saying why, so a
query is never failed by the model and an answer that fell back is never published as
confident (the synthesiser caps it below the answer threshold). The circuit breaker lives here
too: after repeated failures the container stops calling Bedrock for a while; every change of
its state is logged and every opening and fallback is a Powertools metric.

Nothing heavy is imported here: langchain loads only when the Bedrock implementation calls.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any, TypeVar

from panelbrain.errors import PanelbrainError
from panelbrain.models import Plan, QueryInput, Usage

if TYPE_CHECKING:
    from panelbrain.data.dictionary import Dataset, Table
    from panelbrain.data.engine import QueryEngine, QueryResult

FALLBACK_PROVIDER = "offline (bedrock fallback)"


class ModelError(PanelbrainError):
    """Bedrock gave no usable result; ``usage`` holds the tokens already spent on the way."""

    # Whether the failure says Bedrock is unavailable (the breaker counts it) or only that one
    # answer was unusable (a reply came: the service is up).
    unavailable = True

    def __init__(self, message: str, usage: list[Usage] | None = None, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.usage = list(usage or [])


class ModelThrottledError(ModelError):
    """Bedrock kept throttling after botocore's retries (state machines retry on this name)."""


class ModelUnavailableError(ModelError):
    """Bedrock timed out, could not be reached, or refused the request (access, validation)."""


class ModelOutputError(ModelError):
    """The model's answer did not fit the schema, the dictionary, the guard or the table."""

    unavailable = False


@dataclass(kw_only=True)
class _Costed:
    """What a model step cost, what it noted, and whether the offline provider answered it."""

    usage: list[Usage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fallback: bool = False


@dataclass
class SqlOutcome(_Costed):
    """The rows the SQL writer's statement returned, and what writing it cost."""

    result: QueryResult


@dataclass
class Narration(_Costed):
    """The answer paragraph: the model's (checked) or the deterministic one."""

    text: str


_Step = TypeVar("_Step", bound=_Costed)


def _fell_back(outcome: _Step, note: str, usage: list[Usage]) -> _Step:
    """The fallback's ``outcome``, also charged what the failed primary spent and saying why."""
    return replace(outcome, usage=[*usage, *outcome.usage], notes=[note, *outcome.notes], fallback=True)


class Provider(ABC):
    """What every provider does for the agents, one method per model step."""

    name: str

    @abstractmethod
    def plan(self, query: QueryInput, spec: Dataset) -> Plan:
        """Read the question into a plan held to the dictionary."""

    @abstractmethod
    def write_sql(self, plan: Plan, engine: QueryEngine) -> SqlOutcome:
        """Write the bases SQL for ``plan`` and run it through the guard and the engine."""

    @abstractmethod
    def narrate(self, plan: Plan, table: Table, rows: list[dict[str, Any]], text: str) -> Narration:
        """The answer paragraph for ``rows``; ``text`` is the deterministic one."""


class OfflineProvider(Provider):
    """Deterministic, from the dictionary: the embedded default and the degraded mode."""

    name = "offline"

    def plan(self, query: QueryInput, spec: Dataset) -> Plan:
        from panelbrain.agents.followup import plan_in_conversation
        from panelbrain.agents.offline import OfflinePlanner

        return plan_in_conversation(OfflinePlanner(spec), query)

    def write_sql(self, plan: Plan, engine: QueryEngine) -> SqlOutcome:
        from panelbrain.agents.sql_writer import sql_for

        return SqlOutcome(engine.run(sql_for(plan, engine.data.table.name)))

    def narrate(self, plan: Plan, table: Table, rows: list[dict[str, Any]], text: str) -> Narration:
        return Narration(text)


class CircuitBreaker:
    """Opens after ``threshold`` failed calls in a row (throttles, timeouts, unreachable
    endpoint, refused requests); stays open for ``cooldown_s``, then lets calls through again.
    Each change of state is logged, and each opening is a metric, so an operator sees when a
    container stopped calling Bedrock and when it started again."""

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
                logger().info(
                    "Bedrock circuit closed", extra={"breaker": "closed", "after_s": self.cooldown_s}
                )
            return self._opened_at is not None

    def record(self, failed: bool, why: str = "") -> None:
        with self._lock:
            self._failures = self._failures + 1 if failed else 0
            if self._opened_at is None and self._failures >= self.threshold:
                self._opened_at = time.monotonic()
                logger().warning(
                    "Bedrock circuit opened",
                    extra={
                        "breaker": "open",
                        "failures": self._failures,
                        "cooldown_s": self.cooldown_s,
                        "why": why,
                    },
                )
                emit_metric("BedrockCircuitOpened")


BREAKER = CircuitBreaker()


class _LogStream:
    """Where the breaker's metric records go (its log lines go through panelbrain.observe),
    decided when each is written. In Lambda, standard output:
    the runtime sends it to CloudWatch Logs, which extracts EMF metrics from it (Lambda sets
    AWS_LAMBDA_FUNCTION_NAME, https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html).
    Run locally, standard error: the CLI's standard output is its answer (`--json` is one
    document). Looked up on each write, so a test capturing either stream sees the records."""

    def write(self, text: str) -> int:
        return _stream().write(text)

    def flush(self) -> None:
        _stream().flush()


def _stream() -> IO[str]:
    return sys.stdout if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else sys.stderr


def logger() -> Any:
    """The functions' one Powertools logger (panelbrain.observe), imported on first use: a
    second Logger of the same service shares the first one's handler, so which stream a line
    reached depended on which module built its Logger first."""
    from panelbrain.observe import logger as shared

    return shared


def emit_metric(name: str) -> None:
    """One count of ``name`` as an EMF record, written at once (the agents' handlers carry no
    ``log_metrics`` decorator, and a fallback must be counted even if the invocation fails later)."""
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    metrics = AmazonCloudWatchEMFProvider(
        namespace=os.environ.get("PANELBRAIN_METRICS_NAMESPACE", "panelbrain"), service="bedrock"
    )
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    _LogStream().write(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")) + "\n")


class WithFallback(Provider):
    """``primary`` (Bedrock) for every step; ``fallback`` (offline) whenever it fails or the
    breaker is open, with a note naming the step and the failure."""

    def __init__(self, primary: Provider, fallback: Provider, breaker: CircuitBreaker | None = None) -> None:
        self.primary, self.fallback = primary, fallback
        self._breaker = breaker
        self.name = primary.name

    @property
    def breaker(self) -> CircuitBreaker:
        # Looked up at call time, so a test (or a new container) can replace the module's breaker.
        return self._breaker or BREAKER

    def _skip(self, step: str) -> str | None:
        if self.breaker.open:
            emit_metric("BedrockFallback")
            return f"Bedrock is paused after repeated failures: the {step} was written offline"
        return None

    def _failed(self, step: str, exc: ModelError) -> str:
        self.breaker.record(exc.unavailable, why=type(exc).__name__)
        logger().warning(
            "Bedrock step fell back to the offline provider",
            extra={"step": step, "error": type(exc).__name__, "reason": exc.message},
        )
        emit_metric("BedrockFallback")
        return f"{exc.message}: the {step} was written offline"

    def plan(self, query: QueryInput, spec: Dataset) -> Plan:
        note = self._skip("plan")
        if note is None:
            try:
                result = self.primary.plan(query, spec)
            except ModelError as exc:
                note, usage = self._failed("plan", exc), exc.usage
            else:
                self.breaker.record(False)
                return result
        else:
            usage = []
        plan = self.fallback.plan(query, spec)
        return plan.model_copy(
            update={
                "provider": FALLBACK_PROVIDER,
                "reasons": [note, *plan.reasons],
                "usage": [*usage, *plan.usage],
            }
        )

    def write_sql(self, plan: Plan, engine: QueryEngine) -> SqlOutcome:
        note = self._skip("SQL")
        usage: list[Usage] = []
        if note is None:
            try:
                outcome = self.primary.write_sql(plan, engine)
            except ModelError as exc:
                note, usage = self._failed("SQL", exc), exc.usage
            else:
                self.breaker.record(False)
                return outcome
        return _fell_back(self.fallback.write_sql(plan, engine), note, usage)

    def narrate(self, plan: Plan, table: Table, rows: list[dict[str, Any]], text: str) -> Narration:
        note = self._skip("answer text")
        usage: list[Usage] = []
        if note is None:
            try:
                narration = self.primary.narrate(plan, table, rows, text)
            except ModelError as exc:
                note, usage = self._failed("answer text", exc), exc.usage
            else:
                self.breaker.record(False)
                return narration
        return _fell_back(self.fallback.narrate(plan, table, rows, text), note, usage)


def provider_for(name: str) -> Provider:
    """The provider a query or plan names: ``bedrock`` (with the offline fallback), else offline
    (which is also what a plan that already fell back names)."""
    if name == "bedrock":
        from panelbrain.agents.bedrock import BedrockProvider

        return WithFallback(BedrockProvider.from_env(), OfflineProvider())
    return OfflineProvider()
