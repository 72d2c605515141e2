"""Discrete-event simulation (SimPy) of the deployed pipeline over a day or more, held to the
account's quotas.

Arrivals follow a business-hours profile whose busiest minute is ``peak_factor`` times the
day's average minute. Each question waits in SQS for a poller slot (MaximumConcurrency), the
poller starts an Express execution (StartExecution is a token bucket), then runs plan -> the
three workers in parallel -> synthesise -> formatter. Every agent call needs a Lambda instance: a
provisioned or still-warm one, or a cold start of 1-3 s. Model calls take 2-30 s (log-normal
around the seed's latencies).

Quotas (:class:`panelbrain.pricing.quotas.QuotaSet`, ``--quotas default|requested|FILE``):

- **Lambda concurrent executions** are one pool for the region: provisioned concurrency is taken
  from it whether busy or idle, and may not leave less than the unreserved minimum (100) for
  other functions; the other functions of a query (API, poller, persist) take their share. An
  invocation that finds no instance free is throttled (Lambda.TooManyRequestsException): the
  state machine's Retry tries once more after its interval (query_pipeline.asl.json), then the
  query fails.
- **Bedrock tokens and requests a minute** per model: token buckets refilled continuously, a
  minute's quota deep; output tokens count 5 times against tokens a minute (the burndown rule in
  quotas.yaml). A throttled call is retried by botocore's adaptive mode within its budget
  (:data:`BEDROCK_RETRY_BUDGET_S`, agents/bedrock.py); past it the invocation fails with
  ThrottlingException, the state machine retries once, then the query fails. With
  ``tpm_quota`` set the models run on provisioned throughput instead: that many tokens a minute,
  no request quota and no burndown.
- **Lambda scaling rate**: a function gets at most 1,000 new instances every 10 seconds; a cold
  start past that is throttled like a concurrency throttle.
- **Step Functions StartExecution** (Express for every question, Standard for reviews) and the
  Standard workflow's state transitions: token buckets the caller waits out (SDK retries).

The first quota to throttle is named (``saturated_first``). Time is simulated with one SimPy
process per question that yields once per step; instances are released lazily (a heap of end
times) and quotas are reservations on lazily refilled buckets, so a day at 500,000 questions is
about six events a question.

Provisioned concurrency (``scaling``):
- ``template`` (default): what template.yaml deploys: each agent's scheduled minimum and its two
  target-tracking policies, acted on minute by minute as Application Auto Scaling does
  (:mod:`panelbrain.ops.tracking`). Time 0 is a Monday 00:00 in the schedule's timezone.
- ``seed-steps``: the seed's step rules on IncomingQueryCount with the same schedule, a what-if
  (Application Auto Scaling refuses StepScaling for Lambda).
- ``none``: no provisioned concurrency.
Every agent invocation is counted as served by a provisioned instance or on demand (warm or
a cold start), per function.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from panelbrain.agents.latency import SEED_LATENCY_S
from panelbrain.ops.capacity import (
    FUNCTIONS,
    OTHER_FUNCTION_S,
    OTHER_FUNCTIONS_PER_QUERY,
    OUTPUT_SHARE,
    REVIEW_TRANSITIONS,
    SEED_PROFILE,
    quota_tokens_per_call,
)
from panelbrain.ops.template_scaling import scaling
from panelbrain.ops.tracking import MinuteMetrics, SeedStepRules, TargetTracking, base_rate_per_s
from panelbrain.pricing.quotas import QuotaSet, quota_table

AGENT_FUNCTION = {agent: function for function, agent in FUNCTIONS.items()}
AGENT_MODEL = {
    "plan": "sonnet",
    "synthesise": "sonnet",
    "sql_writer": "haiku",
    "weight_applier": "haiku",
    "data_processor": "haiku",
    "formatter": None,
}
TOKENS = {p.model: p.tokens_per_call for p in SEED_PROFILE}
SCALING_MODES = ("template", "seed-steps", "none")
WORKERS = ("sql_writer", "weight_applier", "data_processor")
# The Retry of each agent's Task for Lambda.TooManyRequestsException and ThrottlingException:
# IntervalSeconds, one attempt more (statemachines/query_pipeline.asl.json).
RETRY_INTERVAL_S = {"plan": 2.0, "synthesise": 2.0, "formatter": 1.0, **{w: 2.0 for w in WORKERS}}
RETRY_ATTEMPTS = 1
# agents/bedrock.py: two attempts a call, the retry after up to min(2 ** 0, 20) s plus up to 5 s
# of x-amz-retry-after; a call that cannot be admitted within it fails.
BEDROCK_RETRY_BUDGET_S = 6.0
POLLER_SATURATION_S = 1.0


@dataclass
class SimConfig:
    queries_per_day: float
    days: float = 1.0
    seed: int = 7
    peak_factor: float = 4.0
    poller_concurrency: int = 10
    poller_seconds: float = 0.2
    scaling: str = "template"  # one of SCALING_MODES
    # Extra arrivals: (start s, end s, queries a minute) on top of the day's profile.
    surges: tuple[tuple[float, float, float], ...] = ()
    keep_warm_s: float = 600.0
    # Tokens a minute of provisioned throughput per model; None: on demand through the
    # cross-region inference profiles, held to the account's Bedrock quotas.
    tpm_quota: dict[str, float] | None = None
    # The account's quotas in the simulated region; None: the table's defaults (us-east-1).
    quotas: QuotaSet | None = None
    latency_sigma: float = 0.45
    review_fraction: float = 0.10
    reviewer_mean_s: float = 900.0  # a reviewer answers in 15 minutes on average


class _Bucket:
    """A token bucket refilled continuously, ``capacity`` deep, reserved in arrival order: a
    caller that finds too few tokens takes them anyway (the level goes below zero) and waits
    until the refill has covered them, as a client retrying a throttled call would."""

    __slots__ = ("at", "capacity", "level", "rate")

    def __init__(self, capacity: float, rate_per_s: float) -> None:
        self.capacity, self.rate, self.level, self.at = capacity, rate_per_s, capacity, 0.0

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` is available at ``now`` (0: available now)."""
        if now > self.at:
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
            self.at = now
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount


