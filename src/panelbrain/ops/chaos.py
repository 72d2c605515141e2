"""``panelbrain chaos``: questions through the real local path with faults injected at the Lambda
boundary, then a ledger that proves where each question ended.

The path is the deployed one, on the local engine: POST /queries through the API's integration,
SQS, the poller (as Lambda's event source drives it), the Express pipeline and the Standard
review workflow, reviewers deciding through the review service, and the scheduled functions
ticked as EventBridge would. Faults are chosen from a seed by hashing (kind, function, query,
attempt), so a run picks the same faults whatever order moto's threads run in:

- ``worker``: a task function of either machine raises an unhandled error;
- ``throttle``: an AWS request a task function makes is answered as a throttle (HTTP 400
  ``ThrottlingException``; S3's 503 ``SlowDown``), under the SDK's retries as AWS answers it: the
  SDK retries it (the template sets ``AWS_RETRY_MODE`` and ``AWS_MAX_ATTEMPTS``), and one that
  outlasts them leaves the handler as ``TransientError``, which the workflow retries;
- ``timeout``: a task function sleeps past its Timeout, then runs on (Lambda reports
  ``Sandbox.Timedout``; the late side effects still happen);
- ``malformed``: a task function's output loses one of its fields;
- ``duplicate``: a query's message is delivered twice (standard queues deliver at least once:
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues.html);
- ``poison``: a query's message body cannot be parsed (it should end in the dead-letter queue
  with its query failed);
- ``poller_crash``: the poller dies between its claim and StartExecution (its invocation times
  out and Lambda stops it at its Timeout, running none of its error handling:
  https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html; the batch comes
  back after the queue's visibility timeout).

The ledger (:func:`ledger`) reads, after the run has settled, the query store, the review table
and the executions of both machines, and classifies every query: exactly one terminal state
that all three agree on, or lost, stuck, duplicated or mismatched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from panelbrain.errors import BadInputError, PanelbrainError

PIPELINE = "QueryPipelineStateMachine"
REVIEW = "HumanReviewStateMachine"
TERMINAL = ("answered", "rejected", "failed")
FAULT_KINDS = ("worker", "throttle", "duplicate", "poison", "malformed", "timeout", "poller_crash")
# The rates issue 12 names: the run its Acceptance asks for.
ISSUE_RATES: dict[str, float] = {
    "worker": 0.1,
    "throttle": 0.3,
    "duplicate": 0.05,
    "poison": 0.02,
    "malformed": 0.05,
    "timeout": 0.02,
    "poller_crash": 0.05,
}
# A confident question (answered), one the reader cannot place a word of (review, 0.75).
QUESTIONS = (
    "What share support a ban on abortion by province?",
    "What share of people in QC strongly support a ban",
)


class ChaosLedgerError(PanelbrainError):
    """The ledger found queries lost, stuck, duplicated or mismatched (exit 1)."""


class ChaosWorkerError(Exception):
    """The injected ``worker`` fault: an unhandled error no Retry names."""


# -- choosing faults ---------------------------------------------------------------------------


def parse_faults(text: str | None) -> dict[str, float]:
    """``worker=0.1,throttle=0.3,...`` -> rates; None: the issue's rates; ``none``: no faults."""
    if text is None:
        return dict(ISSUE_RATES)
    if text.strip().lower() == "none":
        return {}
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise BadInputError(f"--faults: unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        try:
            rate = float(value) if sep else float("nan")
        except ValueError:
            rate = float("nan")
        if not 0 <= rate <= 1:
            raise BadInputError(
                f"--faults: {kind} needs a rate between 0 and 1, as {kind}=0.05; got {part!r}"
            )
        rates[kind] = rate
    return rates


def draw(seed: int, *key: object) -> float:
    """A uniform number in [0, 1) fixed by the seed and the key (no shared RNG: threads race)."""
    digest = hashlib.sha256("|".join(map(str, (seed, *key))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def review_action(seed: int, index: int) -> str:
    """What the reviewer does with query ``index``'s review: approve, reject or leave it."""
    x = draw(seed, "review", index)
    return "approve" if x < 0.5 else "reject" if x < 0.7 else "ignore"


@dataclass(frozen=True)
class Injection:
    kind: str
    function: str
    query: int | None  # the query's index in the run (None: not tied to one)


def _find_query_id(value: Any, depth: int = 0) -> str | None:
    if isinstance(value, dict):
        found = value.get("query_id")
        if isinstance(found, str):
            return found
        if depth < 3:
            for child in value.values():
                hit = _find_query_id(child, depth + 1)
                if hit:
                    return hit
    return None


def _corrupt(output: Any, x: float) -> Any:
    """The output with one field missing (chosen by ``x``), as a bug or a bad model answer
    leaves it; a non-object output becomes an object it never was."""
    if isinstance(output, dict) and output:
        keys = sorted(output)
        victim = keys[int(x * len(keys))]
        return {k: v for k, v in output.items() if k != victim}
    return {"malformed": True}


# The wire format of a throttle per protocol (botocore parses it as AWS's own answer). S3 answers
# a request rate it cannot take with 503 SlowDown
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html); the
# JSON services with 400 ThrottlingException or their own code; SNS with 400 Throttling.
_QUERY_PROTOCOL = {"sns"}
_REST_XML = {"s3"}


def throttle_response(service: str) -> Any:
    """The response AWS gives a throttled request to ``service`` (as botocore receives it)."""
    from botocore.awsrequest import AWSResponse

    if service in _REST_XML:
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return AWSResponse("https://chaos.invalid", 503, {}, _Raw(body))
    if service in _QUERY_PROTOCOL:
        body = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
            b"<Message>Rate exceeded (injected)</Message></Error></ErrorResponse>"
        )
        return AWSResponse("https://chaos.invalid", 400, {}, _Raw(body))
    body = b'{"__type": "ThrottlingException", "message": "Rate exceeded (injected)"}'
    headers = {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/x-amz-json-1.0"}
    return AWSResponse("https://chaos.invalid", 400, headers, _Raw(body))


class _Raw:
    """The raw body botocore's AWSResponse reads a response's content from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


# -- the ledger --------------------------------------------------------------------------------


@dataclass
class QueryFacts:
    """What the three sources say about one query after the run settled."""

    query_id: str
    index: int = 0
    submitted_at: float = 0.0
    record: dict[str, Any] | None = None  # the query store's item (status, route, history)
    reviews: list[dict[str, Any]] = field(default_factory=list)  # level, status, decision
    executions: dict[str, list[str]] = field(default_factory=dict)  # machine -> statuses
    execution_errors: list[str] = field(default_factory=list)  # error and cause of a failed one


@dataclass
class Verdict:
    query_id: str
    outcome: str  # answered | rejected | failed | stuck | lost
    route: str | None = None
    duplicated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    seconds: float | None = None  # submit -> first terminal write
    executions: dict[str, list[str]] = field(default_factory=dict)  # machine -> statuses
    execution_errors: list[str] = field(default_factory=list)
    reason: str | None = None  # the query store's reason for its status
    reviews: list[dict[str, Any]] = field(default_factory=list)  # status, heartbeats, decision


def _decided_by_person(review: dict[str, Any]) -> str | None:
    decision = review.get("decision") or {}
    if decision.get("approver") not in (None, "system") and decision.get("decision") in (
        "approved",
        "rejected",
    ):
        return str(decision["decision"])
    return None


# What a review route in the query store requires of the query's last review.
_REVIEW_ROUTES = {"review_approved": "approved", "review_rejected": "rejected", "review_timeout": "timed_out"}


def judge(facts: QueryFacts) -> Verdict:
    """One query: its single terminal state, or why it has none or the sources disagree."""
    record = facts.record
    pipeline = facts.executions.get(PIPELINE, [])
    review_runs = facts.executions.get(REVIEW, [])
    if record is None:
        return Verdict(facts.query_id, "lost", stuck=["no item in the query store"])
    status, route = str(record.get("status")), record.get("route")
    verdict = Verdict(
        facts.query_id,
        status if status in TERMINAL else "stuck",
        route=route,
        executions=facts.executions,
        execution_errors=facts.execution_errors,
        reason=record.get("reason"),
        reviews=[
            {
                k: r.get(k)
                for k in ("level", "status", "heartbeats", "last_heartbeat_at", "created_at", "decision")
            }
            for r in facts.reviews
        ],
    )
    if status == "failed" and isinstance(record.get("result"), dict) and "Error" in record["result"]:
        # A caught error the workflow recorded (its Catch's ResultPath): name it beside the reason.
        caught = record["result"]
        verdict.reason = f"{verdict.reason}: {caught['Error']}: {str(caught.get('Cause', ''))[:200]}"
    if status not in TERMINAL:
        verdict.stuck.append(f"query store status {status!r}")
    for machine, statuses in facts.executions.items():
        if "RUNNING" in statuses:
            verdict.stuck.append(f"{machine} execution still RUNNING")
        if len(statuses) > 1:
            verdict.duplicated.append(f"{len(statuses)} {machine} executions")
    open_reviews = [r for r in facts.reviews if r.get("status") in ("open", "deciding")]
    if open_reviews:
        verdict.stuck.append(f"{len(open_reviews)} review(s) still open or deciding")
    levels = Counter(int(r.get("level", 1)) for r in facts.reviews)
    verdict.duplicated += [f"{n} reviews at level {lv}" for lv, n in levels.items() if n > 1]
    terminal_events = [e for e in record.get("history") or [] if e.get("status") in TERMINAL]
    if len(terminal_events) > 1:
        verdict.duplicated.append(f"{len(terminal_events)} terminal writes in the query's history")
    if terminal_events:
        verdict.seconds = float(terminal_events[0]["at"]) - facts.submitted_at
    if verdict.stuck:
        verdict.outcome = "stuck"
        return verdict
    # Terminal in the store: the review table and the executions must say the same.
    last = max(facts.reviews, key=lambda r: int(r.get("level", 1)), default=None)
    if route in _REVIEW_ROUTES:
        want = _REVIEW_ROUTES[str(route)]
        if last is None:
            verdict.mismatched.append(f"route {route} but no review in the review table")
        elif last.get("status") != want:
            verdict.mismatched.append(f"route {route} but the review table says {last.get('status')}")
        if not review_runs:
            verdict.mismatched.append(f"route {route} but no {REVIEW} execution")
    elif route != "review_failed" and facts.reviews:
        verdict.mismatched.append(
            f"query {status} by route {route}, yet the review table holds "
            + ", ".join(str(r.get("status")) for r in facts.reviews)
        )
    for review in facts.reviews:
        person = _decided_by_person(review)
        # After a decision the review workflow may still fail (formatting or recording the
        # approved answer): the query then says so (review_failed), which contradicts no one.
        if person == "approved" and (status, route) not in (
            ("answered", "review_approved"),
            ("failed", "review_failed"),
        ):
            verdict.mismatched.append(f"a reviewer approved, the query store says {status} ({route})")
        if person == "rejected" and (status, route) not in (
            ("rejected", "review_rejected"),
            ("failed", "review_failed"),
        ):
            verdict.mismatched.append(f"a reviewer rejected, the query store says {status} ({route})")
    ended_badly = {"FAILED", "TIMED_OUT", "ABORTED"}
    if status == "answered" and route != "cache":
        if not pipeline:
            verdict.mismatched.append(f"answered with no {PIPELINE} execution")
        elif set(pipeline) & ended_badly:
            verdict.mismatched.append(f"answered, yet the {PIPELINE} execution ended {pipeline[0]}")
        if route == "review_approved" and set(review_runs) & ended_badly:
            verdict.mismatched.append(f"approved, yet the {REVIEW} execution ended {review_runs[0]}")
    return verdict


@dataclass
class Ledger:
    verdicts: list[Verdict]
    dead_letters: int = 0
    injections: list[Injection] = field(default_factory=list)
    indexes: dict[str, int] = field(default_factory=dict)  # query id -> index
    decision_errors: list[str] = field(default_factory=list)  # a reviewer's decision that errored
    refusals: dict[int, int] = field(default_factory=dict)  # decisions refused, by HTTP status

    def count(self, what: str) -> int:
        if what in ("lost", "stuck"):
            return sum(1 for v in self.verdicts if v.outcome == what)
        return sum(1 for v in self.verdicts if getattr(v, what))

    @property
    def failures(self) -> dict[str, int]:
        return {k: self.count(k) for k in ("lost", "stuck", "duplicated", "mismatched")}

    @property
    def ok(self) -> bool:
        return not any(self.failures.values())

    def per_fault(self) -> dict[str, dict[str, int]]:
        """For each fault kind: injections, queries hit, and how those queries ended."""
        by_index = {self.indexes.get(v.query_id, -1): v for v in self.verdicts}
        table: dict[str, dict[str, int]] = {}
        for kind in FAULT_KINDS:
            hits = [i for i in self.injections if i.kind == kind]
            if not hits:
                continue
            queries = {i.query for i in hits if i.query is not None}
            row = {"injected": len(hits), "queries": len(queries)}
            for q in queries:
                v = by_index.get(q)
                if v is None:
                    continue
                row[v.outcome] = row.get(v.outcome, 0) + 1
                for flag in ("duplicated", "mismatched"):
                    if getattr(v, flag):
                        row[flag] = row.get(flag, 0) + 1
            table[kind] = row
        return table

    def document(self) -> dict[str, Any]:
        seconds = sorted(v.seconds for v in self.verdicts if v.seconds is not None)
        return {
            "queries": len(self.verdicts),
            "outcomes": dict(Counter(v.outcome for v in self.verdicts)),
            "routes": dict(Counter(str(v.route) for v in self.verdicts)),
            **self.failures,
            "dead_letters": self.dead_letters,
            "decision_errors": self.decision_errors,
            "decisions_refused": {str(k): v for k, v in sorted(self.refusals.items())},
            "p50_s": round(_quantile(seconds, 0.5), 2) if seconds else None,
            "p95_s": round(_quantile(seconds, 0.95), 2) if seconds else None,
            "per_fault": self.per_fault(),
            # Ended by the deadline sweeper, not by a workflow: what left each one unfinished.
            "closed_by_sweeper": [
                {
                    "query_id": v.query_id,
                    "reason": v.reason,
                    "executions": v.executions,
                    "execution_errors": v.execution_errors,
                }
                for v in self.verdicts
                if v.route == "deadline"
            ],
            # Failed queries, and why (a fault the workflow caught and recorded, by design).
            "failed": [
                {"query_id": v.query_id, "route": v.route, "reason": (v.reason or "")[:300]}
                for v in self.verdicts
                if v.outcome == "failed" and v.route != "deadline"
            ],
            # Reviews that timed out: how their waiting Task went.
            "review_timeouts": [
                {"query_id": v.query_id, "events": v.execution_errors, "reviews": v.reviews}
                for v in self.verdicts
                if v.route == "review_timeout"
            ],
            "problems": [
                {
                    "query_id": v.query_id,
                    "outcome": v.outcome,
                    "route": v.route,
                    "stuck": v.stuck,
                    "duplicated": v.duplicated,
                    "mismatched": v.mismatched,
                    "executions": v.executions,
                    "execution_errors": v.execution_errors,
                }
                for v in self.verdicts
                if v.outcome in ("lost", "stuck") or v.duplicated or v.mismatched
            ],
        }


def _quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def ledger(
    facts: list[QueryFacts], dead_letters: int = 0, injections: list[Injection] | None = None
) -> Ledger:
    return Ledger(
        [judge(f) for f in facts],
        dead_letters,
        list(injections or []),
        {f.query_id: f.index for f in facts},
    )


# -- the run -----------------------------------------------------------------------------------


@dataclass
class ChaosConfig:
    queries: int = 30
    rates: dict[str, float] = field(default_factory=lambda: dict(ISSUE_RATES))
    seed: int = 12
    # Function timeouts for the run (the template's are 8-60 s): a ``timeout`` fault sleeps
    # past this, and the poller's timeout bounds a crash.
    function_timeout_s: float = 10.0
    poller_timeout_s: float = 5.0
    # How long a review waits, and its heartbeat (None: 8 s and 4 s, longer for a large run: a
    # thousand reviews open at once on two cores take the reviewers and the sweeper longer than
    # 8 s to get through, and a review meant to be decided would time out: queries/4 s).
    review_timeout_s: int | None = None
    review_heartbeat_s: int | None = None

    @property
    def review_timeout(self) -> int:
        return self.review_timeout_s or max(8, self.queries // 4)

    @property
    def review_heartbeat(self) -> int:
        return self.review_heartbeat_s or max(4, self.review_timeout // 2)

    approve_all: bool = False  # reviewers approve every review (else review_action's mix)
    # How often the scheduled functions run (None: a quarter of the review heartbeat, as the
    # template's sweeper runs at most half a heartbeat apart; each sweep heartbeats every open
    # review, so sweeping a thousand open reviews every second would starve the reviewers).
    tick_s: float | None = None

    @property
    def tick(self) -> float:
        return self.tick_s or max(1.0, self.review_heartbeat / 4)

    # The deadline sweeper's limits for the run (the template's are 30 min and 2 x the review
    # timeout + 10 min): a query no workflow ended is closed as failed after these, and counted.
    query_deadline_s: float = 600.0
    review_deadline_margin_s: float = 10.0
    # How long the run may keep moving before it is cut short (None: 900 s, or longer for a
    # large run: a second a query and two review timeouts).
    settle_timeout_s: float | None = None


class _Injector:
    """The faults, wired into one engine: a boundary fault, handler wrappers for malformed
    outputs, and StartExecution held up for a poller crash."""

    def __init__(self, engine: Any, config: ChaosConfig) -> None:
        self.engine = engine
        self.config = config
        self.rates = config.rates
        self.indexes: dict[str, int] = {}
        self.injections: list[Injection] = []
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.requests: Counter[tuple[str, int, int]] = Counter()  # AWS requests per attempt
        self.seen: set[str] = set()
        self.decision_errors: list[str] = []
        self.refusals: Counter[int] = Counter()  # reviewers' decisions refused, by HTTP status
        self.lock = threading.Lock()
        self.local = threading.local()
        self.tasks = set(engine.task_functions(PIPELINE).values()) | set(
            engine.task_functions(REVIEW).values()
        )

    def hit(self, kind: str, *key: object) -> bool:
        rate = self.rates.get(kind, 0.0)
        return rate > 0 and draw(self.config.seed, kind, *key) < rate

    def note(self, kind: str, function: str, query: int | None) -> None:
        with self.lock:
            self.injections.append(Injection(kind, function, query))

    def index_of(self, query_id: str | None) -> int | None:
        return self.indexes.get(query_id) if query_id else None

    def boundary(self, name: str, event: dict[str, Any]) -> None:
        if name == "PollerFunction":
            self._poller(event)
            return
        self.local.attempt = None
        if name not in self.tasks:
            return
        index = self.index_of(_find_query_id(event))
        if index is None:
            return
        with self.lock:
            self.attempts[(name, str(index))] += 1
            attempt = self.attempts[(name, str(index))]
        self.local.attempt = (name, index, attempt)
        if self.hit("worker", name, index, attempt):
            self.note("worker", name, index)
            raise ChaosWorkerError(f"injected fault in {name} (query {index}, attempt {attempt})")
        if self.hit("timeout", name, index, attempt):
            self.note("timeout", name, index)
            time.sleep(self.engine.timeout_s(name) + 0.5)

    def wrap(self, name: str, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[..., Any]:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            output = handler(event, context)
            current = getattr(self.local, "attempt", None)
            if current is not None and current[0] == name and self.hit("malformed", *current):
                self.note("malformed", name, current[1])
                return _corrupt(output, draw(self.config.seed, "victim", *current))
            return output

        return wrapped

    def _poller(self, event: dict[str, Any]) -> None:
        self.local.crash = None
        for record in event.get("Records", []):
            query_id = ((record.get("messageAttributes") or {}).get("query_id") or {}).get("stringValue")
            index = self.index_of(query_id)
            if index is None:
                continue
            receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
            with self.lock:
                first = query_id not in self.seen
                self.seen.add(str(query_id))
            if first and self.hit("duplicate", index):
                self.note("duplicate", "PollerFunction", index)
                self._send_copy(record)
            if self.hit("poison", index):
                if receives == 1 and first:
                    self.note("poison", "PollerFunction", index)
                record["body"] = "\x00{not json"
            elif self.local.crash is None and self.hit("poller_crash", index, receives):
                self.note("poller_crash", "PollerFunction", index)
                self.local.crash = str(query_id)

    def _send_copy(self, record: dict[str, Any]) -> None:
        attributes = {
            k: {"DataType": v["dataType"], "StringValue": v["stringValue"]}
            for k, v in (record.get("messageAttributes") or {}).items()
        }
        self.engine.clients["sqs"].send_message(
            QueueUrl=self.engine.template.resolve({"Ref": "QueryQueue"}),
            MessageBody=record["body"],
            MessageAttributes=attributes,
        )

    def throttled(self, event_name: str) -> Any:
        """A throttle response for the request ``event_name`` names (``before-send.<service>.<op>``)
        if the fault hits it, else None: the emulator answers it."""
        current = getattr(self.local, "attempt", None)
        if current is None:
            return None
        with self.lock:
            self.requests[current] += 1
            request = self.requests[current]
        if not self.hit("throttle", *current, request):
            return None
        self.note("throttle", current[0], current[1])
        return throttle_response(event_name.split(".")[1])

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from botocore.client import BaseClient
        from moto.core.botocore_stubber import BotocoreStubber

        original_call = BaseClient._make_api_call
        injector = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            crash = getattr(injector.local, "crash", None)
            if operation == "StartExecution" and crash is not None and params.get("name") == crash:
                # Claimed, not started: the poller's sandbox times out here and Lambda discards
                # it, so no except clause of the poller runs. The thread never resumes (it is a
                # daemon: it ends with the process); raising instead would run them.
                threading.Event().wait()
            return original_call(client, operation, params)

        original_send = BotocoreStubber.__call__

        def send(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            # Before the emulator answers, below botocore's retry handler: the SDK sees the
            # throttle as it would see AWS's, and retries it as configured.
            return injector.throttled(event_name) or original_send(stubber, event_name, request, **kwargs)

        handlers = dict(self.engine.handlers)
        self.engine.faults.append(self.boundary)
        for name in self.tasks:
            self.engine.handlers[name] = self.wrap(name, handlers[name])
        BaseClient._make_api_call = make_api_call
        BotocoreStubber.__call__ = send  # type: ignore[method-assign, assignment]
        # moto logs every failed state at ERROR; a faulted run fails thousands on purpose.
        moto_log = logging.getLogger("moto")
        level = moto_log.level
        moto_log.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            moto_log.setLevel(level)
            BaseClient._make_api_call = original_call
            BotocoreStubber.__call__ = original_send  # type: ignore[method-assign]
            self.engine.handlers.update(handlers)
            self.engine.faults.remove(self.boundary)


Progress = Callable[[str, int, int], None]  # (phase, done, total)


def run(config: ChaosConfig, progress: Progress | None = None) -> Ledger:
    """Run ``config.queries`` questions with faults, let everything settle, return the ledger."""
    from panelbrain.local.engine import LocalEngine

    parameters = {
        "ReviewTimeoutSeconds": str(config.review_timeout),
        "ReviewHeartbeatSeconds": str(config.review_heartbeat),
        "ReviewReminderSeconds": "0",
    }
    report = progress or (lambda phase, done, total: None)
    # Handlers print metric lines to stdout (CloudWatch reads them in Lambda); the command's
    # stdout is its own, so every thread's prints go to a buffer for the run.
    with (
        contextlib.ExitStack() as stack,
        contextlib.redirect_stdout(io.StringIO()),
        LocalEngine.running(
            parameters=parameters, bent_limits={"ReviewTimeoutSeconds", "ReviewHeartbeatSeconds"}
        ) as engine,
    ):
        # The task functions (the faults' scope) run under the run's short timeout, so a timeout
        # fault costs seconds; the API and the scheduled sweeper keep the template's.
        for name in engine.task_functions(PIPELINE).values():
            engine.timeout_overrides[name] = config.function_timeout_s
        for name in engine.task_functions(REVIEW).values():
            engine.timeout_overrides[name] = config.function_timeout_s
        engine.timeout_overrides["PollerFunction"] = config.poller_timeout_s
        # The poller's lease outlives its (shortened) timeout, as in the template; the engine
        # puts every variable the template sets back when it stops.
        os.environ["START_LEASE_S"] = str(config.poller_timeout_s + 1)
        os.environ["QUERY_DEADLINE_S"] = str(config.query_deadline_s)
        stack.callback(_restore, "REVIEW_DEADLINE_MARGIN_S", os.environ.get("REVIEW_DEADLINE_MARGIN_S"))
        os.environ["REVIEW_DEADLINE_MARGIN_S"] = str(config.review_deadline_margin_s)
        injector = _Injector(engine, config)
        # Executions still running when the ledger is read are stopped by the engine on exit.
        with injector.installed():
            submitted = _submit(engine, config, injector, report)
            _settle(engine, config, injector, submitted, report)
            facts = _facts(engine, submitted, injector.indexes)
            dead = _queue_depth(engine, "QueryDeadLetterQueue")
    result = ledger(facts, dead, injector.injections)
    result.decision_errors = injector.decision_errors
    result.refusals = dict(injector.refusals)
    return result


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _submit(engine: Any, config: ChaosConfig, injector: _Injector, report: Progress) -> dict[str, float]:
    from panelbrain.local.ask import api_gateway_event

    submitted: dict[str, float] = {}
    for index in range(config.queries):
        body = json.dumps({"question": QUESTIONS[index % len(QUESTIONS)], "dataset": "ces11"})
        at = time.time()
        response = engine.api_call(api_gateway_event("POST", "/queries", body))
        document = json.loads(response["body"])
        if response["statusCode"] not in (200, 202):
            raise ChaosLedgerError(f"POST /queries answered {response['statusCode']}: {document}")
        injector.indexes[str(document["query_id"])] = index
        submitted[str(document["query_id"])] = at
        report("submitting", index + 1, config.queries)
    return submitted


def _queue_depth(engine: Any, queue: str, *, in_flight: bool = False) -> int:
    names = ["ApproximateNumberOfMessages"] + (["ApproximateNumberOfMessagesNotVisible"] if in_flight else [])
    attributes = engine.clients["sqs"].get_queue_attributes(
        QueueUrl=engine.template.resolve({"Ref": queue}), AttributeNames=names
    )["Attributes"]
    return sum(int(attributes.get(n, 0)) for n in names)


def _running(engine: Any, machine: str) -> int:
    return len(
        engine.clients["stepfunctions"].list_executions(
            stateMachineArn=engine.state_machine_arn(machine), statusFilter="RUNNING"
        )["executions"]
    )


def _settle(
    engine: Any, config: ChaosConfig, injector: _Injector, submitted: dict[str, float], report: Progress
) -> None:
    """Play the event sources and the reviewers until nothing moves: the queue drained, no
    execution running, every review decided or timed out; or until the settle timeout."""
    from panelbrain.functions.review_common import service
    from panelbrain.local.lambda_rules import LambdaFunctionError
    from panelbrain.review.models import Principal
    from panelbrain.review.service import DecisionError

    visibility = float(
        engine.clients["sqs"].get_queue_attributes(
            QueueUrl=engine.template.resolve({"Ref": "QueryQueue"}), AttributeNames=["VisibilityTimeout"]
        )["Attributes"]["VisibilityTimeout"]
    )
    deadline = time.monotonic() + (
        config.settle_timeout_s or max(900.0, config.queries + 2 * config.review_timeout)
    )
    next_tick = 0.0
    idle_since: float | None = None
    # Long enough for the sweeper to close whatever no workflow ended (then it is counted).
    sweep_wait = max(config.query_deadline_s, 2 * config.review_timeout + config.review_deadline_margin_s)
    sweep_wait += 3 * config.tick
    decided: set[str] = set()
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="reviewer") as reviewers:
        while time.monotonic() < deadline:
            # The queue is drained a tick at a time: reviewers and the scheduled sweeper do not
            # wait for a backlog (draining a thousand throttled deliveries at once took longer
            # than a review's heartbeat, and reviews opened first timed out undecided).
            drain_until = time.monotonic() + config.tick
            with contextlib.suppress(LambdaFunctionError):  # a crashed poller: SQS redelivers
                while (
                    time.monotonic() < drain_until
                    and engine.deliver("QueryQueue", "PollerFunction") is not None
                ):
                    pass

            def decide(review_id: str, action: str) -> None:
                try:
                    service().decide(
                        review_id,
                        "approve" if action == "approve" else "reject",
                        principal=Principal(identity=_reviewer(), source="cli"),
                        comment="chaos run",
                        channel="web",
                    )
                except DecisionError as refused:
                    # Refused (timed out meanwhile, decided by someone else): nothing changed. A
                    # 503 says try again; after a 410 a review still listed open (its notifier
                    # was retried) is decided again, as a reviewer would.
                    with injector.lock:
                        injector.refusals[refused.status] += 1
                        if refused.status in (410, 503):
                            decided.discard(review_id)
                except Exception as exc:  # the reviewer would see a 5xx; the run goes on
                    with injector.lock:
                        injector.decision_errors.append(f"{review_id}: {type(exc).__name__}: {exc}")

            to_decide = []
            for review in service().store.with_status("open", limit=None):
                index = injector.indexes.get(review.query_id)
                if index is None or review.review_id in decided:
                    continue
                action = "approve" if config.approve_all else review_action(config.seed, index)
                if action != "ignore":
                    decided.add(review.review_id)
                    to_decide.append((review.review_id, action))
            # Several reviewers at once, as a team works through a queue of reviews; the loop
            # goes on meanwhile, so the sweeper keeps its schedule however long the queue is.
            pending = [f for f in pending if not f.done()]
            pending += [reviewers.submit(decide, *pair) for pair in to_decide]
            if time.monotonic() >= next_tick:
                for function in engine.schedules():
                    with contextlib.suppress(PanelbrainError):
                        engine.tick(function)
                next_tick = time.monotonic() + config.tick
            # A decision claimed and not yet recorded is still moving (the sweeper settles it).
            claimed = len(service().store.with_status("deciding", limit=None))
            waiting = _queue_depth(engine, "QueryQueue")
            in_flight = _queue_depth(engine, "QueryQueue", in_flight=True) - waiting
            running = _running(engine, PIPELINE) + _running(engine, REVIEW)
            done = _terminal_count(engine, submitted)
            report("settling", done, len(submitted))
            if not waiting and not in_flight and not running and not claimed and not pending:
                if done >= len(submitted):
                    return
                # Nothing moves, yet some query has no terminal status: only the deadline sweeper
                # (ticked above) can end it now; the ledger counts what it leaves.
                if idle_since is None:
                    idle_since = time.monotonic()
                    # The settle timeout guards against a run that never stops moving; once nothing
                    # moves, the wait for the sweeper is bounded and always given in full.
                    deadline = max(deadline, idle_since + sweep_wait + 10 * config.tick)
                if time.monotonic() - idle_since > sweep_wait:
                    return
            else:
                idle_since = None
            if in_flight and not waiting:
                # The poller runs on this thread, so a message in flight between deliveries is
                # one a failed or dead poller left hidden: the dead poller's start lease runs out
                # in real time (the store's clock), then the queue's clock passes its timeout
                # (waiting for running executions to end first kept such messages hidden past
                # the sweeper's deadline in a 1,000-query run).
                time.sleep(config.poller_timeout_s + 1)
                engine.rules.advance_queue_clock(visibility)
            time.sleep(0.2)


def _reviewer() -> str:
    from panelbrain.local.engine import LOCAL_REVIEWER

    return LOCAL_REVIEWER


def _terminal_count(engine: Any, submitted: dict[str, float]) -> int:
    dynamodb = engine.clients["dynamodb"]
    table = engine.template.resolve({"Ref": "QueriesTable"})
    done = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="query_id, #s", ExpressionAttributeNames={"#s": "status"}
    ):
        done += sum(
            1
            for item in page["Items"]
            if item["query_id"]["S"] in submitted and item["status"]["S"] in TERMINAL
        )
    return done


def _facts(engine: Any, submitted: dict[str, float], indexes: dict[str, int]) -> list[QueryFacts]:
    from panelbrain.aws.store import DynamoQueryStore
    from panelbrain.functions.review_common import service

    sfn = engine.clients["stepfunctions"]
    executions: dict[str, dict[str, list[str]]] = {}
    errors: dict[str, list[str]] = {}  # why an execution ended badly: the ledger's problems say
    for machine in (PIPELINE, REVIEW):
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=engine.state_machine_arn(machine)
        )
        for page in pages:
            for execution in page["executions"]:
                # Executions are named by query id (a retaken start may add a suffix).
                query_id = next((q for q in submitted if execution["name"].startswith(q)), None)
                if query_id is None:
                    continue
                executions.setdefault(query_id, {}).setdefault(machine, []).append(execution["status"])
                if execution["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
                    described = sfn.describe_execution(executionArn=execution["executionArn"])
                    errors.setdefault(query_id, []).append(
                        f"{machine} {execution['status']}: {described.get('error', '')}: "
                        f"{str(described.get('cause', ''))[:300]}"
                    )
    store = DynamoQueryStore()
    facts = []
    for query_id, at in submitted.items():
        record = store.get(query_id)
        found = errors.get(query_id, [])
        if record is not None and record.get("route") == "review_timeout":
            # A review that timed out: how its waiting Task went (the ledger lists them).
            found = found + _review_task_events(engine, query_id)
        facts.append(
            QueryFacts(
                query_id=query_id,
                index=indexes[query_id],
                submitted_at=at,
                record=record,
                reviews=[r.model_dump(mode="json") for r in service().store.of_query(query_id)],
                executions=executions.get(query_id, {}),
                execution_errors=found,
            )
        )
    return facts


def _review_task_events(engine: Any, query_id: str) -> list[str]:
    """The review execution's task events in order, as one line each (the waiting Task's
    attempts, their errors, and how the wait ended)."""
    arn = engine.execution_arn(REVIEW, query_id)
    kept = (
        "TaskScheduled",
        "TaskSubmitted",
        "TaskFailed",
        "TaskTimedOut",
        "TaskSucceeded",
        "TaskStateEntered",
    )
    lines = []
    for event in engine.history(arn):
        if event["type"] in kept:
            details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            what = details.get("name") or details.get("error") or ""
            lines.append(f"review {event['type']} {what} {str(details.get('cause', ''))[:120]}".rstrip())
    return lines


def failure_line(result: Ledger) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in result.failures.items())
    return (
        f"chaos ledger: {counts} of {len(result.verdicts)} queries (dead-letter queue: "
        f"{result.dead_letters}); see the problems in --json"
    )


def tables(document: dict[str, Any]) -> list[Any]:
    """The ledger as the command prints it: the counts, then how each fault's queries ended."""
    from rich import box
    from rich.table import Table

    counts = Table(title=f"Chaos ledger: {document['queries']:,} queries")
    counts.add_column("figure", no_wrap=True)
    counts.add_column("value", justify="right", no_wrap=True)
    for key in ("lost", "stuck", "duplicated", "mismatched", "dead_letters"):
        counts.add_row(key.replace("_", " "), f"{document[key]:,}")
    counts.add_row("reviewer decisions that errored", f"{len(document.get('decision_errors', [])):,}")
    counts.add_row("closed by the deadline sweeper", f"{len(document.get('closed_by_sweeper', [])):,}")
    for outcome, n in sorted(document["outcomes"].items()):
        if outcome in ("answered", "rejected", "failed"):
            counts.add_row(f"ended {outcome}", f"{n:,}")
    for key in ("p50_s", "p95_s"):
        value = document[key]
        counts.add_row(f"{key[:3]} time to a terminal state", "-" if value is None else f"{value:,.2f} s")
    faults = Table(title="Per fault: the queries it hit, and how they ended", box=box.SIMPLE, pad_edge=False)
    outcomes = ("answered", "rejected", "failed", "stuck", "lost", "duplicated", "mismatched")
    # Only the outcomes that happened: the table stays inside an 80-column terminal.
    seen = {key for row in document["per_fault"].values() for key, n in row.items() if n}
    columns = ("injected", "queries", *(c for c in outcomes if c in seen))
    faults.add_column("fault", min_width=12, no_wrap=True)
    short = {"injected": "hits", "duplicated": "dup", "mismatched": "mismatch"}
    for column in columns:
        label = short.get(column, column)
        faults.add_column(label, justify="right", min_width=len(label), no_wrap=True)
    for kind, row in document["per_fault"].items():
        faults.add_row(kind, *(f"{row.get(c, 0):,}" for c in columns))
    return [counts, faults]
