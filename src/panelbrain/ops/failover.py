"""``panelbrain ops failover-drill``: two regions on two local engines, the primary failed mid-load.

What runs for real: each region is a :class:`~panelbrain.local.engine.LocalEngine` deployed from
template.yaml with its ``FailoverRole`` (the primary creates the query store's global table, the
secondary uses its replica by name), in a process of its own (the engine sets the functions'
environment process-wide and moto keeps its backends per process, so two engines cannot share
one). Every question goes in through the template's API (``POST /queries``, the API function),
the queue, the poller and the pipeline of the region that accepted it; every health probe is
``GET /health`` through the API (the health function's checks).

What is simulated, and how:

- **Route 53.** :class:`FailoverRecord` holds the failover pair: a region turns unhealthy after
  ``failure_threshold`` failed probes in a row and healthy again after as many passes; the answer
  is the primary while it is healthy, else the secondary (both unhealthy: the primary, as Route
  53 answers when every record is unhealthy). The client keeps an answer for ``dns_ttl_s``.
  https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html
- **The global table's replication.** Each engine holds its own table; a replicator copies every
  changed item to the other region every ``replicate_every_s``, the newer ``updated_at`` winning
  (global tables resolve concurrent writes by last writer wins). It cannot reach a failed region,
  as replication cannot, and catches up when the region returns.
- **The outage.** The failed region answers nothing (no API, no health check) and its queue
  consumer stops (the event source mapping gets nothing done); SQS keeps what the queue holds.
  Executions already started run to their end. When the region returns, its poller drains the
  queue: the questions accepted there before the failure are answered there.

The report counts the questions each region accepted and answered, checks that every query id
that was handed out ends terminal in *both* regions' stores (none lost; readable in either), and
measures the time from the failure to the first question the secondary accepted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError, PanelbrainError
from panelbrain.ops.operate import FINISHED

# Answered end to end by the offline provider at or above the answer threshold
# (docs/questions.md): a drill measures routing, not review.
QUESTIONS = (
    "What share support a ban on abortion?",
    "What share support a ban on abortion by province?",
    "Share of Yes of abortion by gender",
    "What share oppose a ban on abortion by education?",
    "Share of support a ban among rural respondents",
    "What share say religion is very important?",
    "What share say religion is very important by province?",
    "What share say religion is very important among women?",
    "Share of not important by urban",
    "Distribution of education by gender",
    "Distribution of importance of religion",
    "Unweighted share of rural by province",
    "Unweighted distribution of education",
    "Share of women among rural respondents by education",
    "What share of people in Ontario support a ban on abortion",
    "Share of graduates by gender",
    "What share support a ban on abortion among men by urban",
)
PRIMARY, SECONDARY = "PRIMARY", "SECONDARY"


class DrillError(PanelbrainError):
    """A region's engine failed to start or to answer the drill."""


@dataclass(frozen=True)
class DrillSettings:
    """The load, the failure, and the failover pair's settings (seconds are the drill's own: a
    10 s Route 53 interval is scaled down so a drill takes seconds)."""

    queries: int = 40
    rate_per_s: float = 10.0
    fail_after: int = 10  # the primary fails once it has accepted this many questions
    outage_queries: int = 10  # it returns once the secondary has accepted this many
    check_interval_s: float = 0.5
    failure_threshold: int = 3
    dns_ttl_s: float = 0.5
    replicate_every_s: float = 0.25
    drain_timeout_s: float = 120.0
    primary_region: str = "us-east-1"
    secondary_region: str = "us-west-2"

    def check(self) -> None:
        problems = [
            f"{name} must be at least {low}"
            for name, value, low in (
                ("queries", self.queries, 1),
                ("fail_after", self.fail_after, 1),
                ("outage_queries", self.outage_queries, 1),
                ("failure_threshold", self.failure_threshold, 1),
            )
            if value < low
        ]
        problems += [
            f"{name} must be above 0"
            for name, value in (
                ("rate_per_s", self.rate_per_s),
                ("check_interval_s", self.check_interval_s),
                ("replicate_every_s", self.replicate_every_s),
                ("drain_timeout_s", self.drain_timeout_s),
            )
            if value <= 0
        ]
        if self.dns_ttl_s < 0:
            problems.append("dns_ttl_s must be 0 or more")
        if self.fail_after + self.outage_queries > self.queries:
            problems.append(
                f"queries ({self.queries}) must cover fail_after + outage_queries "
                f"({self.fail_after} + {self.outage_queries}): the secondary must take some load"
            )
        if self.primary_region == self.secondary_region:
            problems.append("the two regions must differ")
        if problems:
            raise BadInputError("failover drill: " + "; ".join(problems))