@dataclass
class _Pool:
    """One function's instances: provisioned ones (always warm), and idle on-demand ones that
    stay warm until an expiry (Lambda reclaims idle instances after some minutes)."""

    provisioned: int = 0
    busy_provisioned: int = 0
    # Expiry times of idle on-demand instances, in the order they went idle (so ascending).
    idle_on_demand: deque[float] = field(default_factory=deque)
    running: int = 0  # invocations in progress, provisioned or not
    started: int = 0  # invocations started this minute
    busy_area: float = 0.0  # provisioned instance-seconds busy this minute
    since: float = 0.0  # when busy_provisioned last changed
    # Per hour of day: [served by provisioned instances, on demand (warm or cold), cold starts].
    by_hour: list[list[int]] = field(default_factory=lambda: [[0, 0, 0] for _ in range(24)])

    def account(self, now: float) -> None:
        self.busy_area += self.busy_provisioned * (now - self.since)
        self.since = now


def parse_surge(text: str) -> tuple[float, float, float]:
    """``HH:MM,MINUTES,PER_MINUTE`` (extra queries a minute from HH:MM on the first day) as
    (start s, end s, queries a minute)."""
    try:
        at, minutes, rate = (part.strip() for part in text.split(","))
        hours, mins = (int(x) for x in at.split(":"))
        start, length, per_minute = hours * 3600 + mins * 60, float(minutes) * 60, float(rate)
    except ValueError:
        raise ValueError(f"{text!r} is not HH:MM,MINUTES,PER_MINUTE (e.g. 11:00,30,200)") from None
    if not (0 <= hours < 24 and 0 <= mins < 60 and length > 0 and per_minute > 0):
        raise ValueError(f"{text!r}: the time must be a clock time, minutes and the rate positive")
    return float(start), float(start + length), per_minute


