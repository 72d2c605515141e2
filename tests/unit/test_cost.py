"""The cost model's invariants: totals are sums, no saving exceeds the spend it saves on, cost
rises with volume, the schedule costs less than always-on provisioned concurrency."""

from __future__ import annotations

import math

import pytest

from panelbrain.ops.cost import monthly_cost

VOLUMES = [100, 5_000, 50_000]


def lines(result: dict[str, object]) -> dict[str, float]:
    return {line["line"]: line["usd"] for line in result["lines"]}  # type: ignore[index,union-attr,attr-defined]


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
    assert -cost["Provisioned-concurrency schedule savings"] <= cost["Provisioned concurrency (always on)"]


def test_cost_rises_with_volume() -> None:
    totals = [monthly_cost(v)["total_usd"] for v in VOLUMES]
    assert totals == sorted(totals) and totals[0] < totals[1] < totals[2]


def test_the_schedule_costs_less_than_always_on() -> None:
    cost = lines(monthly_cost(5_000))
    assert cost["Provisioned-concurrency schedule savings"] < 0
    saving = -cost["Provisioned-concurrency schedule savings"] / cost["Provisioned concurrency (always on)"]
    assert 0.4 < saving < 0.7  # the seed claims about 40 %; our schedule saves about 54 %


def test_prompt_caching_costs_more_at_low_volume_and_saves_at_high() -> None:
    # At 100 a day every call finds a cold cache and pays the write premium.
    memo = "Prompt-caching savings (memo: already in the Bedrock lines)"
    assert lines(monthly_cost(100))[memo] > 0
    assert lines(monthly_cost(5_000))[memo] < 0


def test_seed_claim_schedule_saves_about_40_percent() -> None:
    # Ours: 54 % (45 h a week at the full count, 75 h at 2, 48 h at 1), more than the seed's 40 %.
    cost = lines(monthly_cost(5_000))
    saving = -cost["Provisioned-concurrency schedule savings"] / cost["Provisioned concurrency (always on)"]
    assert saving == pytest.approx(0.536, abs=0.005)
