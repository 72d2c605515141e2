"""``panelbrain load``: an open-loop load against a running ``panelbrain serve`` on this machine.

Arrivals follow a schedule fixed before the first request (Poisson, exponential gaps, seeded; or
fixed spacing), and each one is sent at its scheduled time on its own thread, whatever the
server is doing: a slow server does not slow the offered load. Latencies are measured from the
scheduled time, not from when the request left, so time spent queued behind a slow server
(or a busy client) counts (no coordinated omission). Each query is ``POST /queries``, then
``GET /queries/{id}`` every 0.1 s, backing off to every 0.5 s, until it settles (answered,
needs_review, rejected or failed) or its timeout passes: an end-to-end latency is known to
within the poll interval. ``needs_review`` settles it: the pipeline's part is done, and the rest
waits on a person.

Every query sent ends in exactly one outcome: settled (by status), an error (its kind: the HTTP
status, a timeout or a refused or broken connection, and which request met it), or timed out
before settling. The queue depth comes from the server's ``GET /local/status`` (the SQS queue,
the executions running), sampled with the client's own count of queries accepted but not yet
settled.

Only loopback URLs are accepted: this is a tool for the local server, never for someone else's.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from panelbrain.errors import BadInputError, PanelbrainError

ARRIVALS = ("poisson", "fixed")
SETTLED = ("answered", "needs_review", "rejected", "failed")
OUTCOMES = (*SETTLED, "error", "timed_out")
POLL_FIRST_S, POLL_MAX_S = 0.1, 0.5
MAX_QUERIES = 100_000


class ServerUnreachableError(PanelbrainError):
    """No panelbrain server answered at the URL given (exit 1)."""


def default_questions() -> tuple[str, ...]:
    """804 distinct CES11 questions (a measure, up to three filters, a breakdown) the offline
    reader places every word of: a load that repeats few questions would measure the result
    cache, not the pipeline."""
    measures = (
        "What share support a ban on abortion",
        "What share oppose a ban on abortion",
        "What share say religion is very important",
        "What share say religion is not important",
    )
    provinces: tuple[str, ...] = ("", " in Ontario", " in Quebec", " in Alberta", " in British Columbia")
    provinces += (" in Manitoba", " in Nova Scotia", " outside Quebec")
    genders = ("", " among women", " among men")
    places = ("", " among rural respondents", " among urban respondents")
    breakdowns = ("", " by province", " by gender", " by education", " by urban")
    return tuple(
        f"{measure}{gender}{place}{province}{by}?"
        for measure in measures
        for province in provinces
        for gender in genders
        for place in places
        for by in breakdowns
        # a breakdown by a column filtered on says nothing
        if not any(
            where and column in by
            for column, where in (("province", province), ("gender", gender), ("urban", place))
        )
    )


def read_questions(path: Path) -> tuple[str, ...]:
    """One question a line; blank lines and lines starting with ``#`` are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"--questions {str(path)!r}: cannot read it ({exc.strerror})") from None
    questions = tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )
    if not questions:
        raise BadInputError(f"--questions {str(path)!r} holds no question (one a line, # for comments)")
    return questions


def loopback_url(url: str) -> str:
    """``url`` without a trailing slash, if it is plain http on this machine; else BadInputError.
    A name other than ``localhost`` is refused unresolved: what it resolves to can change."""
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname:
        raise BadInputError(f"--url {url!r} must be http://HOST:PORT of a local `panelbrain serve`")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BadInputError(
            f"--url {url!r}: {host!r} is not this machine; load only runs against a local "
            "`panelbrain serve` (localhost, 127.0.0.1 or [::1])"
        )
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise BadInputError(f"--url {url!r}: {exc}") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadInputError(f"--url {url!r} must be the server's root, without a path or query")
    return f"http://{parts.netloc}"


