"""Discrete-event simulation (SimPy) of the deployed pipeline over a day or more.

Arrivals follow a business-hours profile whose busiest minute is ``peak_factor`` times the
day's average minute. Each question waits in SQS for a poller slot (MaximumConcurrency), then
runs plan -> the three workers in parallel -> synthesise -> formatter. Every agent call needs a
Lambda instance: a provisioned or still-warm one, or a cold start of 1-3 s. Model calls take
2-30 s (log-normal around the seed's latencies) and draw on a tokens-a-minute quota per model;
past the quota they are throttled and retried with backoff. Provisioned concurrency follows the
template's schedule and, with ``scaling="seed"``, the IncomingQueryCount step-scaling rules.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import simpy

from panelbrain.agents.latency import SEED_LATENCY_S
from panelbrain.ops.capacity import SEED_PROFILE
from panelbrain.ops.template_scaling import scaling

AGENT_FUNCTION = {
    "plan": "BrainPlanFunction",
    "sql_writer": "SqlWriterFunction",
    "weight_applier": "WeightApplierFunction",
    "data_processor": "DataProcessorFunction",
    "synthesise": "BrainSynthesiseFunction",
    "formatter": "FormatterFunction",
}
AGENT_MODEL = {
    "plan": "sonnet",
    "synthesise": "sonnet",
    "sql_writer": "haiku",
    "weight_applier": "haiku",
    "data_processor": "haiku",
    "formatter": None,
}
TOKENS = {p.model: p.tokens_per_call for p in SEED_PROFILE}


@dataclass
class SimConfig:
    queries_per_day: float
    days: float = 1.0
    seed: int = 7
    peak_factor: float = 4.0
    poller_concurrency: int = 10
    poller_seconds: float = 0.2
    scaling: str = "seed"  # seed: schedule + alarms; none: no provisioned concurrency
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
    idle_on_demand: list[float] = field(default_factory=list)  # expiry times


def _shape(hour: float, peak_factor: float, width: float = 2.2) -> float:
    """Quiet nights, a busy working day peaking at 13:30; mean 1 over the day, peak ``peak_factor``."""
    spread = width * math.sqrt(math.pi) / 24  # the bump's share of the day's mean
    amplitude = (peak_factor - 1) / (1 - spread)
    return (peak_factor - amplitude) + amplitude * math.exp(-(((hour - 13.5) / width) ** 2))


def arrival_rate_per_s(config: SimConfig, t: float) -> float:
    """Arrivals a second at time ``t``: the day's average times the business-hours shape."""
    hour = (t / 3600) % 24
    return (
        config.queries_per_day / 86_400 * _shape(hour, config.peak_factor) / _mean_shape(config.peak_factor)
    )


@cache
def _mean_shape(peak_factor: float) -> float:
    return sum(_shape(m / 60, peak_factor) for m in range(1440)) / 1440  # exact, not the integral


