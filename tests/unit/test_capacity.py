"""Capacity planning against the seed's own figures (section 4.2) and the pipeline's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panelbrain.ops.capacity import ANSWERED_PATH_STATES, plan, recommendation

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

    rules = scaling(ROOT / "template.yaml")
    assert rules.provisioned["BrainPlanFunction"] == (5, 2, 1, 0.5)
    assert rules.provisioned["SqlWriterFunction"] == (10, 2, 1, 0.25)
    assert (rules.scale_up_per_minute, rules.surge_per_minute, rules.scale_down_per_minute) == (50, 100, 20)