def arrival_offsets(rate: float, duration_s: float, arrivals: str, seed: int) -> list[float]:
    """When each query is due, in seconds from the start: the whole schedule, fixed in advance."""
    if arrivals == "fixed":
        return [i / rate for i in range(math.ceil(duration_s * rate - 1e-9))]
    rng = random.Random(seed)
    offsets: list[float] = []
    at = rng.expovariate(rate)
    while at < duration_s:
        offsets.append(at)
        at += rng.expovariate(rate)
    return offsets


@dataclass(frozen=True)
class LoadConfig:
    rate: float
    duration_s: float
    url: str = "http://127.0.0.1:3000"
    arrivals: str = "poisson"
    seed: int = 12
    timeout_s: float = 60.0  # per query, from its scheduled time to settled
    http_timeout_s: float = 10.0  # per request: no answer by then is a timeout error
    sample_s: float = 0.5
    dataset: str = "ces11"
    questions: tuple[str, ...] = field(default_factory=default_questions)

    def check(self) -> None:
        if not (0 < self.rate <= 1_000 and 0 < self.duration_s <= 3_600):
            raise BadInputError(
                f"--rate must be in (0, 1000] a second and --duration in (0, 3600] seconds, "
                f"got {self.rate:g} and {self.duration_s:g}"
            )
        if self.rate * self.duration_s > MAX_QUERIES:
            raise BadInputError(
                f"--rate x --duration is {self.rate * self.duration_s:,.0f} queries; at most {MAX_QUERIES:,}"
            )
        if self.arrivals not in ARRIVALS:
            raise BadInputError(f"--arrivals must be one of {', '.join(ARRIVALS)}, got {self.arrivals!r}")
        if self.timeout_s <= 0:
            raise BadInputError(f"--timeout must be positive, got {self.timeout_s:g}")


@dataclass
class QueryRun:
    """One scheduled query and how it ended (``outcome`` is one of :data:`OUTCOMES`)."""

    index: int
    question: str
    due_s: float  # scheduled send, from the run's start
    sent_s: float | None = None  # when its thread actually sent it
    accepted_s: float | None = None  # POST answered 2xx, latency from due
    settled_s: float | None = None  # settled, latency from due
    outcome: str | None = None
    error: str | None = None  # "POST http 503", "GET timeout", "POST connection", ...
    query_id: str | None = None
    last_status: str | None = None
    cached: bool = False


class _Http:
    """One short request at a time over stdlib http.client (a connection a request: the local
    server may close any connection, and a fresh one keeps each query independent)."""

    def __init__(self, base: str, timeout_s: float) -> None:
        parts = urlsplit(base)
        self.host, self.port, self.timeout_s = parts.hostname or "127.0.0.1", parts.port or 80, timeout_s

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON or None); raises TimeoutError or OSError (ConnectionError, ...)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s or self.timeout_s)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except http.client.HTTPException as exc:  # a broken response: the connection's fault
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            connection.close()
        try:
            document = json.loads(raw) if raw else None
        except ValueError:
            document = None
        return response.status, document


def _failure(method: str, exc: BaseException) -> str:
    """``POST timeout``, or ``POST connection (ConnectionResetError)``: the exception tells a
    refused connection (nothing listening) from a reset or a hang-up (a server overwhelmed)."""
    if isinstance(exc, TimeoutError):
        return f"{method} timeout"
    return f"{method} connection ({type(exc.__cause__ or exc).__name__})"


def check_reachable(base: str, timeout_s: float = 5.0) -> None:
    """A panelbrain server answers at ``base``, or ServerUnreachableError says what to do."""
    try:
        status, document = _Http(base, timeout_s).call("GET", "/openapi.json")
    except (OSError, TimeoutError) as exc:
        raise ServerUnreachableError(
            f"no server answers at {base} ({type(exc).__name__}: {exc}); start one with "
            f"`panelbrain serve --port {urlsplit(base).port or 80}` or pass --url"
        ) from None
    if status != 200 or not isinstance(document, dict) or "/queries" not in document.get("paths", {}):
        raise ServerUnreachableError(
            f"{base} answered GET /openapi.json with {status} and no /queries route: "
            "it is not `panelbrain serve`"
        )


