"""The scaling parameters the models use, read from template.yaml (the single source of truth)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from panelbrain.local.template import Template


@dataclass(frozen=True)
class Scaling:
    # function -> (business-hours provisioned instances, off-hours, weekend, memory GB)
    provisioned: dict[str, tuple[int, int, int, float]]
    scale_up_per_minute: float  # IncomingQueryCount above this for 3 minutes: +50 %
    surge_per_minute: float  # above this for 3 minutes: +100 %
    scale_down_per_minute: float  # below this for 10 minutes: -25 %


def _template_path() -> Path:
    from panelbrain.local.engine import find_template

    return find_template()


@cache
def scaling(path: Path | None = None) -> Scaling:
    template = Template.load(path or _template_path())
    globals_memory = template.body.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    provisioned: dict[str, tuple[int, int, int, float]] = {}
    for resource in template.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values():
        function = resource["DependsOn"].removesuffix("Aliaslive")
        actions = {
            a["ScheduledActionName"]: a["ScalableTargetAction"]["MinCapacity"]
            for a in resource["Properties"]["ScheduledActions"]
        }
        memory = template.resources[function]["Properties"].get("MemorySize", globals_memory) / 1024
        provisioned[function] = (actions["business-hours"], actions["off-hours"], actions["weekends"], memory)
    thresholds = {
        name: r["Properties"]["Threshold"] for name, r in template.of_type("AWS::CloudWatch::Alarm").items()
    }
    return Scaling(
        provisioned=provisioned,
        scale_up_per_minute=float(thresholds["IncomingQueriesHighA"]),
        surge_per_minute=float(thresholds["IncomingQueriesSurgeA"]),
        scale_down_per_minute=float(thresholds["IncomingQueriesLowA"]),
    )
