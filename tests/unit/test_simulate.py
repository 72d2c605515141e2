"""The simulation: its queueing machinery against Erlang C, and what it says of the seed's claims."""

from __future__ import annotations

import pytest

from panelbrain.ops.simulate import (
    SimConfig,
    Simulation,
    arrival_rate_per_s,
    erlang_c_mean_wait,
    simulate_mmc,
)


@pytest.mark.parametrize(("arrival", "servers"), [(4.0, 5), (8.0, 10)])
def test_queueing_agrees_with_erlang_c_within_5_percent(arrival: float, servers: int) -> None:
    expected = erlang_c_mean_wait(arrival, 1.0, servers)
    measured = simulate_mmc(arrival, 1.0, servers, customers=300_000)
    assert measured == pytest.approx(expected, rel=0.05)


def test_arrival_profile_keeps_the_volume_and_the_peak() -> None:
    config = SimConfig(5_000)
    per_minute = [arrival_rate_per_s(config, m * 60) * 60 for m in range(1440)]
    assert sum(per_minute) == pytest.approx(5_000)
    assert max(per_minute) == pytest.approx(4 * 5_000 / 1440, rel=1e-3)


def test_a_day_at_5000_and_what_provisioned_concurrency_changes() -> None:
    with_pc = Simulation(SimConfig(5_000, scaling="seed")).run()
    without = Simulation(SimConfig(5_000, scaling="none")).run()
    assert with_pc["queries"] == pytest.approx(5_000, rel=0.05)
    assert with_pc["throttles"] == 0 and with_pc["max_queue_depth"] == 0
    # Provisioned concurrency removes most cold starts; at this volume on-demand instances stay
    # warm anyway, so even without it only about 1 % of invocations start cold.
    assert with_pc["cold_start_fraction"] < without["cold_start_fraction"] < 0.05
    assert 20 < with_pc["p50_s"] < 35


def test_at_50000_the_model_quota_saturates_first_and_the_recommended_units_remove_it() -> None:
    from panelbrain.ops.capacity import recommended_tpm_quota

    on_demand = Simulation(SimConfig(50_000, days=0.75)).run()
    assert on_demand["saturated_first"].startswith("Bedrock tokens-a-minute quota")
    config = SimConfig(50_000, days=0.75)
    config.tpm_quota = recommended_tpm_quota(50_000)
    assert config.tpm_quota == {"sonnet": 700_000.0, "haiku": 800_000.0}
    provisioned = Simulation(config).run()
    assert provisioned["throttles"] == 0 and provisioned["saturated_first"] == "nothing"
    assert provisioned["p95_s"] < 60 < on_demand["p95_s"]


def test_reviews_and_cost_of_the_period_are_reported() -> None:
    result = Simulation(SimConfig(2_000, days=0.5)).run()
    assert 0.05 < result["reviewed_queries"] / result["queries"] < 0.15  # review fraction 10 %
    assert result["reviewed_p50_s"] > result["p95_s"]  # a person is slower than the pipeline
    assert result["cost_usd"] > 0
    assert Simulation(SimConfig(4_000, days=0.5)).run()["cost_usd"] > result["cost_usd"]
