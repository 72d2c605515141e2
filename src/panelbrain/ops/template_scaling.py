"""The scaling the template deploys, read from template.yaml (the single source of truth).

Each agent's provisioned concurrency is an Application Auto Scaling scalable target on its
``live`` alias with scheduled actions (business hours, off-hours, weekends) and target-tracking
policies: ``<Fn>Utilisation`` on LambdaProvisionedConcurrencyUtilization and ``<Fn>Demand`` on
IncomingQueryCount per provisioned instance. Lambda supports only target tracking and scheduled
scaling (https://docs.aws.amazon.com/autoscaling/application/userguide/services-that-can-integrate-lambda.html),
so anything else on a Lambda target is refused here as AWS would refuse it.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from panelbrain.errors import PanelbrainError
from panelbrain.local.lambda_rules import DEFAULT_MEMORY_MB, function_setting
from panelbrain.local.template import Template

WEEK_S = 7 * 86_400
# Application Auto Scaling's cron is EventBridge's six-field form, days 1-7 counted from Sunday:
# https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html#eb-cron-expressions
CRON_DAY_NUMBERS = {"1": 6, "2": 0, "3": 1, "4": 2, "5": 3, "6": 4, "7": 5}
# Unset cooldowns are 0 for Lambda provisioned concurrency:
# https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html#target-tracking-cooldown
LAMBDA_DEFAULT_COOLDOWN_S = 0.0


class TemplateScalingError(PanelbrainError):
    """template.yaml declares scaling the capacity models cannot read (or AWS would refuse)."""


@dataclass(frozen=True)
class ScheduledAction:
    """A recurring ``cron(M H ? * DAYS *)`` action setting the target's minimum and maximum."""

    name: str
    minute: int
    hour: int
    weekdays: frozenset[int]  # 0 = Monday
    min_capacity: int
    max_capacity: int

    def times_in_week(self) -> list[int]:
        """Seconds from Monday 00:00 (schedule timezone) at which the action fires."""
        return sorted(day * 86_400 + self.hour * 3600 + self.minute * 60 for day in self.weekdays)


@dataclass(frozen=True)
class TrackingPolicy:
    """A target-tracking policy: ``metric`` is "utilisation" (provisioned instances busy) or
    "demand" (incoming queries a minute per provisioned instance)."""

    name: str
    metric: str
    target: float
    scale_out_cooldown_s: float
    scale_in_cooldown_s: float
    scale_in_enabled: bool = True
    quiet_minutes_count: bool = False  # the expression FILLs a minute without queries with 0
    metrics_read: int = 1  # metrics each of its two alarms reads (billed per alarm metric)


@dataclass(frozen=True)
class AgentScaling:
    function: str
    memory_gb: float
    min_capacity: int  # the target's own, until a scheduled action replaces it
    max_capacity: int
    schedule: tuple[ScheduledAction, ...]
    policies: tuple[TrackingPolicy, ...]
    seed_duration_s: float | None  # from the Demand policy's Metadata

    @cached_property
    def _changes(self) -> tuple[tuple[int, int, int], ...]:
        """(second of the week, min, max) of every scheduled firing, in time order."""
        firings = [(t, a.min_capacity, a.max_capacity) for a in self.schedule for t in a.times_in_week()]
        return tuple(sorted(firings))

    def bounds_at(self, t: float) -> tuple[int, int]:
        """(min, max) capacity at ``t`` seconds after a Monday 00:00: those of the latest
        scheduled action fired at or before ``t``, counting the week as a cycle (the stack has
        been up for more than a week)."""
        changes = self._changes
        if not changes:
            return self.min_capacity, self.max_capacity
        # Before the week's first firing, the last one of the week before is in force.
        i = bisect.bisect_right(changes, t % WEEK_S, key=lambda c: c[0]) - 1
        _, low, high = changes[i]
        return low, high

    def minimum_by_action(self) -> dict[str, int]:
        return {a.name: a.min_capacity for a in self.schedule}

    def policy(self, metric: str) -> TrackingPolicy | None:
        return next((p for p in self.policies if p.metric == metric), None)


@dataclass(frozen=True)
class Scaling:
    agents: dict[str, AgentScaling]
    # CloudWatch bills alarms per metric they read; target tracking adds two alarms per policy
    # (AlarmHigh, AlarmLow), each reading the policy's metrics.
    alarm_metrics: int = 0


def _template_path() -> Path:
    from panelbrain.local.engine import find_template

    return find_template()


def _scheduled_action(spec: dict[str, Any], where: str) -> ScheduledAction:
    from panelbrain.local.lambda_rules import Cron
    from panelbrain.local.template import TemplateError

    name = spec["ScheduledActionName"]
    weekly = (
        f"{where} action {name!r}: schedule {spec['Schedule']!r} is not a weekly "
        "cron(M H ? * DAYS *); the capacity models read only that form"
    )
    try:
        # The engine's reading of the schedule, so the models and the engine agree on it.
        cron = Cron.parse(spec["Schedule"])
    except TemplateError as exc:
        raise TemplateScalingError(f"{weekly} ({exc})") from None
    minutes, hours = cron.minutes or frozenset(), cron.hours or frozenset()
    one_time = len(minutes) != 1 or len(hours) != 1
    if cron.once is not None or one_time or (cron.days, cron.months, cron.years) != (None, None, None):
        raise TemplateScalingError(weekly)
    action = spec["ScalableTargetAction"]
    return ScheduledAction(
        name=name,
        minute=next(iter(minutes)),
        hour=next(iter(hours)),
        # Cron counts days 1-7 from Sunday; the models count 0-6 from Monday.
        weekdays=frozenset(range(7))
        if cron.weekdays is None
        else frozenset(CRON_DAY_NUMBERS[str(d)] for d in cron.weekdays),
        min_capacity=int(action["MinCapacity"]),
        max_capacity=int(action.get("MaxCapacity", 10**9)),
    )


