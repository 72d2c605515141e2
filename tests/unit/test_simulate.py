"""The simulation: its queueing (the poller's FIFO servers) against Erlang C, the scaling it
models against the rules Application Auto Scaling documents, and what it says of the seed's
claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from panelbrain.ops.simulate import (
    SimConfig,
    Simulation,
    arrival_rate_per_s,
    erlang_c_mean_wait,
    simulate_mmc,
)
from panelbrain.ops.template_scaling import scaling
from panelbrain.ops.tracking import ALARM, INSUFFICIENT_DATA, OK, MinuteMetrics, TargetTracking, alarm_state

ROOT = Path(__file__).parent.parent.parent
HOUR = 3600
MONDAY_11 = 11 * HOUR


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


# -- the scaling model against the documented rules ------------------------------------------


@pytest.mark.parametrize(
    ("points", "state"),
    [
        # CloudWatch's own table for 3 of 3 with missing data treated as missing (X breaching).
        ("0-X-X", OK),
        ("0----", OK),
        ("-----", INSUFFICIENT_DATA),
        ("0XX-X", ALARM),
        ("--X--", ALARM),  # the oldest breaching point is 3 periods old: no premature alarm
        ("----X", OK),  # one fresh breaching point is not yet an alarm
    ],
)
def test_alarm_evaluation_follows_cloudwatch_on_missing_data(points: str, state: str) -> None:
    values = [None if c == "-" else (1.0 if c == "X" else 0.0) for c in points]
    assert alarm_state(values, 0.5, True, 3) == state


def _minute(queries: int, busy: float = 0.0) -> MinuteMetrics:
    return MinuteMetrics(queries=queries, busy_provisioned=busy, active=queries > 0 or busy > 0)


def _run(tracker: TargetTracking, start: float, minutes: list[MinuteMetrics]) -> list[int]:
    return [tracker.tick(start + (i + 1) * 60, m) for i, m in enumerate(minutes)]


def test_demand_scales_out_in_proportion_after_three_datapoints() -> None:
    agent = scaling(ROOT / "template.yaml").agents["BrainPlanFunction"]  # demand target 8.4
    tracker = TargetTracking(agent)
    assert tracker.tick(MONDAY_11, None) == 5  # business hours: the schedule's minimum
    # 168 incoming queries a minute are 20 instances' worth at 8.4 each.
    capacity = _run(tracker, MONDAY_11, [_minute(168, busy=4.0)] * 4)
    assert capacity == [5, 5, 20, 20]
    # Twice the demand, twice the instances.
    capacity = _run(tracker, MONDAY_11 + 240, [_minute(336, busy=10.0)] * 3)
    assert capacity[-1] == 40


def test_scale_in_waits_for_15_low_datapoints_and_a_quiet_night_scales_in() -> None:
    agent = scaling(ROOT / "template.yaml").agents["BrainPlanFunction"]
    # An idle alias publishes no utilisation and a quiet minute no IncomingQueryCount: both
    # policies count such a minute as 0, so both can agree to scale in on a quiet night.
    assert all(p.quiet_minutes_count and p.scale_in_enabled for p in agent.policies)
    tracker = TargetTracking(agent)
    tracker.tick(MONDAY_11, None)
    _run(tracker, MONDAY_11, [_minute(168, busy=3.0)] * 3)  # utilisation 0.6: demand alone scales out
    assert tracker.capacity == 20
    # Then no traffic at all (no datapoint of any Lambda metric): the 15th quiet minute is the
    # first moment it may fall, back to the schedule's minimum, not held up for want of data.
    quiet = _run(tracker, MONDAY_11 + 180, [_minute(0, busy=0.0)] * 16)
    assert quiet[:14] == [20] * 14 and quiet[14:] == [5, 5]


def test_lowering_the_minimum_removes_nothing_until_target_tracking_scales_in() -> None:
    agent = scaling(ROOT / "template.yaml").agents["SqlWriterFunction"]  # 10 in business hours
    tracker = TargetTracking(agent)
    evening = 17 * HOUR + 40 * 60
    tracker.tick(evening, None)
    # Busy until 18:00 (70 % of 10 instances), then quiet: the off-hours minimum of 2 applies
    # at 18:00 but the instances go only when both policies' low alarms have 15 datapoints.
    capacity = _run(tracker, evening, [_minute(40, busy=7.0)] * 20 + [_minute(1, busy=0.1)] * 16)
    assert capacity[:20] == [10] * 20
    assert capacity[20:34] == [10] * 14 and capacity[34:] == [2, 2]


# -- the simulated pipeline --------------------------------------------------------------------


def test_a_day_at_5000_and_what_provisioned_concurrency_changes() -> None:
    day = Simulation(SimConfig(5_000))
    with_pc, without = day.run(), Simulation(SimConfig(5_000, scaling="none")).run()
    assert with_pc["queries"] == pytest.approx(5_000, rel=0.05)
    assert with_pc["throttles"] == 0 and with_pc["max_queue_depth"] == 0
    # Provisioned concurrency removes about half the cold starts; at this volume on-demand
    # instances stay warm anyway, so even without it only about 1 % of invocations start cold.
    assert with_pc["cold_start_fraction"] < without["cold_start_fraction"] < 0.05
    assert 20 < with_pc["p50_s"] < 35
    # Every invocation is counted once, on a provisioned instance or on demand.
    for counts in with_pc["functions"].values():
        assert counts["provisioned"] + counts["on_demand"] == counts["invocations"]
        assert counts["cold_starts"] <= counts["on_demand"]
        assert counts["invocations"] == pytest.approx(with_pc["queries"], abs=5)
    assert all(c["provisioned"] == 0 for c in without["functions"].values())
    business = day.provisioned_share(range(9, 18))
    print(f"5,000 a day: {business:.1%} of agent invocations in business hours on provisioned instances")
    assert business > 0.9


def _surge(scaling_mode: str) -> Simulation:
    # 200 extra queries a minute from 11:00 to 11:30 on a Monday, with model quotas that do not
    # throttle, so only Lambda scaling is under test.
    config = SimConfig(500, days=0.55, scaling=scaling_mode, surges=((MONDAY_11, MONDAY_11 + 1800, 200.0),))
    config.tpm_quota = {"sonnet": 1e7, "haiku": 1e7}
    simulation = Simulation(config)
    simulation.run()
    return simulation


def test_a_surge_raises_capacity_in_proportion_and_it_falls_back_no_sooner_than_the_rule() -> None:
    simulation = _surge("template")
    agent = scaling(ROOT / "template.yaml").agents["BrainPlanFunction"]
    demand = agent.policy("demand")
    assert demand is not None
    capacity = simulation.capacity["BrainPlanFunction"]  # one value a minute from 00:00
    start, end = MONDAY_11 // 60, (MONDAY_11 + 1800) // 60
    surge_rate = sum(simulation.arrivals_per_minute[start:end]) / (end - start)
    peak = max(capacity[start:end])
    assert capacity[start - 1] == 5  # the business-hours minimum before the surge
    # Not before three one-minute datapoints above the target.
    assert capacity[start : start + 3] == [5, 5, 5]
    assert surge_rate / demand.target <= peak <= 1.5 * surge_rate / demand.target
    # No scale-in before 15 datapoints below 90 % of the target (counted from the last surge
    # minute at or above it: arrivals are random, the surge's last minutes can fall below);
    # back to the minimum after.
    arrivals = simulation.arrivals_per_minute
    last_high = max(m for m in range(start, end) if arrivals[m] / capacity[m] >= 0.9 * demand.target)
    first_drop = next(m for m in range(last_high + 1, len(capacity)) if capacity[m] < capacity[m - 1])
    assert first_drop - last_high >= 15
    assert capacity[end + 60] == 5


def test_the_seeds_step_rules_overshoot_where_target_tracking_follows_the_load() -> None:
    tracked, stepped = _surge("template"), _surge("seed-steps")
    start, end = MONDAY_11 // 60, (MONDAY_11 + 1800) // 60
    tracked_peak = max(tracked.capacity["BrainPlanFunction"][start:end])
    stepped_series = stepped.capacity["BrainPlanFunction"]
    # +100 % every 3 minutes from 5 reaches the maximum of 100, 3 to 4 times the load's need,
    # and -25 % every 3 minutes keeps instances long after the surge.
    assert max(stepped_series[start:end]) == 100 and tracked_peak < 50
    assert stepped_series[end + 20] > tracked.capacity["BrainPlanFunction"][end + 20]
    assert stepped.provisioned_gb_seconds > tracked.provisioned_gb_seconds


def test_at_50000_the_model_quota_saturates_first_and_the_recommended_units_remove_it() -> None:
    from panelbrain.ops.capacity import recommended_tpm_quota

    # GIVEN the default quotas, WHEN a day at 50,000 runs on demand, THEN the brain's model quota
    # throttles first, and the calls that cannot be admitted within the SDK's retries fail their
    # queries (the state machine retries once, then gives up).
    on_demand = Simulation(SimConfig(50_000, days=0.75)).run()
    assert on_demand["saturated_first"].startswith("bedrock.cross_region_tpm.sonnet")
    assert on_demand["failed_fraction"] > 0.5
    config = SimConfig(50_000, days=0.75)
    config.tpm_quota = recommended_tpm_quota(50_000)
    assert config.tpm_quota == {"sonnet": 700_000.0, "haiku": 800_000.0}
    provisioned = Simulation(config).run()
    assert provisioned["throttles"] == 0 and provisioned["saturated_first"] == "nothing"
    assert provisioned["failed_queries"] == 0 and provisioned["p95_s"] < 60


def test_reviews_and_cost_of_the_period_are_reported() -> None:
    result = Simulation(SimConfig(2_000, days=0.5)).run()
    assert 0.05 < result["reviewed_queries"] / result["queries"] < 0.15  # review fraction 10 %
    assert result["reviewed_p50_s"] > result["p95_s"]  # a person is slower than the pipeline
    assert result["cost_usd"] > 0
    assert Simulation(SimConfig(4_000, days=0.5)).run()["cost_usd"] > result["cost_usd"]


def test_an_unknown_scaling_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="scaling must be one of template, seed-steps, none"):
        Simulation(SimConfig(100, scaling="seed"))
