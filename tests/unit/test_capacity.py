"""Capacity planning against the seed's own figures (section 4.2) and the pipeline's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panelbrain.ops.capacity import ANSWERED_PATH_STATES, plan, recommendation
from tests.agents import AGENTS

ROOT = Path(__file__).parent.parent.parent


def test_seed_figures_at_5000_queries_a_day() -> None:
    p = plan(5_000)
    assert p["tokens_per_query"]["value"] == 10_400
    assert p["tokens_per_day"]["value"] == 52_000_000
    assert round(p["tokens_per_hour"]["value"], -3) == 2_167_000
    assert round(p["tokens_per_minute_average"]["value"], -2) == 36_100
    assert round(p["tokens_per_minute_peak"]["value"], -2) == 144_400
    assert {m: f["model_units"]["value"] for m, f in p["models"].items()} == {"sonnet": 1, "haiku": 1}
    assert p["recommendation"] == "provisioned throughput"


def test_every_figure_states_its_formula() -> None:
    p = plan(5_000)
    assert all("formula" in p[k] for k in ("tokens_per_query", "tokens_per_day", "tokens_per_minute_peak"))
    assert all("formula" in f for f in p["lambda_concurrency_at_peak"].values())


@pytest.mark.parametrize(
    ("queries", "expected"),
    [
        (50, "on-demand"),
        (5_000, "provisioned throughput"),
        (50_000, "provisioned throughput + cross-region inference"),
    ],
)
def test_recommendation_follows_the_seed_thresholds(queries: int, expected: str) -> None:
    assert recommendation(queries) == expected


def test_model_units_grow_with_volume() -> None:
    assert plan(50_000)["models"]["sonnet"]["model_units"]["value"] == 7  # 694,444 tokens/min at peak


def test_answered_path_matches_the_state_machine() -> None:
    # LoadSettings, BrainPlan, Workers, 3 x (Need*, worker), BrainSynthesise, Compact,
    # ConfidenceCheck, Formatter, PersistAnswered: count them from the ASL itself.
    definition = json.loads((ROOT / "statemachines" / "query_pipeline.asl.json").read_text())
    top = [
        "LoadSettings",
        "BrainPlan",
        "Workers",
        "BrainSynthesise",
        "Compact",
        "ConfidenceCheck",
        "Formatter",
        "PersistAnswered",
    ]
    branches = definition["States"]["Workers"]["Branches"]
    per_branch = [len([s for s in b["States"] if not s.startswith("Skip")]) for b in branches]
    assert all(name in definition["States"] for name in top)
    assert len(top) + sum(per_branch) == ANSWERED_PATH_STATES


def test_measured_profile_sizes_the_calls_this_repository_makes() -> None:
    from panelbrain.agents.bedrock import SYSTEM, dictionary_prompt
    from panelbrain.data.dictionary import load_dictionary
    from panelbrain.ops.capacity import CHARS_PER_TOKEN, measured_profile

    brain, workers = measured_profile()
    assert (brain.model, brain.calls, workers.model, workers.calls) == ("sonnet", 2, "haiku", 1)
    # The planning prompt (system text + data dictionary) alone is most of a brain call.
    prompt = (len(SYSTEM) + len(dictionary_prompt(load_dictionary("ces11")))) / CHARS_PER_TOKEN
    assert brain.tokens_per_call * 2 > prompt
    measured = plan(5_000, profile=measured_profile())["tokens_per_query"]["value"]
    assert measured < plan(5_000)["tokens_per_query"]["value"]  # 3 calls, not the seed's 5


def test_seed_claim_parallel_workers() -> None:
    # Seed 2.3: 31 s sequential, 23 s with the workers in parallel. The critical path is 23 s;
    # the sequential sum of every agent is 39 s (the seed's 31 s leaves the data processor out).
    from panelbrain.agents.latency import SEED_LATENCY_S
    from panelbrain.bench.pipeline import critical_path_s, sequential_s

    assert critical_path_s(1.0) == 23.0
    assert sequential_s(1.0) == 39.0
    assert sequential_s(1.0) - SEED_LATENCY_S["data_processor"] == 31.0


def test_scaling_parameters_come_from_the_template() -> None:
    from panelbrain.ops.template_scaling import scaling

    agents = scaling(ROOT / "template.yaml").agents
    assert set(agents) == set(AGENTS)
    plan_fn, sql = agents["BrainPlanFunction"], agents["SqlWriterFunction"]
    assert plan_fn.minimum_by_action() == {"business-hours": 5, "off-hours": 2, "weekends": 1}
    assert (sql.minimum_by_action()["business-hours"], sql.memory_gb, sql.max_capacity) == (10, 0.25, 100)
    for agent in agents.values():
        utilisation, demand = agent.policy("utilisation"), agent.policy("demand")
        assert utilisation is not None and utilisation.target == 0.7
        # Queries a minute one instance serves at 70 % busy.
        assert demand is not None and agent.seed_duration_s is not None
        assert demand.target == pytest.approx(0.7 * 60 / agent.seed_duration_s)
        assert (demand.scale_out_cooldown_s, demand.scale_in_cooldown_s) == (180, 600)


def test_the_schedule_sets_minimums_the_way_application_auto_scaling_does() -> None:
    # A scheduled action holds until the next one fires: Monday before 09:00 is still the
    # weekend's minimum (the off-hours action runs only on weekday evenings).
    from panelbrain.ops.template_scaling import scaling

    agent = scaling(ROOT / "template.yaml").agents["BrainPlanFunction"]
    monday = {hour: agent.bounds_at(hour * 3600)[0] for hour in (0, 8.99, 9, 17.99, 18, 23)}
    assert monday == {0: 1, 8.99: 1, 9: 5, 17.99: 5, 18: 2, 23: 2}
    friday_evening, saturday = agent.bounds_at((4 * 24 + 20) * 3600), agent.bounds_at((5 * 24 + 12) * 3600)
    assert (friday_evening[0], saturday[0]) == (2, 1)


def test_a_step_scaling_policy_on_lambda_is_refused_as_aws_refuses_it(tmp_path: Path) -> None:
    from panelbrain.ops.template_scaling import TemplateScalingError, scaling

    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    policy = "      PolicyName: !Sub ${AWS::StackName}-BrainPlanFunction-demand\n      PolicyType: "
    broken = text.replace(policy + "TargetTrackingScaling", policy + "StepScaling")
    assert broken != text
    (tmp_path / "template.yaml").write_text(broken, encoding="utf-8")
    with pytest.raises(TemplateScalingError, match="BrainPlanFunctionDemand: PolicyType 'StepScaling'"):
        scaling(tmp_path / "template.yaml")


def test_provisioned_concurrency_at_peak_follows_target_tracking() -> None:
    # At 5,000 a day the busiest minute (13.9 queries) needs fewer instances than the
    # business-hours minimum; at 50,000 (139 a minute) the Demand policies set the count:
    # ceil(139 / 8.4) = 17 for the brain, ceil(139 / 4.2) = 34 for the SQL writer.
    low = plan(5_000)["provisioned_concurrency_at_peak"]
    high = plan(50_000)["provisioned_concurrency_at_peak"]
    assert {name: f["value"] for name, f in low.items()} == {
        name: f["inputs"]["schedule_minimum"] for name, f in low.items()
    }
    assert high["BrainPlanFunction"]["value"] == 17
    assert high["SqlWriterFunction"]["value"] == 34
    assert high["FormatterFunction"]["value"] == 10  # ceil(139 / 14) = 10, the minimum anyway
    assert all("formula" in f for f in high.values())