def _policy(name: str, resource: dict[str, Any]) -> TrackingPolicy:
    props = resource["Properties"]
    if props.get("PolicyType") != "TargetTrackingScaling":
        # StepScaling: "Not supported for ... Lambda" (PutScalingPolicy, PolicyType):
        # https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScalingPolicy.html
        raise TemplateScalingError(
            f"{name}: PolicyType {props.get('PolicyType')!r} on a Lambda target; Application Auto "
            "Scaling accepts only TargetTrackingScaling (and scheduled actions) for Lambda"
        )
    config = props["TargetTrackingScalingPolicyConfiguration"]
    predefined = config.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType")
    customized = config.get("CustomizedMetricSpecification", {})
    names = {
        m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in customized.get("Metrics", [])
    }
    if "IncomingQueryCount" in names:
        metric, primary = "demand", "queries"
    elif (
        predefined == "LambdaProvisionedConcurrencyUtilization"
        or "ProvisionedConcurrencyUtilization" in names
    ):
        metric, primary = "utilisation", "utilisation"
    else:
        raise TemplateScalingError(
            f"{name}: tracks neither LambdaProvisionedConcurrencyUtilization nor IncomingQueryCount "
            "per instance; teach panelbrain.ops.template_scaling the new metric before deploying it"
        )
    return TrackingPolicy(
        name=name,
        metric=metric,
        target=float(config["TargetValue"]),
        scale_out_cooldown_s=float(config.get("ScaleOutCooldown", LAMBDA_DEFAULT_COOLDOWN_S)),
        scale_in_cooldown_s=float(config.get("ScaleInCooldown", LAMBDA_DEFAULT_COOLDOWN_S)),
        scale_in_enabled=not config.get("DisableScaleIn", False),
        quiet_minutes_count=any(
            re.search(rf"FILL\(\s*{primary}\s*,\s*0\s*\)", str(m.get("Expression", "")))
            for m in customized.get("Metrics", [])
            if m.get("ReturnData", True)
        ),
        metrics_read=max(1, sum(1 for m in customized.get("Metrics", []) if "MetricStat" in m)),
    )


def _function_of(template: Template, name: str, target: dict[str, Any]) -> str:
    # Resolved as the engine resolves it (lambda_rules.provisioned_targets): function:<name>:<alias>.
    resource_id = str(template.resolve(target["Properties"]["ResourceId"]))
    match = re.fullmatch(r"function:([^:]+):[^:]+", resource_id)
    if match is None or match[1] not in template.resources:
        raise TemplateScalingError(
            f"{name}: ResourceId {resource_id!r} is not function:<a function of the template>:<alias>"
        )
    return match[1]


@cache
def scaling(path: Path | None = None) -> Scaling:
    template = Template.load(path or _template_path())
    policies: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, resource in template.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").items():
        target_ref = resource["Properties"].get("ScalingTargetId", {})
        policies.setdefault(target_ref.get("Ref", "") if isinstance(target_ref, dict) else "", []).append(
            (name, resource)
        )
    agents: dict[str, AgentScaling] = {}
    for name, target in template.of_type("AWS::ApplicationAutoScaling::ScalableTarget").items():
        props = target["Properties"]
        if props.get("ServiceNamespace") != "lambda":
            continue
        function = _function_of(template, name, target)
        memory = float(function_setting(template, function, "MemorySize", DEFAULT_MEMORY_MB)) / 1024
        attached = policies.get(name, [])
        own = [_policy(p, r) for p, r in attached]
        demand = next((r for (_, r), p in zip(attached, own, strict=True) if p.metric == "demand"), None)
        seed = (demand or {}).get("Metadata", {}).get("panelbrain", {}).get("seed_duration_s")
        agents[function] = AgentScaling(
            function=function,
            memory_gb=memory,
            min_capacity=int(props["MinCapacity"]),
            max_capacity=int(props["MaxCapacity"]),
            schedule=tuple(_scheduled_action(a, name) for a in props.get("ScheduledActions", [])),
            policies=tuple(own),
            seed_duration_s=float(seed) if seed is not None else None,
        )
    if not agents:
        raise TemplateScalingError(f"{template.path}: no Lambda scalable target (provisioned concurrency)")
    alarms = template.of_type("AWS::CloudWatch::Alarm").values()
    declared = sum(
        max(1, sum(1 for m in a["Properties"].get("Metrics", []) if "MetricStat" in m)) for a in alarms
    )
    tracking = sum(2 * p.metrics_read for agent in agents.values() for p in agent.policies)
    return Scaling(agents=agents, alarm_metrics=declared + tracking)
