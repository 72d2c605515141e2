"""The cost model's invariants: totals are sums, no saving exceeds the spend it saves on, cost
rises with volume, the schedule and target tracking cost less than always-on provisioned
concurrency, and provisioned concurrency follows demand as the template's policies do."""

from __future__ import annotations

import math
from typing import Any

import pytest

from panelbrain.ops.cost import monthly_cost

VOLUMES = [100, 5_000, 50_000]
ALWAYS_ON = "Provisioned concurrency (always on at its peak)"
SAVED = "Provisioned-concurrency savings (schedule + target tracking)"


def lines(result: dict[str, object]) -> dict[str, float]:
    return {line["line"]: line["usd"] for line in result["lines"]}  # type: ignore[index,union-attr,attr-defined]


def inputs(result: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(line["inputs"] for line in result["lines"] if line["line"] == name)
    return found


def bedrock(cost: dict[str, float]) -> float:
    return sum(usd for name, usd in cost.items() if name.startswith("Bedrock "))


@pytest.mark.parametrize("volume", VOLUMES)
def test_total_is_the_sum_of_the_lines(volume: int) -> None:
    result = monthly_cost(volume)
    counted = [line["usd"] for line in result["lines"] if line["counted"]]
    assert result["total_usd"] == pytest.approx(math.fsum(counted))
    assert all(line["formula"] for line in result["lines"])
    memo = [line["line"] for line in result["lines"] if not line["counted"]]
    assert memo == ["Prompt-caching savings (memo: already in the Bedrock lines)"]


@pytest.mark.parametrize("volume", VOLUMES)
def test_no_saving_exceeds_the_spend_it_saves_on(volume: int) -> None:
    cost = lines(monthly_cost(volume))
    spend = bedrock(cost)
    variable = (
        spend + cost["Lambda requests"] + cost["Lambda duration"] + cost["Step Functions Express (pipeline)"]
    )
    assert -cost["Result-cache savings"] <= variable
    prompt = cost["Prompt-caching savings (memo: already in the Bedrock lines)"]
    assert -prompt <= spend - prompt  # at most what the same calls cost without caching
    assert 0 <= -cost[SAVED] <= cost[ALWAYS_ON]


def test_cost_rises_with_volume() -> None:
    totals = [monthly_cost(v)["total_usd"] for v in VOLUMES]
    assert totals == sorted(totals) and totals[0] < totals[1] < totals[2]


def test_the_schedule_costs_less_than_always_on() -> None:
    cost = lines(monthly_cost(5_000))
    assert cost[SAVED] < 0
    saving = -cost[SAVED] / cost[ALWAYS_ON]
    assert 0.4 < saving < 0.7  # the seed claims about 40 %


def test_provisioned_concurrency_follows_demand() -> None:
    # At 5,000 a day target tracking never needs more than the business-hours minimums; at
    # 50,000 the Demand policies raise the brain to about ceil(139 / 8.4) = 17 at the peak.
    low, high = monthly_cost(5_000), monthly_cost(50_000)
    peak = inputs(high, ALWAYS_ON)["peak_instances"]
    assert inputs(low, ALWAYS_ON)["peak_instances"]["BrainPlanFunction"] == 5
    assert 17 <= peak["BrainPlanFunction"] <= 22 and 34 <= peak["SqlWriterFunction"] <= 42
    spent_low = lines(low)[ALWAYS_ON] + lines(low)[SAVED]
    spent_high = lines(high)[ALWAYS_ON] + lines(high)[SAVED]
    assert spent_high > 1.5 * spent_low


def test_cloudwatch_counts_the_alarms_target_tracking_creates() -> None:
    # Two alarms per policy, billed per metric they read: 1 for utilisation, 3 for the Demand
    # policies' metric math (queries, busy, utilisation), for six agents: 48 alarm metrics.
    from pathlib import Path

    from panelbrain.local.template import Template

    template = Template.load(Path(__file__).parent.parent.parent / "template.yaml")
    alarms = template.of_type("AWS::CloudWatch::Alarm").values()
    # A metric-math alarm (the deploy rollback alarms: errors + throttles) bills each metric it reads.
    declared = sum(
        max(1, sum(1 for m in a["Properties"].get("Metrics", []) if "MetricStat" in m)) for a in alarms
    )
    assert declared > len(alarms)  # the rollback alarms read two metrics each
    assert inputs(monthly_cost(5_000), "CloudWatch")["alarm_metrics"] == declared + 48


def test_prompt_caching_costs_more_at_low_volume_and_saves_at_high() -> None:
    # At 100 a day every call finds a cold cache and pays the write premium.
    memo = "Prompt-caching savings (memo: already in the Bedrock lines)"
    assert lines(monthly_cost(100))[memo] > 0
    assert lines(monthly_cost(5_000))[memo] < 0


def test_seed_claim_schedule_saves_about_40_percent() -> None:
    # Ours: 53 %. Business hours (45 h a week) at the full count; weekday evenings and nights at
    # 2 once target tracking has scaled in (15 minutes after 18:00); from Saturday 00:00 to
    # Monday 09:00 (57 h) at the weekend's 1, raised to 2-4 on weekend afternoons by demand.
    cost = lines(monthly_cost(5_000))
    saving = -cost[SAVED] / cost[ALWAYS_ON]
    assert saving == pytest.approx(0.532, abs=0.01)