Progress = Callable[[dict[str, Any]], None]


class LoadRun:
    """Sends the schedule, follows every query to its outcome, samples the queue meanwhile."""

    def __init__(self, config: LoadConfig, progress: Progress | None = None) -> None:
        config.check()
        self.config = config
        self.base = loopback_url(config.url)
        self.http = _Http(self.base, config.http_timeout_s)
        self.progress = progress or (lambda snapshot: None)
        offsets = arrival_offsets(config.rate, config.duration_s, config.arrivals, config.seed)
        order = random.Random(config.seed).sample(config.questions, len(config.questions))
        self.queries = [QueryRun(i, order[i % len(order)], due) for i, due in enumerate(offsets)]
        self.samples: list[dict[str, Any]] = []
        self.server_status = True  # False once the server says it has no /local/status
        self._lock = threading.Lock()
        self._start = 0.0
        self.client_cpu_s = 0.0

    def now(self) -> float:
        return time.monotonic() - self._start

    def run(self) -> dict[str, Any]:
        check_reachable(self.base)
        load_before = _load_average()
        cpu_before = time.process_time()
        self._start = time.monotonic()
        done = threading.Event()
        sampler = threading.Thread(target=self._sample, args=(done,), name="load-sampler", daemon=True)
        sampler.start()
        threads: list[threading.Thread] = []
        for query in self.queries:
            delay = query.due_s - self.now()
            if delay > 0:
                time.sleep(delay)
            thread = threading.Thread(target=self._follow, args=(query,), name="load-query", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            # Each query ends by its own timeout; the margin covers one request in flight then.
            thread.join(timeout=max(0.0, self.config.timeout_s + self.config.http_timeout_s + 5))
        elapsed = self.now()
        done.set()
        sampler.join(timeout=self.config.http_timeout_s + 1)
        with self._lock:
            for query in self.queries:  # a thread that outlived every bound: say so, never drop it
                if query.outcome is None:
                    query.outcome, query.error = "error", "client thread did not finish"
        self.client_cpu_s = time.process_time() - cpu_before
        return self.document(elapsed, load_before, _load_average())

    def _follow(self, query: QueryRun) -> None:
        query.sent_s = self.now()
        body = {"question": query.question, "dataset": self.config.dataset}
        try:
            status, document = self.http.call("POST", "/queries", body)
        except (OSError, TimeoutError) as exc:
            self._end(query, "error", _failure("POST", exc))
            return
        if status not in (200, 202) or not isinstance(document, dict) or "query_id" not in document:
            self._end(query, "error", f"POST http {status}")
            return
        query.accepted_s = self.now() - query.due_s
        query.query_id = str(document["query_id"])
        query.cached = bool(document.get("cached"))
        wait = POLL_FIRST_S
        while True:
            query.last_status = str(document.get("status"))
            if query.last_status in SETTLED:
                self._end(query, query.last_status)
                return
            left = self.config.timeout_s - (self.now() - query.due_s)
            if left <= 0:
                self._end(query, "timed_out")
                return
            time.sleep(min(wait, left))
            wait = min(wait * 1.5, POLL_MAX_S)
            # No poll outlives the query's own deadline: an answer seen after it is not counted.
            left = max(self.config.timeout_s - (self.now() - query.due_s), 0.05)
            try:
                status, got = self.http.call(
                    "GET", f"/queries/{query.query_id}", timeout_s=min(left, self.config.http_timeout_s)
                )
            except TimeoutError:
                if left <= self.config.http_timeout_s:  # the query's deadline, not the request's
                    self._end(query, "timed_out")
                else:
                    self._end(query, "error", "GET timeout")
                return
            except OSError as exc:
                self._end(query, "error", _failure("GET", exc))
                return
            if status != 200 or not isinstance(got, dict):
                self._end(query, "error", f"GET http {status}")
                return
            document = got

    def _end(self, query: QueryRun, outcome: str, error: str | None = None) -> None:
        with self._lock:
            query.outcome, query.error = outcome, error
            if outcome in SETTLED:
                query.settled_s = self.now() - query.due_s

    def _sample(self, done: threading.Event) -> None:
        while True:
            sample: dict[str, Any] = {"t": round(self.now(), 3), **self._counts()}
            if self.server_status:
                sample.update(self._server_status())
            self.samples.append(sample)
            self.progress({**sample, "duration_s": self.config.duration_s, "scheduled": len(self.queries)})
            if done.wait(self.config.sample_s):
                return

    def _counts(self) -> dict[str, int]:
        with self._lock:
            sent = sum(q.sent_s is not None for q in self.queries)
            ended = Counter(q.outcome for q in self.queries if q.outcome)
            open_ = sum(q.accepted_s is not None and q.outcome is None for q in self.queries)
        return {
            "sent": sent,
            "settled": sum(ended[o] for o in SETTLED),
            "errors": ended["error"],
            "timed_out": ended["timed_out"],
            "outstanding": open_,
        }

    def _server_status(self) -> dict[str, Any]:
        try:
            status, document = self.http.call("GET", "/local/status")
        except (OSError, TimeoutError):
            return {}  # a sample missed under load; the next one may get through
        if status == 404:
            self.server_status = False  # an older server: the client's count alone
            return {}
        if status != 200 or not isinstance(document, dict):
            return {}
        return {
            "queue_visible": document.get("queue", {}).get("visible"),
            "queue_in_flight": document.get("queue", {}).get("in_flight"),
            "executions_running": document.get("executions_running"),
        }

    def document(self, elapsed_s: float, load_before: list[float], load_after: list[float]) -> dict[str, Any]:
        queries = self.queries
        ended = Counter(q.outcome for q in queries)
        outcomes = {o: ended[o] for o in SETTLED}
        outcomes.update(errors=ended["error"], timed_out=ended["timed_out"])
        accepted = [q for q in queries if q.accepted_s is not None]
        pipeline = [q.settled_s for q in queries if q.settled_s is not None and not q.cached]
        duration = self.config.duration_s
        lags = [q.sent_s - q.due_s for q in queries if q.sent_s is not None]
        settle_times = [q.due_s + q.settled_s for q in queries if q.settled_s is not None]
        return {
            "url": self.base,
            "arrivals": self.config.arrivals,
            "seed": self.config.seed,
            "rate_per_s": self.config.rate,
            "duration_s": duration,
            "timeout_s": self.config.timeout_s,
            "questions": len(set(self.config.questions)),
            "sent": len(queries),
            "accepted": len(accepted),
            "outcomes": outcomes,
            "accounted": sum(outcomes.values()) == len(queries),
            "cached": sum(q.cached for q in queries),
            "errors_by_kind": dict(Counter(q.error for q in queries if q.outcome == "error" and q.error)),
            "timed_out_last_status": dict(
                Counter(q.last_status or "never accepted" for q in queries if q.outcome == "timed_out")
            ),
            "rates_per_s": {
                "offered": round(len(queries) / duration, 3),
                "accepted": round(len(accepted) / duration, 3),
                # settled over the span from the first due time to the last settle
                "settled": round(len(settle_times) / max(settle_times), 3) if settle_times else 0.0,
            },
            "latency_s": {
                "end_to_end": _percentiles(pipeline),
                "accepted": _percentiles([q.accepted_s for q in accepted if q.accepted_s is not None]),
            },
            "client": {
                "max_send_lag_s": round(max(lags), 3) if lags else None,
                # the client shares the machine's cores with the server it loads
                "cpu_s": round(self.client_cpu_s, 2),
                "poll_interval_s": [POLL_FIRST_S, POLL_MAX_S],
            },
            "queue": {
                "source": "server /local/status and client" if self.server_status else "client only",
                "max_visible": _max(self.samples, "queue_visible"),
                "max_in_flight": _max(self.samples, "queue_in_flight"),
                "max_executions_running": _max(self.samples, "executions_running"),
                "max_outstanding": _max(self.samples, "outstanding"),
                "samples": self.samples,
            },
            "points": [
                {
                    "due_s": round(q.due_s, 3),
                    "accepted_s": None if q.accepted_s is None else round(q.accepted_s, 3),
                    "settled_s": None if q.settled_s is None else round(q.settled_s, 3),
                    "outcome": q.outcome,
                }
                for q in queries
            ],
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": load_after,
            },
            "elapsed_s": round(elapsed_s, 3),
        }


