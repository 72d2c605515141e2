"""Application Auto Scaling acting on one agent's provisioned concurrency, minute by minute.

The rules, as AWS documents them (each cited where it is applied):

- Scheduled actions set the target's minimum and maximum; at the scheduled time capacity below
  the new minimum is raised to it and capacity above the new maximum is lowered to it. Capacity
  between the two is left alone: lowering the minimum at 18:00 removes nothing by itself.
- Each target-tracking policy has two CloudWatch alarms on its metric, one-minute datapoints,
  Average statistic: AlarmHigh (metric above the target for 3 datapoints) and AlarmLow (metric
  below 90 % of the target for 15 datapoints). While an alarm is in ALARM, Application Auto
  Scaling is invoked once a minute.
- The policy's capacity is proportional: ceil(current capacity * metric / target), within the
  target's minimum and maximum.
- With several policies: scale out if any policy's AlarmHigh is in ALARM, scale in only when
  every policy (with scale-in enabled) is ready to; the largest capacity wins either way.
- A missing datapoint is missing (the default TreatMissingData): with no datapoint in the
  evaluation range the alarm is INSUFFICIENT_DATA, and that policy neither scales out nor agrees
  to scale in. Lambda publishes ProvisionedConcurrencyUtilization only while the function runs,
  and IncomingQueryCount exists only in minutes with queries.
- Cooldowns: after a scale out, a policy scales out again within ScaleOutCooldown only to a
  larger capacity; scale-in waits for ScaleInCooldown; a scale out ends a scale-in cooldown.

The seed's step rules (+50 % above 50 queries a minute, +100 % above 100, -25 % below 20) are
kept as :class:`SeedStepRules`, a what-if: Application Auto Scaling refuses StepScaling for
Lambda, so they cannot be deployed; the docs compare them with what target tracking does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from panelbrain.ops.template_scaling import WEEK_S, AgentScaling, TrackingPolicy

# Scale out needs the load "to sustain for at least 3 minutes"; the low alarm is at "90 percent
# of the 70 percent target": https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html
# The scale-in threshold is "usually more than 10% lower" than the target, scaling in "more gradually":
# https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html
# The length of the low alarm AWS writes only as "consistently" (the Lambda page even says both
# alarms need 3 datapoints); the AlarmLow Application Auto Scaling creates reads "15 datapoints
# within 15 minutes" (e.g. https://georgemao.medium.com/understanding-lambda-provisioned-concurrency-autoscaling-735eb14040cf),
# which we model: the slower scale-in is the costlier assumption.
SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
SCALE_IN_FRACTION = 0.9
# CloudWatch looks further back than the evaluation periods when datapoints are missing; the one
# range AWS gives is 5 for 3 periods (no formula is published), so N + 2 here:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html
EVALUATION_RANGE_EXTRA = 2

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"


def alarm_state(datapoints: Sequence[float | None], threshold: float, above: bool, periods: int) -> str:
    """The state of an N-out-of-N alarm (metric above ``threshold``, or below it when ``above`` is
    False) whose missing data is treated as missing.

    ``datapoints`` oldest first, ``None`` where a minute had none. With N real datapoints in the
    evaluation range the most recent N decide; with fewer, any non-breaching one keeps it OK and
    all breaching reach ALARM only if the oldest is at least N periods old (CloudWatch's guard
    against premature alarms); with none it is INSUFFICIENT_DATA (same AWS page as above).
    """

    def breaching(v: float) -> bool:
        return v > threshold if above else v < threshold

    window = list(datapoints[-(periods + EVALUATION_RANGE_EXTRA) :])
    real = [(age, v) for age, v in enumerate(reversed(window)) if v is not None]  # age 0: newest
    if not real:
        return INSUFFICIENT_DATA
    if len(real) >= periods:
        return ALARM if all(breaching(v) for _, v in real[:periods]) else OK
    if not all(breaching(v) for _, v in real):
        return OK
    return ALARM if real[-1][0] + 1 >= periods else OK


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 8.4 / 8.4 * 5 is 5, not 6


@dataclass
class MinuteMetrics:
    """What CloudWatch saw of one agent over one minute."""

    queries: int  # IncomingQueryCount, Sum (the API's, the same for every agent)
    busy_provisioned: float  # ProvisionedConcurrentExecutions, Average over the minute
    active: bool  # the alias ran an invocation, so Lambda published its utilisation


@dataclass
class TargetTracking:
    """One agent's scalable target under its schedule and target-tracking policies."""

    agent: AgentScaling
    capacity: int = 0
    history: dict[str, list[float | None]] = field(default_factory=dict)
    last_scale_out: dict[str, tuple[float, int]] = field(default_factory=dict)  # policy: (when, to)
    last_scale_in: dict[str, float] = field(default_factory=dict)
    activities: list[tuple[float, int, str]] = field(default_factory=list)  # (when, capacity, why)

    def __post_init__(self) -> None:
        if self.capacity == 0:
            self.capacity = self.agent.bounds_at(0.0)[0]
        self.history = {p.name: [] for p in self.agent.policies}

    def datapoint(self, policy: TrackingPolicy, minute: MinuteMetrics) -> float | None:
        if policy.metric == "utilisation":
            if minute.active and self.capacity:
                return minute.busy_provisioned / self.capacity
            # No invocation, no datapoint: unless the expression FILLs the minute with 0.
            return 0.0 if policy.quiet_minutes_count else None
        if minute.queries == 0:
            # No IncomingQueryCount datapoint: the expression has none, unless it FILLs it with 0.
            return 0.0 if policy.quiet_minutes_count else None
        # The template's expression: queries / (busy / utilisation) = queries / provisioned
        # instances, or queries / 1 in a minute with no provisioned execution.
        return minute.queries / (self.capacity if minute.busy_provisioned > 0 else 1)

    def tick(self, now: float, minute: MinuteMetrics | None) -> int:
        """Take the datapoints of the minute that ended at ``now``, act as Application Auto
        Scaling would, and return the capacity for the next minute. Evaluated every minute: an
        alarm with an Auto Scaling action invokes it "once per minute that the alarm remains" in
        ALARM (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html)."""
        if minute is not None:
            for policy in self.agent.policies:
                self.history[policy.name].append(self.datapoint(policy, minute))
        low, high = self.agent.bounds_at(now)
        self._track(now, low, high)
        # Scheduled actions apply at their time, whatever the cooldowns:
        # https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-policy-overview.html
        if self.capacity < low or self.capacity > high:
            self.capacity = min(max(self.capacity, low), high)
            self.activities.append((now, self.capacity, "schedule"))
        return self.capacity

    def _desired(self, policy: TrackingPolicy) -> int:
        latest = next((v for v in reversed(self.history[policy.name]) if v is not None), 0.0)
        return _ceil(self.capacity * latest / policy.target)

    def _track(self, now: float, low: int, high: int) -> None:
        # Any policy scales out; all must agree to scale in; the largest capacity wins:
        # https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html#target-tracking-multiple-scaling-policies
        out: list[tuple[int, TrackingPolicy]] = []
        ready_in: list[tuple[int, TrackingPolicy]] = []
        for policy in self.agent.policies:
            points = self.history[policy.name]
            desired = self._desired(policy)
            if alarm_state(points, policy.target, True, SCALE_OUT_DATAPOINTS) == ALARM:
                when, to = self.last_scale_out.get(policy.name, (-math.inf, 0))
                in_cooldown = now - when < policy.scale_out_cooldown_s
                if desired > self.capacity and (not in_cooldown or desired > to):
                    out.append((desired, policy))
            if not policy.scale_in_enabled:
                continue
            threshold = SCALE_IN_FRACTION * policy.target
            low_alarm = alarm_state(points, threshold, False, SCALE_IN_DATAPOINTS)
            cooled = now - self.last_scale_in.get(policy.name, -math.inf) >= policy.scale_in_cooldown_s
            if low_alarm == ALARM and cooled:
                ready_in.append((desired, policy))
        if out:
            to, policy = max(out, key=lambda d: d[0])
            self.capacity = min(to, high)
            self.last_scale_out[policy.name] = (now, self.capacity)
            self.last_scale_in.clear()  # a scale out ends any scale-in cooldown
            self.activities.append((now, self.capacity, policy.name))
            return
        voters = [p for p in self.agent.policies if p.scale_in_enabled]
        if voters and len(ready_in) == len(voters):
            to = max(max(d for d, _ in ready_in), low)
            if to < self.capacity:
                self.capacity = to
                for policy in voters:
                    self.last_scale_in[policy.name] = now
                self.activities.append((now, self.capacity, "scale-in (all policies)"))