@dataclass
class FailoverRecord:
    """Route 53's failover pair as the drill needs it: per-region health from consecutive probe
    outcomes, and which region a DNS query is answered with."""

    primary: str
    secondary: str
    threshold: int
    healthy: dict[str, bool] = field(default_factory=dict)
    _streak: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A new health check counts as healthy until it has data (the Route 53 guide, above).
        self.healthy = {self.primary: True, self.secondary: True}
        self._streak = {self.primary: 0, self.secondary: 0}

    def observe(self, region: str, ok: bool) -> bool:
        """Record one probe; True when the region's status changed."""
        if ok == self.healthy[region]:
            self._streak[region] = 0
            return False
        self._streak[region] += 1
        if self._streak[region] < self.threshold:
            return False
        self.healthy[region], self._streak[region] = ok, 0
        return True

    def answer(self) -> str:
        if self.healthy[self.primary] or not self.healthy[self.secondary]:
            return self.primary
        return self.secondary


# -- one region, in its own process -----------------------------------------------------------


def _region_main(
    conn: Connection, region: str, role: str, other_region: str, template: str | None
) -> None:  # pragma: no cover - runs in the child process (the drill's test drives it end to end)
    import json

    from panelbrain.local.ask import api_gateway_event
    from panelbrain.local.engine import LocalEngine

    # The handlers' log lines stay in the engine (it keeps them per invocation); the parent's
    # terminal gets the report alone.
    devnull = Path(os.devnull).open("w")  # noqa: SIM115 - for the life of the process
    os.dup2(devnull.fileno(), 1)
    os.dup2(devnull.fileno(), 2)
    try:
        with LocalEngine.running(
            Path(template) if template else None,
            parameters={"FailoverRole": role, "ReplicaRegion": other_region},
            region=region,
            replicas=("QueriesGlobalTable",) if role == SECONDARY else (),
        ) as engine:
            up = threading.Event()
            up.set()
            stop = threading.Event()
            rounds = threading.Lock()
            table = os.environ["QUERIES_TABLE"]  # the name the engine gave every function
            dynamodb = engine.clients["dynamodb"]

            def poll() -> None:
                while not stop.is_set():
                    with rounds:
                        delivered = engine.deliver("QueryQueue", "PollerFunction") if up.is_set() else None
                    if delivered is None:
                        stop.wait(0.05)

            poller = threading.Thread(target=poll, name=f"poller-{region}", daemon=True)
            poller.start()

            def call_api(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
                event = api_gateway_event(method, path, json.dumps(body) if body is not None else None)
                response = engine.api_call(event)
                return {"status": int(response["statusCode"]), "body": json.loads(response["body"] or "{}")}

            def api(
                method: str, path: str, body: dict[str, Any] | None = None, then_fail: bool = False
            ) -> dict[str, Any]:
                if not up.is_set():
                    return {"unreachable": True}
                if not then_fail:
                    return call_api(method, path, body)
                # The region fails right after answering this request: between two of the
                # poller's rounds, so what it accepted is still in its queue (a question in flight).
                with rounds:
                    answer = call_api(method, path, body)
                    up.clear()
                return {**answer, "failed": {"queued": queue_depth(), "unfinished": unfinished()}}

            def unfinished() -> list[str]:
                # The drill's instrument, read even while the region is "down".
                return [i["query_id"]["S"] for i in items() if i.get("status", {}).get("S") not in FINISHED]

            def items() -> list[dict[str, Any]]:
                pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
                return [item for page in pages for item in page["Items"]]

            def apply(replicated: list[dict[str, Any]]) -> int:
                from botocore.exceptions import ClientError

                written = 0
                for item in replicated:
                    try:  # last writer wins, by updated_at
                        dynamodb.put_item(
                            TableName=table,
                            Item=item,
                            ConditionExpression="attribute_not_exists(query_id) OR updated_at < :u",
                            ExpressionAttributeValues={":u": item["updated_at"]},
                        )
                        written += 1
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                            raise
                return written

            def queue_depth() -> int:
                attributes = engine.clients["sqs"].get_queue_attributes(
                    QueueUrl=engine.template.resolve({"Ref": "QueryQueue"}),
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                return sum(int(v) for v in attributes.values())

            def recover() -> dict[str, Any]:
                held = {"queued": queue_depth(), "unfinished": unfinished()}
                up.set()
                return held

            commands: dict[str, Callable[..., Any]] = {
                "api": api,
                "items": lambda: items() if up.is_set() else None,
                "apply": lambda replicated: apply(replicated) if up.is_set() else None,
                "recover": recover,
            }
            conn.send({"ready": region, "table": table})
            while True:
                command, arguments = conn.recv()
                if command == "stop":
                    break
                try:
                    conn.send({"result": commands[command](**arguments)})
                except Exception as exc:  # said to the drill, which stops
                    conn.send({"error": f"{region} {command}: {type(exc).__name__}: {exc}"})
            stop.set()
            poller.join(timeout=10)
            engine.settle()
    except Exception as exc:
        conn.send({"error": f"{region}: the engine did not start: {type(exc).__name__}: {exc}"})
    finally:
        conn.close()


class Region:
    """The parent's handle on one region's process."""

    def __init__(self, name: str, role: str, other: str, template: Path | None) -> None:
        self.name, self.role = name, role
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_region_main,
            args=(child, name, role, other, str(template) if template else None),
            name=f"panelbrain-region-{name}",
            daemon=True,
        )
        self._process.start()
        child.close()
        self.table = ""

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        if not self._conn.poll(timeout_s):
            raise DrillError(f"{self.name}: the engine did not start within {timeout_s:g} s")
        message = self._conn.recv()
        if "error" in message:
            raise DrillError(message["error"])
        self.table = message["table"]

    def call(self, command: str, **arguments: Any) -> Any:
        self._conn.send((command, arguments))
        if not self._conn.poll(120):
            raise DrillError(f"{self.name}: no answer to {command} within 120 s")
        message = self._conn.recv()
        if "error" in message:
            raise DrillError(message["error"])
        return message["result"]

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # the child already gone
                self._conn.send(("stop", {}))
            self._process.join(timeout=90)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)