def _load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return []


def _percentiles(values: list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p95/p99 (each one a latency some query really had), max and count."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)

    return {
        "n": len(ordered),
        "p50": rank(0.5),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 3),
    }


def _max(samples: list[dict[str, Any]], key: str) -> int | None:
    values = [s[key] for s in samples if isinstance(s.get(key), int)]
    return max(values) if values else None


def summary_lines(document: dict[str, Any]) -> list[str]:
    """The report as a few plain lines."""
    o, rates, lat = document["outcomes"], document["rates_per_s"], document["latency_s"]

    def row(name: str, figures: dict[str, Any]) -> str:
        if not figures["n"]:
            return f"{name}: none"
        return (
            f"{name} (n={figures['n']}): p50 {figures['p50']:.3f} s, p95 {figures['p95']:.3f} s, "
            f"p99 {figures['p99']:.3f} s, max {figures['max']:.3f} s"
        )

    queue = document["queue"]
    machine = document["machine"]
    lines = [
        f"{document['url']}: {document['arrivals']} arrivals at {document['rate_per_s']:g}/s for "
        f"{document['duration_s']:g} s ({document['questions']} distinct questions, seed {document['seed']})",
        f"rate per second: offered {rates['offered']:g}, accepted {rates['accepted']:g}, "
        f"settled {rates['settled']:g}",
        f"sent {document['sent']} = answered {o['answered']} + needs_review {o['needs_review']} + rejected "
        f"{o['rejected']} + failed {o['failed']} + errors {o['errors']} + timed out {o['timed_out']}"
        f" ({'all accounted for' if document['accounted'] else 'NOT ALL ACCOUNTED FOR'}; "
        f"{document['cached']} answered from the result cache)",
        row("end to end, pipeline", lat["end_to_end"]),
        row("time to accepted (POST)", lat["accepted"]),
    ]
    if document["errors_by_kind"]:
        lines.append(
            "errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(document["errors_by_kind"].items()))
        )
    if document["timed_out_last_status"]:
        lines.append(
            "timed out, last status seen: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(document["timed_out_last_status"].items()))
        )
    lines.append(
        f"queue ({queue['source']}): max visible {queue['max_visible']}, in flight {queue['max_in_flight']}, "
        f"executions running {queue['max_executions_running']}, client outstanding {queue['max_outstanding']}"
    )
    lines.append(
        f"client: latest send {document['client']['max_send_lag_s']} s after its time, "
        f"{document['client']['cpu_s']} CPU s; machine: "
        f"{machine['cpus']} CPUs, load average {machine['load_average_before']} before, "
        f"{machine['load_average_after']} after"
    )
    return lines