# The seed's rules (section 5): IncomingQueryCount for 3 minutes above 50 -> +50 %, above 100
# -> +100 %; below 20 for 10 minutes -> -25 %; 3-minute cooldown; min 2 (the schedule), max 100.
SEED_STEP_UP_PER_MINUTE = 50.0
SEED_SURGE_PER_MINUTE = 100.0
SEED_STEP_DOWN_PER_MINUTE = 20.0
SEED_STEP_COOLDOWN_S = 180.0


@dataclass
class SeedStepRules:
    """What the seed's step rules would do to one agent (not deployable on Lambda)."""

    agent: AgentScaling
    capacity: int = 0
    queries: list[int] = field(default_factory=list)
    last_activity: float = -math.inf

    def __post_init__(self) -> None:
        if self.capacity == 0:
            self.capacity = self.agent.bounds_at(0.0)[0]

    def tick(self, now: float, minute: MinuteMetrics | None) -> int:
        if minute is not None:
            self.queries.append(minute.queries)
        low, high = self.agent.bounds_at(now)
        recent, quiet = self.queries[-3:], self.queries[-10:]
        if now - self.last_activity >= SEED_STEP_COOLDOWN_S:
            change = 0
            if len(recent) == 3 and min(recent) > SEED_SURGE_PER_MINUTE:
                change = max(1, self.capacity)
            elif len(recent) == 3 and min(recent) > SEED_STEP_UP_PER_MINUTE:
                change = max(1, self.capacity // 2)
            elif len(quiet) == 10 and max(quiet) < SEED_STEP_DOWN_PER_MINUTE:
                change = -max(1, self.capacity // 4)
            if change:
                before = self.capacity
                self.capacity = min(max(self.capacity + change, low), high)
                if self.capacity != before:
                    self.last_activity = now
        self.capacity = min(max(self.capacity, low), high)
        return self.capacity


# -- arrivals ------------------------------------------------------------------------------


def day_shape(hour: float, peak_factor: float, width: float = 2.2) -> float:
    """Quiet nights, a busy working day peaking at 13:30; peak ``peak_factor`` times the night."""
    spread = width * math.sqrt(math.pi) / 24  # the bump's share of the day's mean
    amplitude = (peak_factor - 1) / (1 - spread)
    return (peak_factor - amplitude) + amplitude * math.exp(-(((hour - 13.5) / width) ** 2))


@cache
def mean_shape(peak_factor: float) -> float:
    return sum(day_shape(m / 60, peak_factor) for m in range(1440)) / 1440  # exact, not the integral


def base_rate_per_s(queries_per_day: float, peak_factor: float, t: float) -> float:
    """Arrivals a second at ``t``: the day's average times the business-hours shape."""
    hour = (t / 3600) % 24
    return queries_per_day / 86_400 * day_shape(hour, peak_factor) / mean_shape(peak_factor)


def tracked_week(
    agent: AgentScaling,
    queries_per_day: float,
    duration_s: float,
    *,
    peak_factor: float = 4.0,
    seed: int = 7,
) -> list[int]:
    """Provisioned instances of ``agent`` each minute of a week from Monday 00:00.

    A minute-level model, fast enough for the cost table: Poisson arrivals a minute from the
    day's profile, each keeping the agent busy for ``duration_s``; provisioned instances serve
    first (up to the capacity). `panelbrain simulate` runs the same policies per invocation.
    """
    rng = random.Random(seed)
    tracker = TargetTracking(agent)
    capacity = tracker.tick(0.0, None)
    series = []
    for minute in range(WEEK_S // 60):
        mean = base_rate_per_s(queries_per_day, peak_factor, minute * 60 + 30) * 60
        queries = _poisson(rng, mean)
        busy = min(queries * duration_s / 60, float(capacity))
        series.append(capacity)
        metrics = MinuteMetrics(queries=queries, busy_provisioned=busy, active=queries > 0)
        capacity = tracker.tick((minute + 1) * 60.0, metrics)
    return series


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:  # normal approximation: the exact draw is slow for large means
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k
