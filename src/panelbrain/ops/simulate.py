"""Discrete-event simulation (SimPy) of the deployed pipeline over a day or more.

Arrivals follow a business-hours profile whose busiest minute is ``peak_factor`` times the
day's average minute. Each question waits in SQS for a poller slot (MaximumConcurrency), then
runs plan -> the three workers in parallel -> synthesise -> formatter. Every agent call needs a
Lambda instance: a provisioned or still-warm one, or a cold start of 1-3 s. Model calls take
2-30 s (log-normal around the seed's latencies) and draw on a tokens-a-minute quota per model;
past the quota they are throttled and retried with backoff.

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

import math
import random
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from panelbrain.agents.latency import SEED_LATENCY_S
from panelbrain.ops.capacity import FUNCTIONS, SEED_PROFILE
from panelbrain.ops.template_scaling import scaling
from panelbrain.ops.tracking import MinuteMetrics, SeedStepRules, TargetTracking, base_rate_per_s

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
    # On-demand tokens-a-minute quotas assumed per model (account quotas vary: check yours).
    tpm_quota: dict[str, float] = field(default_factory=lambda: {"sonnet": 200_000.0, "haiku": 400_000.0})
    latency_sigma: float = 0.45
    review_fraction: float = 0.10
    reviewer_mean_s: float = 900.0  # a reviewer answers in 15 minutes on average


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
        self.poller = simpy.Resource(self.env, capacity=config.poller_concurrency)
        self.pools = {name: _Pool() for name in AGENT_FUNCTION.values()}
        agents = scaling().agents
        self.scalers: dict[str, TargetTracking | SeedStepRules] = {}
        if config.scaling == "template":
            self.scalers = {name: TargetTracking(agents[name]) for name in self.pools}
        elif config.scaling == "seed-steps":
            self.scalers = {name: SeedStepRules(agents[name]) for name in self.pools}
        self.memory_gb = {name: agents[name].memory_gb for name in self.pools}
        self.quotas = {
            m: simpy.Container(self.env, capacity=quota, init=quota) for m, quota in config.tpm_quota.items()
        }
        self.arrivals_per_minute: list[int] = []
        self.latencies: list[float] = []
        self.invocations = 0
        self.cold_starts = 0
        self.throttles = 0
        self.on_demand_busy = 0
        self.reviewed: list[float] = []
        # Lambda bills duration on provisioned instances at a lower rate than on demand.
        self.gb_seconds = {"provisioned": 0.0, "on_demand": 0.0}
        self.model_calls: dict[str, int] = {}
        self.throttles_by_model: dict[str, int] = {}
        self.max_queue_depth = 0
        self.max_queue_age = 0.0
        self.provisioned_gb_seconds = 0.0
        self.progress = progress
        # Per minute: provisioned instances, instances in use (of which on demand), queue depth;
        # per query: (end, latency).
        series = ("provisioned", "in_use", "on_demand", "queue_depth")
        self.series: dict[str, list[float]] = {name: [] for name in series}
        self.capacity: dict[str, list[int]] = {name: [] for name in self.pools}  # per function, per minute
        self.completions: list[tuple[float, float]] = []

    # -- processes ------------------------------------------------------------------------

    def arrivals(self) -> Generator[simpy.Event, Any, None]:
        end = self.config.days * 86_400
        peak = max(arrival_rate_per_s(self.config, h * 60.0) for h in range(1440)) + sum(
            rate / 60 for _, _, rate in self.config.surges
        )
        while self.env.now < end:  # thinning: exact non-homogeneous Poisson arrivals
            yield self.env.timeout(self.random.expovariate(peak))
            if self.random.random() < arrival_rate_per_s(self.config, self.env.now) / peak:
                self._count_arrival()
                self.env.process(self.query(self.env.now))

    def query(self, arrived: float) -> Generator[simpy.Event, Any, None]:
        with self.poller.request() as slot:
            self.max_queue_depth = max(self.max_queue_depth, len(self.poller.queue))
            yield slot
            self.max_queue_age = max(self.max_queue_age, self.env.now - arrived)
            yield self.env.timeout(self.config.poller_seconds)
        yield self.env.process(self.agent("plan"))
        yield simpy.AllOf(
            self.env,
            [self.env.process(self.agent(w)) for w in ("sql_writer", "weight_applier", "data_processor")],
        )
        yield self.env.process(self.agent("synthesise"))
        reviewed = self.random.random() < self.config.review_fraction
        if reviewed:
            # Reviewed answers wait for a person (the Standard workflow), then the formatter.
            yield self.env.timeout(min(self.random.expovariate(1 / self.config.reviewer_mean_s), 3600.0))
        yield self.env.process(self.agent("formatter"))
        # Latency percentiles describe the automatic path; reviewed answers are reported apart.
        (self.reviewed if reviewed else self.latencies).append(self.env.now - arrived)
        if not reviewed:
            self.completions.append((self.env.now, self.env.now - arrived))

    def agent(self, agent: str) -> Generator[simpy.Event, Any, None]:
        function = AGENT_FUNCTION[agent]
        pool = self.pools[function]
        self.invocations += 1
        now = self.env.now
        served = pool.by_hour[int(now // 3600) % 24]
        pool.started += 1
        pool.running += 1
        while pool.idle_on_demand and pool.idle_on_demand[0] <= now:
            pool.idle_on_demand.popleft()
        # Provisioned instances take an invocation first; past them Lambda scales on demand:
        # https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html
        on_provisioned = pool.busy_provisioned < pool.provisioned
        if on_provisioned:
            pool.account(now)
            pool.busy_provisioned += 1
            served[0] += 1
        else:
            served[1] += 1
            if pool.idle_on_demand:
                pool.idle_on_demand.pop()  # a warm on-demand instance
            else:
                self.cold_starts += 1  # a new instance
                served[2] += 1
                yield self.env.timeout(self.random.uniform(1.0, 3.0))
            self.on_demand_busy += 1
        try:
            model = AGENT_MODEL[agent]
            if model is not None:
                yield from self._model_call(model)
            mean = SEED_LATENCY_S[agent]
            duration = min(
                max(self.random.lognormvariate(math.log(mean), self.config.latency_sigma), 2.0), 30.0
            )
            kind = "provisioned" if on_provisioned else "on_demand"
            self.gb_seconds[kind] += duration * self.memory_gb[function]
            if model is not None:
                self.model_calls[model] = self.model_calls.get(model, 0) + 1
            yield self.env.timeout(duration)
        finally:
            pool.running -= 1
            if on_provisioned:
                pool.account(self.env.now)
                pool.busy_provisioned -= 1
            else:
                self.on_demand_busy -= 1
                pool.idle_on_demand.append(self.env.now + self.config.keep_warm_s)

    def _model_call(self, model: str) -> Generator[simpy.Event, Any, None]:
        """Take the call's tokens from the model's quota; wait (throttled, then retried by the
        SDK) while the quota is spent. The quota refills continuously, as Bedrock's does."""
        bucket = self.quotas[model]
        if bucket.level < TOKENS[model]:
            self.throttles += 1
            self.throttles_by_model[model] = self.throttles_by_model.get(model, 0) + 1
        yield bucket.get(TOKENS[model])

    def refill(self) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(1.0)
            for model, bucket in self.quotas.items():
                room = bucket.capacity - bucket.level
                if room > 0:
                    yield bucket.put(min(room, self.config.tpm_quota[model] / 60))

    def clock(self) -> Generator[simpy.Event, Any, None]:
        """Once a minute: the scaling of each agent sees the minute's metrics and sets its
        provisioned instances for the next; provisioned concurrency is billed."""
        while True:
            self._scale()
            for name, pool in self.pools.items():
                self.provisioned_gb_seconds += pool.provisioned * self.memory_gb[name] * 60
                self.capacity[name].append(pool.provisioned)
            self.series["provisioned"].append(sum(p.provisioned for p in self.pools.values()))
            self.series["in_use"].append(
                sum(p.busy_provisioned for p in self.pools.values()) + self.on_demand_busy
            )
            self.series["on_demand"].append(self.on_demand_busy)
            self.series["queue_depth"].append(len(self.poller.queue))
            if self.progress is not None:
                self.progress(self.env.now)
            yield self.env.timeout(60)

    # -- helpers ---------------------------------------------------------------------------

    def _count_arrival(self) -> None:
        minute = int(self.env.now // 60)
        while len(self.arrivals_per_minute) <= minute:
            self.arrivals_per_minute.append(0)
        self.arrivals_per_minute[minute] += 1

    def _scale(self) -> None:
        now = self.env.now
        minute = int(now // 60) - 1  # the minute that just ended
        queries = self.arrivals_per_minute[minute] if 0 <= minute < len(self.arrivals_per_minute) else 0
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
                pool.provisioned = scaler.tick(now, metrics if minute >= 0 else None)

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
        self.env.process(self.arrivals())
        self.env.process(self.clock())
        self.env.process(self.refill())
        self.env.run(until=self.config.days * 86_400 + 600)
        latencies = sorted(self.latencies)

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

        return {
            "queries": len(latencies) + len(self.reviewed),
            "scaling": self.config.scaling,
            "p50_s": pct(0.50),
            "p95_s": pct(0.95),
            "p99_s": pct(0.99),
            "cold_start_fraction": self.cold_starts / self.invocations if self.invocations else 0.0,
            "provisioned_fraction": self.provisioned_share(),
            "throttles": self.throttles,
            "max_queue_depth": self.max_queue_depth,
            "max_queue_age_s": self.max_queue_age,
            "provisioned_gb_seconds": self.provisioned_gb_seconds,
            "peak_arrivals_per_minute": max(self.arrivals_per_minute, default=0),
            "reviewed_queries": len(self.reviewed),
            "reviewed_p50_s": sorted(self.reviewed)[len(self.reviewed) // 2] if self.reviewed else 0.0,
            "cost_usd": self._cost(),
            "saturated_first": self._bottleneck(),
            "tpm_quota": dict(self.config.tpm_quota),
            "functions": self.served(),
        }

    def _cost(self) -> float:
        """Model tokens, Lambda and provisioned-concurrency GB-seconds, and Express requests of
        the simulated period, at the dated prices (no caching: the simulation runs every call)."""
        from panelbrain.ops.cost import BRAIN_MODEL, WORKER_MODEL, aws_prices
        from panelbrain.pricing import cost_usd

        output_share = 0.2
        tokens = 0.0
        for model, calls in self.model_calls.items():
            model_id = BRAIN_MODEL if model == "sonnet" else WORKER_MODEL
            per_call = TOKENS[model]
            tokens += cost_usd(
                model_id,
                int(calls * per_call * (1 - output_share)),
                int(calls * per_call * output_share),
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
            + (len(self.latencies) + len(self.reviewed)) * sfn["express_per_million_requests"] / 1e6
        )

    def _bottleneck(self) -> str:
        if self.throttles_by_model:
            model = max(self.throttles_by_model, key=lambda m: self.throttles_by_model[m])
            return (
                f"Bedrock tokens-a-minute quota ({model}: {self.throttles_by_model[model]:,} throttled calls)"
            )
        if self.max_queue_depth > 0:
            return f"poller concurrency (queue reached {self.max_queue_depth:,} messages)"
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
    """Mean queueing time measured by the same SimPy machinery, for checking against Erlang C."""
    env = simpy.Environment()
    station = simpy.Resource(env, capacity=servers)
    rng = random.Random(seed)
    waits: list[float] = []

    def customer() -> Generator[simpy.Event, Any, None]:
        arrived = env.now
        with station.request() as slot:
            yield slot
            waits.append(env.now - arrived)
            yield env.timeout(rng.expovariate(service_rate))

    def source() -> Generator[simpy.Event, Any, None]:
        for _ in range(customers):
            yield env.timeout(rng.expovariate(arrival_rate))
            env.process(customer())

    env.process(source())
    env.run()
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