# -- the drill --------------------------------------------------------------------------------


@dataclass
class DrillReport:
    settings: dict[str, Any]
    submitted: int
    accepted_by: dict[str, int]
    answered_by: dict[str, dict[str, int]]
    refused_while_failing_over: int
    in_flight_at_failure: int  # accepted by the primary, not yet terminal when it failed
    held_in_queue_at_failure: int  # of those, still messages in its queue (not yet started)
    unfinished_at_return: int  # what the outage left: executions already started ran to their end
    drained_after_return: int  # of those, terminal at the end (answered by the primary's drain)
    detected_after_s: float | None
    failover_s: float | None
    failback_s: float | None
    lost: list[str]
    not_replicated: dict[str, int]
    readable_in: dict[str, int]
    timeline: list[tuple[float, str]]
    wall_s: float

    @property
    def passed(self) -> bool:
        # None lost, and each region finished some of the load itself.
        return not self.lost and all(
            sum(n for status, n in counts.items() if status in FINISHED) > 0
            for counts in self.answered_by.values()
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lost_count": len(self.lost), "passed": self.passed}


class _Replicator:
    """The global table's replication between the two engines' tables (see the module doc)."""

    def __init__(self, regions: dict[str, Region]) -> None:
        self.regions = regions
        self.seen: dict[str, dict[str, str]] = {name: {} for name in regions}

    def round(self) -> None:
        snapshots = {name: region.call("items") for name, region in self.regions.items()}
        for source, items in snapshots.items():
            if items is None:  # a failed region: nothing leaves it until it returns
                continue
            changed = [i for i in items if self.seen[source].get(i["query_id"]["S"]) != i["updated_at"]["N"]]
            delivered = True
            for target, region in self.regions.items():
                if target != source and changed and region.call("apply", replicated=changed) is None:
                    delivered = False  # the target is down: send again once it returns
            if delivered:
                self.seen[source].update({i["query_id"]["S"]: i["updated_at"]["N"] for i in changed})

    def statuses(self) -> dict[str, dict[str, str]]:
        """Each reachable region's view: query id -> status."""
        found: dict[str, dict[str, str]] = {}
        for name, region in self.regions.items():
            items = region.call("items")
            if items is not None:
                found[name] = {i["query_id"]["S"]: i.get("status", {}).get("S", "") for i in items}
        return found


def run_drill(
    settings: DrillSettings,
    template: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> DrillReport:
    """Run the drill end to end and report (see the module doc)."""
    settings.check()
    say = progress or (lambda _line: None)
    started = time.monotonic()
    p, s = settings.primary_region, settings.secondary_region
    regions = {
        p: Region(p, PRIMARY, s, template),
        s: Region(s, SECONDARY, p, template),
    }
    try:
        for region in regions.values():
            region.wait_ready()
        say(f"{p} (PRIMARY, global table {regions[p].table}) and {s} (SECONDARY, its replica) are up")
        return _drive(settings, regions, say, started)
    finally:
        for region in regions.values():
            region.stop()


def _drive(
    settings: DrillSettings, regions: dict[str, Region], say: Callable[[str], None], started: float
) -> DrillReport:
    p, s = settings.primary_region, settings.secondary_region
    record = FailoverRecord(p, s, settings.failure_threshold)
    replicator = _Replicator(regions)
    timeline: list[tuple[float, str]] = []
    t0 = time.monotonic()

    def mark(event: str) -> float:
        at = time.monotonic() - t0
        timeline.append((round(at, 3), event))
        say(f"{at:7.2f} s  {event}")
        return at

    accepted: dict[str, str] = {}  # query id -> the region that accepted it
    refused = 0
    failed_at = detected_at = failover_at = returned_at = failback_at = None
    at_failure: dict[str, Any] = {"queued": 0, "unfinished": []}
    at_return: dict[str, Any] = {"queued": 0, "unfinished": []}
    next_send = next_probe = next_replication = t0
    resolved: tuple[str, float] | None = None  # the client's cached DNS answer, and until when
    question = 0

    def count(region: str) -> int:
        return sum(1 for r in accepted.values() if r == region)

    def own(held: dict[str, Any]) -> dict[str, Any]:
        """The primary's own unfinished questions (its table also holds replicated ones)."""
        return {**held, "unfinished": [q for q in held["unfinished"] if accepted.get(q) == p]}

    while question < settings.queries or (failed_at is not None and returned_at is None):
        now = time.monotonic()
        if now >= next_probe:
            for name, region in regions.items():
                answer = region.call("api", method="GET", path="/health")
                ok = not answer.get("unreachable") and answer["status"] == 200
                if record.observe(name, ok):
                    state = "healthy" if ok else "unhealthy"
                    at = mark(f"Route 53 marks {name} {state} after {settings.failure_threshold} probes")
                    if name == p and not ok:
                        detected_at = at
            next_probe += settings.check_interval_s
        if now >= next_replication:
            replicator.round()
            next_replication += settings.replicate_every_s
        if (
            failed_at is not None
            and returned_at is None
            and (count(s) >= settings.outage_queries or question >= settings.queries)
        ):
            at_return = own(regions[p].call("recover"))
            returned_at = mark(
                f"{p} RETURNS: {len(at_return['unfinished'])} of its questions unfinished, "
                f"{at_return['queued']} message(s) in its queue for its poller to drain"
            )
        if question < settings.queries and now >= next_send:
            if resolved is None or now >= resolved[1]:
                resolved = (record.answer(), now + settings.dns_ttl_s)
            target = resolved[0]
            body = {"question": QUESTIONS[question % len(QUESTIONS)]}
            # The primary fails right after accepting its fail_after-th question.
            then_fail = failed_at is None and target == p and count(p) == settings.fail_after - 1
            answer = regions[target].call(
                "api", method="POST", path="/queries", body=body, then_fail=then_fail
            )
            if answer.get("unreachable"):
                refused += 1  # the client retries the same question at its next slot
            elif answer["status"] in (200, 202):
                accepted[answer["body"]["query_id"]] = target
                question += 1
                if "failed" in answer:
                    at_failure = own(answer["failed"])
                    failed_at = mark(
                        f"{p} FAILS: unreachable, its consumer stopped; {len(at_failure['unfinished'])} of "
                        f"its questions unfinished, {at_failure['queued']} message(s) held in its queue"
                    )
                if target == s and failed_at is not None and failover_at is None:
                    failover_at = mark(f"first question accepted by {s}")
                if target == p and returned_at is not None and failback_at is None:
                    failback_at = mark(f"first question accepted by {p} again")
            else:
                raise DrillError(f"{target} refused a drill question: {answer['status']} {answer['body']}")
            next_send += 1 / settings.rate_per_s
        time.sleep(max(0.0, min(next_send, next_probe, next_replication) - time.monotonic()))
    mark(f"load done: {len(accepted)} questions accepted ({refused} attempts refused while failing over)")

    # Drain: every query id terminal in the region that accepted it, then replicated to the other.
    deadline = time.monotonic() + settings.drain_timeout_s
    while True:
        replicator.round()
        views = replicator.statuses()
        open_ids = [q for q, r in accepted.items() if views[r].get(q) not in FINISHED]
        if not open_ids or time.monotonic() >= deadline:
            break
        time.sleep(settings.replicate_every_s)
    replicator.round()
    views = replicator.statuses()
    mark(f"drained: {len(accepted) - len(open_ids)} of {len(accepted)} terminal where accepted")

    answered_by: dict[str, dict[str, int]] = {p: {}, s: {}}
    for query_id, owner in accepted.items():
        status = views[owner].get(query_id, "missing")
        answered_by[owner][status] = answered_by[owner].get(status, 0) + 1
    lost = sorted(q for q, r in accepted.items() if views[r].get(q) not in FINISHED)
    not_replicated = {
        name: sum(1 for q in accepted if view.get(q) not in FINISHED) for name, view in views.items()
    }
    readable = {
        name: sum(
            1
            for q in accepted
            if (a := region.call("api", method="GET", path=f"/queries/{q}")).get("status") == 200
            and a["body"].get("status") in FINISHED
        )
        for name, region in regions.items()
    }
    drained = sum(1 for q in at_return["unfinished"] if views[p].get(q) in FINISHED)
    return DrillReport(
        settings=asdict(settings),
        submitted=len(accepted),
        accepted_by={
            p: sum(1 for r in accepted.values() if r == p),
            s: sum(1 for r in accepted.values() if r == s),
        },
        answered_by=answered_by,
        refused_while_failing_over=refused,
        in_flight_at_failure=len(at_failure["unfinished"]),
        held_in_queue_at_failure=int(at_failure["queued"]),
        unfinished_at_return=len(at_return["unfinished"]),
        drained_after_return=drained,
        detected_after_s=None
        if detected_at is None or failed_at is None
        else round(detected_at - failed_at, 3),
        failover_s=None if failover_at is None or failed_at is None else round(failover_at - failed_at, 3),
        failback_s=None
        if failback_at is None or returned_at is None
        else round(failback_at - returned_at, 3),
        lost=lost,
        not_replicated=not_replicated,
        readable_in=readable,
        timeline=timeline,
        wall_s=round(time.monotonic() - started, 2),
    )