def fifo_begin(free: list[float], arrived: float, service_s: float) -> float:
    """When a customer arriving at ``arrived`` starts service at c servers taken in arrival
    order, ``free`` being the heap of the times each server is next free (updated)."""
    begin = max(arrived, heapq.heappop(free))
    heapq.heappush(free, begin + service_s)
    return begin


def arrival_rate_per_s(config: SimConfig, t: float) -> float:
    """Arrivals a second at time ``t``: the day's profile plus any surge under way."""
    extra = sum(rate for start, end, rate in config.surges if start <= t < end) / 60
    return base_rate_per_s(config.queries_per_day, config.peak_factor, t) + extra


class Simulation:
    def __init__(self, config: SimConfig, progress: Callable[[float], None] | None = None) -> None:
        if config.scaling not in SCALING_MODES:
            raise ValueError(f"scaling must be one of {', '.join(SCALING_MODES)}, got {config.scaling!r}")
        self.config = config
        self.random = random.Random(config.seed)
        self.env = simpy.Environment()
        self.pools = {name: _Pool() for name in AGENT_FUNCTION.values()}
        agents = scaling().agents
        self.scalers: dict[str, TargetTracking | SeedStepRules] = {}
        if config.scaling == "template":
            self.scalers = {name: TargetTracking(agents[name]) for name in self.pools}
        elif config.scaling == "seed-steps":
            self.scalers = {name: SeedStepRules(agents[name]) for name in self.pools}
        self.memory_gb = {name: agents[name].memory_gb for name in self.pools}
        self.log_latency = {agent: math.log(seconds) for agent, seconds in SEED_LATENCY_S.items()}
        self.provisioned_total = 0  # provisioned instances of all agents this minute
        self.quotas = config.quotas or QuotaSet.defaults()
        self.concurrency_quota = self.quotas.value("lambda.concurrent_executions")
        self.unreserved_minimum = self.quotas.value("lambda.unreserved_minimum")
        burndown = quota_table().rule("bedrock.output_burndown")
        # Per model: [(quota id, bucket, amount a call takes)]; provisioned throughput is one
        # bucket of raw tokens, the account's quotas two (tokens with burndown, requests).
        self.model_buckets: dict[str, list[tuple[str, _Bucket, float]]] = {}
        for model, tokens in TOKENS.items():
            if config.tpm_quota is not None:
                tpm = config.tpm_quota[model]
                self.model_buckets[model] = [
                    (f"bedrock.provisioned_throughput.{model}", _Bucket(tpm, tpm / 60), tokens)
                ]
            else:
                tpm = self.quotas.value(f"bedrock.cross_region_tpm.{model}")
                rpm = self.quotas.value(f"bedrock.cross_region_rpm.{model}")
                self.model_buckets[model] = [
                    (
                        f"bedrock.cross_region_tpm.{model}",
                        _Bucket(tpm, tpm / 60),
                        quota_tokens_per_call(tokens, burndown),
                    ),
                    (f"bedrock.cross_region_rpm.{model}", _Bucket(rpm, rpm / 60), 1.0),
                ]

        def bucket(quota: str) -> _Bucket:
            return _Bucket(self.quotas.value(f"{quota}.bucket"), self.quotas.value(f"{quota}.rate"))

        self.express = bucket("stepfunctions.express_start_execution")
        self.standard_starts = bucket("stepfunctions.standard_start_execution")
        self.standard_transitions = bucket("stepfunctions.standard_state_transitions")
        # New execution environments: 1,000 every 10 s per function, refilled continuously.
        burst = self.quotas.value("lambda.scaling_rate")
        self.scaling_rate = {name: _Bucket(burst, burst / 10) for name in self.pools}
        # Poller slots as the times each is next free (a FIFO queue of c servers).
        self.poller_free = [0.0] * config.poller_concurrency
        self.waiting: deque[float] = deque()  # start times of questions still queued, ascending
        # Instances in use, released lazily: (end, order, function, on a provisioned instance).
        self.releases: list[tuple[float, int, str, bool]] = []
        self.order = 0
        self.other_functions = 0  # concurrency of the non-agent functions this minute
        self.arrivals_per_minute: list[int] = []
        self.latencies: list[float] = []
        self.invocations = 0
        self.cold_starts = 0
        self.throttles = 0
        self.throttles_by_quota: dict[str, int] = {}
        self.first_throttle: dict[str, float] = {}
        self.failed = 0
        self.on_demand_busy = 0
        self.reviewed: list[float] = []
        # Lambda bills duration on provisioned instances at a lower rate than on demand.
        self.gb_seconds = {"provisioned": 0.0, "on_demand": 0.0}
        self.model_calls: dict[str, int] = {}
        self.max_queue_depth = 0
        self.max_queue_age = 0.0
        self.max_concurrency = 0
        self.provisioned_gb_seconds = 0.0
        self.progress = progress
        # Per minute: provisioned instances, instances in use (of which on demand), queue depth;
        # per query: (end, latency).
        series = ("provisioned", "in_use", "on_demand", "queue_depth")
        self.series: dict[str, list[float]] = {name: [] for name in series}
        self.capacity: dict[str, list[int]] = {name: [] for name in self.pools}  # per function, per minute
        self.completions: list[tuple[float, float]] = []

    # -- processes ------------------------------------------------------------------------

    def arrival_times(self) -> list[float]:
        """Exact non-homogeneous Poisson arrivals by thinning, drawn before the run."""
        end = self.config.days * 86_400
        peak = max(arrival_rate_per_s(self.config, h * 60.0) for h in range(1440)) + sum(
            rate / 60 for _, _, rate in self.config.surges
        )
        draw, uniform, rate = self.random.expovariate, self.random.random, arrival_rate_per_s
        times: list[float] = []
        t = 0.0
        while True:
            t += draw(peak)
            if t >= end:
                return times
            if uniform() < rate(self.config, t) / peak:
                times.append(t)

    def arrivals(self, times: list[float]) -> Generator[simpy.Event, Any, None]:
        env, per_minute = self.env, self.arrivals_per_minute
        for t in times:
            yield env.timeout(t - env.now)
            minute = int(t // 60)
            while len(per_minute) <= minute:
                per_minute.append(0)
            per_minute[minute] += 1
            env.process(self.query(t))

    def query(self, arrived: float) -> Generator[simpy.Event, Any, None]:
        env, config = self.env, self.config
        begin = fifo_begin(self.poller_free, arrived, config.poller_seconds)
        waiting = self.waiting
        while waiting and waiting[0] <= arrived:
            waiting.popleft()
        if begin > arrived:
            waiting.append(begin)
            self.max_queue_depth = max(self.max_queue_depth, len(waiting))
        self.max_queue_age = max(self.max_queue_age, begin - arrived)
        start = begin + config.poller_seconds
        wait = self._reserve(self.express, 1.0, "stepfunctions.express_start_execution.rate", arrived)
        yield env.timeout(start + wait - arrived)
        for step in (("plan",), WORKERS, ("synthesise",)):
            if not (yield from self.step(step)):
                self.failed += 1
                return
        reviewed = self.random.random() < config.review_fraction
        if reviewed:
            # Reviewed answers start the Standard workflow (its StartExecution and state
            # transitions are token buckets; the SDK and the Task's Retry wait them out), wait
            # for a person, then the formatter.
            now = env.now
            wait = max(
                self._reserve(self.standard_starts, 1.0, "stepfunctions.standard_start_execution.rate", now),
                self._reserve(
                    self.standard_transitions,
                    float(REVIEW_TRANSITIONS),
                    "stepfunctions.standard_state_transitions.rate",
                    now,
                ),
            )
            yield env.timeout(wait + min(self.random.expovariate(1 / config.reviewer_mean_s), 3600.0))
        if not (yield from self.step(("formatter",))):
            self.failed += 1
            return
        # Latency percentiles describe the automatic path; reviewed answers are reported apart.
        (self.reviewed if reviewed else self.latencies).append(env.now - arrived)
        if not reviewed:
            self.completions.append((env.now, env.now - arrived))

    def step(self, agents: tuple[str, ...]) -> Generator[simpy.Event, Any, bool]:
        """Invoke ``agents`` (in parallel) and wait for the last; an invocation throttled by a
        quota is retried once after the Task's Retry interval (after its siblings finish: a
        simplification that only delays throttled queries further). False: the step failed."""
        env = self.env
        pending = agents
        for attempt in range(RETRY_ATTEMPTS + 1):
            now = env.now
            self._release_until(now)
            outcomes = [(agent, *self.invoke(agent, now)) for agent in pending]
            yield env.timeout(max(end for _, end, _ in outcomes) - now)
            pending = tuple(agent for agent, _, ok in outcomes if not ok)
            if not pending:
                return True
            if attempt < RETRY_ATTEMPTS:
                yield env.timeout(max(RETRY_INTERVAL_S[a] for a in pending))
        return False

    def invoke(self, agent: str, now: float) -> tuple[float, bool]:
        """Start one invocation of ``agent`` at ``now``: (when it ends, whether it succeeded)."""
        function = AGENT_FUNCTION[agent]
        pool = self.pools[function]
        served = pool.by_hour[int(now // 3600) % 24]
        while pool.idle_on_demand and pool.idle_on_demand[0] <= now:
            pool.idle_on_demand.popleft()
        # Provisioned instances take an invocation first; past them Lambda scales on demand
        # within the account's unreserved concurrency:
        # https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html
        on_provisioned = pool.busy_provisioned < pool.provisioned
        delay = 0.0
        if on_provisioned:
            pool.account(now)
            pool.busy_provisioned += 1
            served[0] += 1
        else:
            if self.on_demand_busy + self.provisioned_total + self.other_functions >= self.concurrency_quota:
                self._throttled("lambda.concurrent_executions", now)
                return now, False
            warm = bool(pool.idle_on_demand)
            if not warm:
                # A new instance: Lambda refuses to scale a function faster than its rate.
                # https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html
                scaling_rate = self.scaling_rate[function]
                if scaling_rate.wait_for(1.0, now) > 0:
                    self._throttled("lambda.scaling_rate", now)
                    return now, False
                scaling_rate.take(1.0)
            served[1] += 1
            if warm:
                pool.idle_on_demand.pop()  # a warm on-demand instance
            else:
                self.cold_starts += 1  # a new instance
                served[2] += 1
                delay = self.random.uniform(1.0, 3.0)
            self.on_demand_busy += 1
        self.invocations += 1
        pool.started += 1
        pool.running += 1
        model = AGENT_MODEL[agent]
        ok = True
        if model is not None:
            wait = self._model_call(model, now)
            if wait is None:  # not admitted within the SDK's retries: ThrottlingException
                ok, duration = False, BEDROCK_RETRY_BUDGET_S
            else:
                delay += wait
        if ok:
            # Log-normal around the seed's latency, within 2-30 s.
            duration = min(
                max(math.exp(self.random.gauss(self.log_latency[agent], self.config.latency_sigma)), 2.0),
                30.0,
            )
            if model is not None:
                self.model_calls[model] = self.model_calls.get(model, 0) + 1
        self.gb_seconds["provisioned" if on_provisioned else "on_demand"] += (
            duration * self.memory_gb[function]
        )
        end = now + delay + duration
        self.order += 1
        heapq.heappush(self.releases, (end, self.order, function, on_provisioned))
        return end, ok

    def _model_call(self, model: str, now: float) -> float | None:
        """Seconds the call waits for its model's quotas, or None when it cannot be admitted
        within the SDK's retry budget (then it takes nothing from them)."""
        buckets = self.model_buckets[model]
        wait, quota_id = 0.0, ""
        for name, bucket, amount in buckets:
            needed = bucket.wait_for(amount, now)
            if needed > wait:
                wait, quota_id = needed, name
        if wait > 0:
            self._throttled(quota_id, now)
        if wait > BEDROCK_RETRY_BUDGET_S:
            return None
        for _, bucket, amount in buckets:
            bucket.take(amount)
        return wait

    def _reserve(self, bucket: _Bucket, amount: float, quota_id: str, now: float) -> float:
        """Take ``amount`` from a bucket whose caller retries until served: the wait."""
        wait = bucket.wait_for(amount, now)
        bucket.take(amount)
        if wait > 0:
            self._throttled(quota_id, now)
        return wait

    def _throttled(self, quota_id: str, now: float) -> None:
        self.throttles += 1
        self.throttles_by_quota[quota_id] = self.throttles_by_quota.get(quota_id, 0) + 1
        self.first_throttle.setdefault(quota_id, now)

    def _release_until(self, now: float) -> None:
        releases, pools = self.releases, self.pools
        while releases and releases[0][0] <= now:
            end, _, function, on_provisioned = heapq.heappop(releases)
            pool = pools[function]
            pool.running -= 1
            if on_provisioned:
                pool.account(end)
                pool.busy_provisioned -= 1
            else:
                self.on_demand_busy -= 1
                pool.idle_on_demand.append(end + self.config.keep_warm_s)

    def clock(self) -> Generator[simpy.Event, Any, None]:
        """Once a minute: the scaling of each agent sees the minute's metrics and sets its
        provisioned instances for the next; provisioned concurrency is billed."""
        while True:
            now = self.env.now
            self._release_until(now)
            self._scale()
            rate = arrival_rate_per_s(self.config, now)
            self.other_functions = math.ceil(
                rate * (OTHER_FUNCTIONS_PER_QUERY * OTHER_FUNCTION_S + self.config.poller_seconds)
            )
            for name, pool in self.pools.items():
                self.provisioned_gb_seconds += pool.provisioned * self.memory_gb[name] * 60
                self.capacity[name].append(pool.provisioned)
            provisioned = sum(p.provisioned for p in self.pools.values())
            in_use = sum(p.busy_provisioned for p in self.pools.values()) + self.on_demand_busy
            self.max_concurrency = max(
                self.max_concurrency, provisioned + self.on_demand_busy + self.other_functions
            )
            self.series["provisioned"].append(provisioned)
            self.series["in_use"].append(in_use)
            self.series["on_demand"].append(self.on_demand_busy)
            waiting = self.waiting
            while waiting and waiting[0] <= now:
                waiting.popleft()
            self.series["queue_depth"].append(len(waiting))
            if self.progress is not None:
                self.progress(now)
            yield self.env.timeout(60)

    # -- helpers ---------------------------------------------------------------------------

    def _scale(self) -> None:
        now = self.env.now
        minute = int(now // 60) - 1  # the minute that just ended
        queries = self.arrivals_per_minute[minute] if 0 <= minute < len(self.arrivals_per_minute) else 0
        wanted: dict[str, int] = {}
        for name, pool in self.pools.items():
            pool.account(now)
            metrics = MinuteMetrics(
                queries=queries,
                busy_provisioned=pool.busy_area / 60,
                active=pool.started > 0 or pool.running > 0,
            )
            pool.busy_area, pool.started = 0.0, 0
            scaler = self.scalers.get(name)
            if scaler is not None:
                wanted[name] = scaler.tick(now, metrics if minute >= 0 else None)
        # Provisioned concurrency comes out of the account's concurrency and must leave the
        # unreserved minimum: a request past that is refused, so decreases apply first and
        # increases in turn while there is room
        # (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
        room = self.concurrency_quota - self.unreserved_minimum
        for name, count in wanted.items():
            if count < self.pools[name].provisioned:
                self.pools[name].provisioned = count
        room -= sum(p.provisioned for p in self.pools.values())
        for name, count in wanted.items():
            pool = self.pools[name]
            increase = count - pool.provisioned
            if increase > 0:
                grant = min(increase, max(0, int(room)))
                pool.provisioned += grant
                room -= grant
                if grant < increase:
                    self._throttled("lambda.unreserved_minimum", now)
        self.provisioned_total = sum(p.provisioned for p in self.pools.values())

    def served(self) -> dict[str, dict[str, int]]:
        """Per function: invocations served by provisioned instances, on demand, and cold starts."""
        out: dict[str, dict[str, int]] = {}
        for name, pool in self.pools.items():
            provisioned, on_demand, cold = (sum(h[i] for h in pool.by_hour) for i in range(3))
            capacity = self.capacity[name] or [0]
            out[name] = {
                "invocations": provisioned + on_demand,
                "provisioned": provisioned,
                "on_demand": on_demand,
                "cold_starts": cold,
                "provisioned_min": min(capacity),
                "provisioned_max": max(capacity),
            }
        return out

    def provisioned_share(self, hours: range = range(24)) -> float:
        """Share of agent invocations in ``hours`` (of the day) served by provisioned instances."""
        provisioned = sum(p.by_hour[h][0] for p in self.pools.values() for h in hours)
        total = provisioned + sum(p.by_hour[h][1] for p in self.pools.values() for h in hours)
        return provisioned / total if total else 0.0

    def run(self) -> dict[str, Any]:
        self.env.process(self.arrivals(self.arrival_times()))
        self.env.process(self.clock())
        self.env.run(until=self.config.days * 86_400 + 600)
        latencies = sorted(self.latencies)

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

        finished = len(latencies) + len(self.reviewed) + self.failed
        return {
            "queries": finished,
            "scaling": self.config.scaling,
            "quotas": self.quotas.label,
            "p50_s": pct(0.50),
            "p95_s": pct(0.95),
            "p99_s": pct(0.99),
            "failed_queries": self.failed,
            "failed_fraction": self.failed / finished if finished else 0.0,
            "cold_start_fraction": self.cold_starts / self.invocations if self.invocations else 0.0,
            "provisioned_fraction": self.provisioned_share(),
            "throttles": self.throttles,
            "throttles_by_quota": dict(sorted(self.throttles_by_quota.items())),
            "saturated_first": self._bottleneck(),
            "max_concurrency": self.max_concurrency,
            "concurrency_quota": self.concurrency_quota,
            "max_queue_depth": self.max_queue_depth,
            "max_queue_age_s": self.max_queue_age,
            "provisioned_gb_seconds": self.provisioned_gb_seconds,
            "peak_arrivals_per_minute": max(self.arrivals_per_minute, default=0),
            "reviewed_queries": len(self.reviewed),
            "reviewed_p50_s": sorted(self.reviewed)[len(self.reviewed) // 2] if self.reviewed else 0.0,
            "cost_usd": self._cost(),
            "tpm_quota": {m: buckets[0][1].capacity for m, buckets in self.model_buckets.items()},
            "functions": self.served(),
        }

    def _cost(self) -> float:
        """Model tokens, Lambda and provisioned-concurrency GB-seconds, and Express requests of
        the simulated period, at the dated prices (no caching: the simulation runs every call)."""
        from panelbrain.ops.cost import BRAIN_MODEL, WORKER_MODEL, aws_prices
        from panelbrain.pricing import cost_usd

        tokens = 0.0
        for model, calls in self.model_calls.items():
            model_id = BRAIN_MODEL if model == "sonnet" else WORKER_MODEL
            per_call = TOKENS[model]
            tokens += cost_usd(
                model_id,
                int(calls * per_call * (1 - OUTPUT_SHARE)),
                int(calls * per_call * OUTPUT_SHARE),
                0,
                0,
            )
        lam, sfn = aws_prices()["lambda"], aws_prices()["step_functions"]
        return float(
            tokens
            + self.gb_seconds["on_demand"] * lam["per_gb_second"]
            + self.gb_seconds["provisioned"] * lam["provisioned_duration_per_gb_second"]
            + self.invocations * lam["per_million_requests"] / 1e6
            + self.provisioned_gb_seconds * lam["provisioned_per_gb_second"]
            + (len(self.latencies) + len(self.reviewed) + self.failed)
            * sfn["express_per_million_requests"]
            / 1e6
        )

    def _bottleneck(self) -> str:
        """The quota that throttled first, when and how often; else the poller's queue."""
        if self.first_throttle:
            quota_id = min(self.first_throttle, key=lambda q: self.first_throttle[q])
            at = self.first_throttle[quota_id]
            day, clock = divmod(int(at), 86_400)
            when = f"{clock // 3600:02d}:{clock % 3600 // 60:02d}" + (f" on day {day + 1}" if day else "")
            return f"{quota_id} at {when} ({self.throttles_by_quota[quota_id]:,} throttled)"
        # Questions always wait a moment for the poller's batch; a queue is saturation only
        # once they wait longer than a second.
        if self.max_queue_age >= POLLER_SATURATION_S:
            depth, age = self.max_queue_depth, self.max_queue_age
            return f"poller concurrency (queue reached {depth:,} messages, {age:,.0f} s)"
        return "nothing"


def erlang_c_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in queue of an M/M/c system (Erlang C)."""
    load = arrival_rate / service_rate
    rho = load / servers
    tail = load**servers / math.factorial(servers) / (1 - rho)
    p_wait = tail / (sum(load**k / math.factorial(k) for k in range(servers)) + tail)
    return p_wait / (servers * service_rate - arrival_rate)


def simulate_mmc(
    arrival_rate: float, service_rate: float, servers: int, customers: int, seed: int = 1
) -> float:
    """Mean queueing time of an M/M/c queue measured with the simulation's own servers
    (:func:`fifo_begin`, the poller's queue), for checking against Erlang C."""
    rng = random.Random(seed)
    free = [0.0] * servers
    waits: list[float] = []
    t = 0.0
    for _ in range(customers):
        t += rng.expovariate(arrival_rate)
        waits.append(fifo_begin(free, t, rng.expovariate(service_rate)) - t)
    warm_up = len(waits) // 10
    return sum(waits[warm_up:]) / (len(waits) - warm_up)


def plot_day(simulation: Simulation, path: str) -> None:
    """Arrivals, provisioned vs used concurrency, queue depth and latency percentiles over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [m / 60 for m in range(len(simulation.series["provisioned"]))]
    figure, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    arrivals = simulation.arrivals_per_minute
    axes[0].plot([m / 60 for m in range(len(arrivals))], arrivals, linewidth=0.8)
    axes[0].set_ylabel("questions / minute")
    axes[1].plot(minutes, simulation.series["provisioned"], label="provisioned (six agents)")
    axes[1].plot(minutes, simulation.series["in_use"], label="in use", linewidth=0.8)
    axes[1].plot(minutes, simulation.series["on_demand"], label="in use on demand", linewidth=0.8)
    axes[1].set_ylabel("Lambda instances")
    axes[1].legend(loc="upper left")
    axes[2].plot(minutes, simulation.series["queue_depth"])
    axes[2].set_ylabel("SQS queue depth")
    hours: dict[int, list[float]] = {}
    for end, latency in simulation.completions:
        hours.setdefault(int(end // 3600), []).append(latency)
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        xs = sorted(hours)
        ys = [sorted(hours[h])[min(len(hours[h]) - 1, int(q * len(hours[h])))] for h in xs]
        axes[3].plot(xs, ys, marker="o", markersize=3, label=label)
    axes[3].set_ylabel("end-to-end seconds (hourly)")
    axes[3].set_xlabel("hour of the simulated period")
    axes[3].legend(loc="upper left")
    figure.suptitle(
        f"{simulation.config.queries_per_day:,.0f} questions a day, scaling {simulation.config.scaling}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