# -- the plot ----------------------------------------------------------------------------------


def plot(document: dict[str, Any], path: Path) -> Path:
    """Latency over the run and the queue depth, as PNG with matplotlib (the ``plot`` extra),
    else as SVG written here (``path`` with .svg). Returns the path written."""
    try:
        import matplotlib
    except ImportError:
        target = path.with_suffix(".svg")
        target.write_text(_svg(document), encoding="utf-8")
        return target
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in document["points"] if p["settled_s"] is not None]
    failed = [p for p in document["points"] if p["outcome"] in ("error", "timed_out", "failed")]
    samples = document["queue"]["samples"]
    figure, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    axes[0].scatter(
        [p["due_s"] + p["settled_s"] for p in points],
        [p["settled_s"] for p in points],
        s=8,
        label="end to end",
    )
    accepted = [p for p in document["points"] if p["accepted_s"] is not None]
    axes[0].scatter(
        [p["due_s"] + p["accepted_s"] for p in accepted],
        [p["accepted_s"] for p in accepted],
        s=6,
        marker="x",
        label="time to accepted",
    )
    if failed:
        axes[0].scatter(
            [p["due_s"] for p in failed], [0] * len(failed), s=14, marker="v", label="not answered"
        )
    axes[0].set_ylabel("seconds since due")
    axes[0].legend(loc="upper left")
    for key, label in (
        ("queue_visible", "SQS visible"),
        ("queue_in_flight", "SQS in flight"),
        ("executions_running", "executions running"),
        ("outstanding", "accepted, not settled (client)"),
    ):
        series = [(s["t"], s[key]) for s in samples if isinstance(s.get(key), int)]
        if series:
            axes[1].plot([t for t, _ in series], [v for _, v in series], label=label)
    axes[1].set_ylabel("queries")
    axes[1].set_xlabel("seconds since start")
    axes[1].legend(loc="upper left")
    figure.suptitle(
        f"panelbrain load: {document['arrivals']} arrivals, {document['rate_per_s']:g}/s "
        f"for {document['duration_s']:g} s"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _svg(document: dict[str, Any]) -> str:
    """The same two panels as plain SVG, for a machine without matplotlib."""
    width, height, pad = 800, 260, 40
    samples = document["queue"]["samples"]
    points: list[tuple[float, float]] = [
        (float(p["due_s"] + p["settled_s"]), float(p["settled_s"]))
        for p in document["points"]
        if p["settled_s"] is not None
    ]
    t_max = max([t for t, _ in points] + [float(s["t"]) for s in samples] + [1.0])
    y_max = max([y for _, y in points] + [0.001])
    depth_keys = ("queue_visible", "executions_running", "outstanding")
    d_max = max([s[k] for s in samples for k in depth_keys if isinstance(s.get(k), int)] + [1])

    def x(t: float) -> float:
        return pad + (width - 2 * pad) * t / t_max

    def panel(top: int, title: str, body: str) -> str:
        return (
            f'<g transform="translate(0,{top})"><rect x="{pad}" y="10" width="{width - 2 * pad}" '
            f'height="{height - 40}" fill="none" stroke="#888"/><text x="{pad}" y="8" font-size="12">'
            f"{title}</text>{body}</g>"
        )

    def y_of(value: float, top_value: float) -> float:
        return 10 + (height - 40) * (1 - value / top_value)

    dots = "".join(
        f'<circle cx="{x(t):.1f}" cy="{y_of(v, y_max):.1f}" r="2" fill="#1f77b4"/>' for t, v in points
    )
    lines = ""
    for key, colour in zip(depth_keys, ("#d62728", "#2ca02c", "#9467bd"), strict=True):
        series = [(s["t"], s[key]) for s in samples if isinstance(s.get(key), int)]
        if series:
            path = " ".join(f"{x(t):.1f},{y_of(v, d_max):.1f}" for t, v in series)
            lines += (
                f'<polyline points="{path}" fill="none" stroke="{colour}"><title>{key}</title></polyline>'
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{2 * height}" '
        'font-family="sans-serif">'
        + panel(0, f"end-to-end seconds (max {y_max:.2f}) by settle time (max {t_max:.0f} s)", dots)
        + panel(
            height, f"queue depth (max {d_max}): SQS visible red, executions green, outstanding purple", lines
        )
        + "</svg>\n"
    )