def scheduled_provisioned(function: str, t: float) -> int:
    """The template's schedule: business hours, weekday off-hours, weekends (days 5 and 6)."""
    full, off_hours, weekend, _ = scaling().provisioned[function]
    day, hour = int(t // 86_400) % 7, (t / 3600) % 24
    if day >= 5:
        return weekend
    return full if 9 <= hour < 18 else off_hours


class Simulation:
    def __init__(self, config: SimConfig, progress: Callable[[float], None] | None = None) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.env = simpy.Environment()
        self.poller = simpy.Resource(self.env, capacity=config.poller_concurrency)
        self.pools = {name: _Pool() for name in AGENT_FUNCTION.values()}
        self.scale = 1.0
        self.quotas = {
            m: simpy.Container(self.env, capacity=quota, init=quota) for m, quota in config.tpm_quota.items()
        }
        self.minute = -1
        self.arrivals_per_minute: list[int] = []
        self.latencies: list[float] = []
        self.invocations = 0
        self.cold_starts = 0
        self.throttles = 0
        self.on_demand_busy = 0
        self.reviewed: list[float] = []
        self.lambda_gb_seconds = 0.0
        self.model_calls: dict[str, int] = {}
        self.throttles_by_model: dict[str, int] = {}
        self.max_queue_depth = 0
        self.max_queue_age = 0.0
        self.provisioned_gb_seconds = 0.0
        self.progress = progress
        # Per minute: provisioned instances, instances in use, queue depth; per query: (end, latency).
        self.series: dict[str, list[float]] = {"provisioned": [], "in_use": [], "queue_depth": []}
        self.completions: list[tuple[float, float]] = []

    # -- processes ------------------------------------------------------------------------

    def arrivals(self) -> Generator[simpy.Event, Any, None]:
        end = self.config.days * 86_400
        peak = max(arrival_rate_per_s(self.config, h * 60.0) for h in range(1440))
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
        pool = self.pools[AGENT_FUNCTION[agent]]
        self.invocations += 1
        now = self.env.now
        pool.idle_on_demand = [t for t in pool.idle_on_demand if t > now]
        on_provisioned = pool.busy_provisioned < pool.provisioned
        if on_provisioned:
            pool.busy_provisioned += 1
        elif pool.idle_on_demand:
            pool.idle_on_demand.pop()  # a warm on-demand instance
        else:
            self.cold_starts += 1  # a new instance
            yield self.env.timeout(self.random.uniform(1.0, 3.0))
        if not on_provisioned:
            self.on_demand_busy += 1
        try:
            model = AGENT_MODEL[agent]
            if model is not None:
                yield from self._model_call(model)
            mean = SEED_LATENCY_S[agent]
            duration = min(
                max(self.random.lognormvariate(math.log(mean), self.config.latency_sigma), 2.0), 30.0
            )
            self.lambda_gb_seconds += duration * scaling().provisioned[AGENT_FUNCTION[agent]][3]
            if model is not None:
                self.model_calls[model] = self.model_calls.get(model, 0) + 1
            yield self.env.timeout(duration)
        finally:
            if on_provisioned:
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
        """Once a minute: apply schedules and the alarm rules, bill provisioned concurrency."""
        while True:
            self._scale()
            for name, pool in self.pools.items():
                self.provisioned_gb_seconds += pool.provisioned * scaling().provisioned[name][3] * 60
            self.series["provisioned"].append(sum(p.provisioned for p in self.pools.values()))
            self.series["in_use"].append(
                sum(p.busy_provisioned for p in self.pools.values()) + self.on_demand_busy
            )
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
        if self.config.scaling == "none":
            return
        rules = scaling()  # the IncomingQueryCount alarm thresholds of template.yaml
        recent = self.arrivals_per_minute[-3:]
        quiet = self.arrivals_per_minute[-10:]
        if len(recent) == 3 and min(recent) > rules.surge_per_minute:
            self.scale = min(self.scale * 2.0, 20.0)
        elif len(recent) == 3 and min(recent) > rules.scale_up_per_minute:
            self.scale = min(self.scale * 1.5, 20.0)
        elif len(quiet) == 10 and max(quiet) < rules.scale_down_per_minute:
            self.scale = max(self.scale * 0.75, 1.0)
        for name, pool in self.pools.items():
            pool.provisioned = min(100, max(1, round(scheduled_provisioned(name, self.env.now) * self.scale)))

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
            "p50_s": pct(0.50),
            "p95_s": pct(0.95),
            "p99_s": pct(0.99),
            "cold_start_fraction": self.cold_starts / self.invocations if self.invocations else 0.0,
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
            + self.lambda_gb_seconds * lam["per_gb_second"]
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
    axes[1].plot(minutes, simulation.series["provisioned"], label="provisioned")
    axes[1].plot(minutes, simulation.series["in_use"], label="in use", linewidth=0.8)
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
