"""Account quotas: the dated table and its sources, what `capacity` asks to raise (or the regions it
needs), and that the simulator, given those increases, no longer saturates."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from panelbrain.errors import BadInputError
from panelbrain.ops.capacity import (
    quota_checks,
    quota_tokens_per_call,
    regional_plan,
    request_value,
    requested_quotas,
)
from panelbrain.ops.cost import split_cost
from panelbrain.ops.simulate import SimConfig, Simulation
from panelbrain.pricing.quotas import Quota, QuotaSet, load_quota_file, quota_table

# -- the table ----------------------------------------------------------------------------------


def test_every_quota_and_rule_carries_its_aws_source_and_the_day_it_was_checked() -> None:
    table = quota_table()
    assert len(table.quotas) >= 15
    for entry in (*table.quotas, *table.rules):
        assert entry.source.startswith("https://docs.aws.amazon.com/"), entry.id
        assert date(2026, 1, 1) <= entry.checked <= table.as_of, entry.id
        assert entry.basis in ("documented", "assumed"), entry.id
    # A value the source does not state is marked as a planning figure, with a note saying so.
    for quota in table.quotas:
        if quota.basis == "assumed":
            assert quota.note, quota.id
    # Every service the pipeline meets is covered.
    assert {q.service for q in table.quotas} == {
        "lambda",
        "stepfunctions",
        "bedrock",
        "sqs",
        "dynamodb",
        "apigateway",
    }


def test_a_quota_without_an_aws_source_is_refused() -> None:
    row: dict[str, Any] = quota_table().get("lambda.concurrent_executions").model_dump()
    row.pop("source")
    with pytest.raises(ValidationError, match="source"):
        Quota.model_validate(row)
    with pytest.raises(ValidationError, match="AWS documentation page"):
        Quota.model_validate({**row, "source": "https://example.com/limits"})


def test_defaults_differ_by_region_where_aws_says_so() -> None:
    assert QuotaSet.defaults("us-east-1").value("stepfunctions.standard_start_execution.rate") == 300
    assert QuotaSet.defaults("us-east-2").value("stepfunctions.standard_start_execution.rate") == 150
    assert QuotaSet.defaults("af-south-1").value("apigateway.account_rps") == 2_500
    assert QuotaSet.defaults("us-west-2").value("apigateway.account_rps") == 10_000


def test_a_quota_file_overrides_per_region_and_names_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "account.yaml"
    path.write_text(
        "lambda.concurrent_executions: 3000\nbedrock.cross_region_tpm.sonnet: {us-west-2: 9000000}\n"
    )
    east, west = load_quota_file(path, "us-east-1"), load_quota_file(path, "us-west-2")
    assert east.value("lambda.concurrent_executions") == west.value("lambda.concurrent_executions") == 3000
    assert east.value("bedrock.cross_region_tpm.sonnet") == 200_000  # not named for us-east-1
    assert west.value("bedrock.cross_region_tpm.sonnet") == 9_000_000
    path.write_text("lambda.concurency: 3000\n")
    with pytest.raises(BadInputError, match=r"unknown quota 'lambda\.concurency'"):
        load_quota_file(path)
    path.write_text("lambda.concurrent_executions: lots\n")
    with pytest.raises(BadInputError, match="'lots' is not a positive number"):
        load_quota_file(path)


# -- capacity against the quotas -----------------------------------------------------------------


def test_output_tokens_burn_the_tokens_a_minute_quota_five_times() -> None:
    # 2,500 tokens: 2,000 in and 500 out; the quota sees 2,000 + 5 * 500.
    assert quota_tokens_per_call(2_500, 5.0) == pytest.approx(4_500)
    assert request_value(1_385) == 1_400 and request_value(15_000_000) == 15_000_000
    assert request_value(16_200_001) == 17_000_000


def test_at_5000_a_day_the_default_quotas_hold() -> None:
    regional = regional_plan(5_000)
    assert regional["requests"] == [] and regional["regions_needed"] == 1


def test_at_500000_a_day_capacity_asks_for_lambda_and_bedrock_increases_in_the_region() -> None:
    regional = regional_plan(500_000)
    asked = {(r["quota"], r["region"]): r["to"] for r in regional["requests"]}
    assert asked[("lambda.concurrent_executions", "us-east-1")] == 1_400
    assert asked[("bedrock.cross_region_tpm.sonnet", "us-east-1")] == 15_000_000
    assert ("bedrock.cross_region_tpm.haiku", "us-east-1") in asked
    # Step Functions, SQS, DynamoDB and API Gateway defaults hold at this volume.
    assert {q.split(".")[0] for q, _ in asked} == {"lambda", "bedrock"}
    assert requested_quotas(regional)["lambda.concurrent_executions"] == {"us-east-1": 1_400}


def test_two_regions_halve_each_regions_needs_but_not_the_global_tables_writes() -> None:
    one, two = regional_plan(500_000, 1), regional_plan(500_000, 2)
    assert two["regions"] == ["us-east-1", "us-west-2"]
    by_quota = {
        region: {c["quota"]: c["needed"] for c in figures["checks"]}
        for region, figures in two["per_region"].items()
    }
    single = {c["quota"]: c["needed"] for c in one["per_region"]["us-east-1"]["checks"]}
    for region in two["regions"]:
        assert by_quota[region]["bedrock.cross_region_tpm.sonnet"] == pytest.approx(
            single["bedrock.cross_region_tpm.sonnet"] / 2
        )
        # Each replica of the global table writes every region's items.
        assert by_quota[region]["dynamodb.on_demand_table_writes"] == pytest.approx(
            single["dynamodb.on_demand_table_writes"]
        )
    # Split over two regions, each region's Lambda concurrency fits the default quota.
    assert "lambda.concurrent_executions" not in {r["quota"] for r in two["requests"]}


def test_a_quota_that_cannot_be_raised_asks_for_more_regions() -> None:
    # GIVEN an account whose per-function scaling rate were 100 (it cannot be raised),
    # WHEN 500,000 a day are planned in one region, THEN the plan asks for enough regions.
    tight = {"us-east-1": QuotaSet("us-east-1", {"lambda.scaling_rate": 100})}
    regional = regional_plan(500_000, 1, quotas=tight)
    needed = {c["quota"]: c["needed"] for c in regional["per_region"]["us-east-1"]["checks"]}
    assert regional["regions_needed"] == -(-needed["lambda.scaling_rate"] // 100)
    assert "lambda.scaling_rate" not in {r["quota"] for r in regional["requests"]}


def test_provisioned_concurrency_counts_against_the_account_with_the_unreserved_minimum() -> None:
    checks = {c["quota"]: c for c in quota_checks(50_000, QuotaSet.defaults())}
    concurrency = checks["lambda.concurrent_executions"]
    assert concurrency["needed"] >= concurrency["inputs"]["provisioned"] + 100
    assert concurrency["inputs"]["unreserved_minimum"] == 100


def test_the_split_is_priced_with_replication_and_units_per_region() -> None:
    one, two = split_cost(500_000, 1), split_cost(500_000, 2)
    lines = {line["line"]: line for line in two["lines"]}
    assert lines["DynamoDB replicated writes (global table)"]["usd"] > 0
    assert lines["Data transfer between regions (replication)"]["usd"] > 0
    assert {line["line"]: line for line in one["lines"]}["DynamoDB replicated writes (global table)"][
        "usd"
    ] == 0
    assert two["total_usd"] > one["total_usd"]
    # Model units round up in each region; priced only once a quote is given, replacing tokens.
    priced = split_cost(500_000, 2, model_unit_hour={"sonnet": 50.0})
    units = next(line for line in priced["lines"] if line["line"].startswith("Bedrock sonnet: provisioned"))
    assert units["counted"] and units["usd"] == pytest.approx(35 * 2 * 24 * 30.4 * 50.0)
    tokens = [line for line in priced["lines"] if line["line"].startswith("Bedrock sonnet: input")]
    assert tokens and not tokens[0]["counted"]

    # A cached answer saves tokens, not model-unit hours: the result cache's saving shrinks.
    def cache_saving(column: dict[str, Any]) -> float:
        return float(next(line["usd"] for line in column["lines"] if line["line"] == "Result-cache savings"))

    both = split_cost(500_000, 2, model_unit_hour={"sonnet": 50.0, "haiku": 20.0})
    assert cache_saving(two) < cache_saving(priced) < cache_saving(both) < 0
    assert -cache_saving(both) < 0.01 * -cache_saving(two)


# -- the simulator held to the quotas, and capacity's increases fed back -------------------------


def _simulate(quotas: QuotaSet) -> dict[str, Any]:
    return Simulation(SimConfig(50_000, days=0.6, quotas=quotas)).run()


def test_capacitys_increases_fed_back_into_simulate_remove_the_saturation_it_reported() -> None:
    # GIVEN an account with 150 concurrent Lambda executions, its Sonnet quota raised to 1,000,000
    # tokens a minute and the other Bedrock quotas at their defaults,
    account = QuotaSet(
        "us-east-1",
        {"lambda.concurrent_executions": 150, "bedrock.cross_region_tpm.sonnet": 1_000_000},
        label="account",
    )
    before = _simulate(account)
    # THEN a day to 14:24 at 50,000 a day is throttled by Lambda and by Bedrock, queries fail,
    # and the quota that saturated first is named.
    assert before["throttles_by_quota"].get("lambda.concurrent_executions", 0) > 0
    assert before["throttles_by_quota"].get("bedrock.cross_region_tpm.haiku", 0) > 0
    assert before["failed_queries"] > 0
    saturated = before["saturated_first"].split(" ")[0]
    assert saturated in before["throttles_by_quota"]
    # WHEN capacity plans that volume against the same account,
    regional = regional_plan(50_000, quotas={"us-east-1": account})
    increases = {q: by_region["us-east-1"] for q, by_region in requested_quotas(regional).items()}
    assert {"lambda.concurrent_executions", "bedrock.cross_region_tpm.haiku"} <= set(increases)
    # THEN with its increases the simulator throttles nothing and fails nothing,
    after = _simulate(QuotaSet("us-east-1", {**account.changed(), **increases}, label="requested"))
    assert after["throttles"] == 0 and after["throttles_by_quota"] == {}
    assert after["failed_queries"] == 0 and after["saturated_first"] == "nothing"
    # and the latency is the unthrottled pipeline's: p95 within 10 % of a day at 5,000.
    small = Simulation(SimConfig(5_000)).run()
    assert after["p95_s"] == pytest.approx(small["p95_s"], rel=0.10)


def test_provisioned_concurrency_never_takes_the_unreserved_minimum() -> None:
    # GIVEN 150 concurrent executions, the schedules' business-hours minimums (40) fit but the
    # demand policies at 50,000 a day would take more: they are held at 150 - 100.
    simulation = Simulation(
        SimConfig(50_000, days=0.6, quotas=QuotaSet("us-east-1", {"lambda.concurrent_executions": 150}))
    )
    result = simulation.run()
    assert max(simulation.series["provisioned"]) <= 50
    assert result["throttles_by_quota"].get("lambda.unreserved_minimum", 0) > 0


def test_a_function_scaled_faster_than_its_rate_is_throttled() -> None:
    # GIVEN no provisioned concurrency and a scaling rate of 20 new instances every 10 s,
    # WHEN 600 extra questions a minute arrive at 11:00, THEN cold starts past the rate are
    # throttled (and, with the default 1,000, the same surge is not).
    surge = ((11 * 3600.0, 11 * 3600.0 + 600, 600.0),)

    def run(rate: float) -> dict[str, Any]:
        quotas = QuotaSet("us-east-1", {"lambda.scaling_rate": rate})
        config = SimConfig(500, days=0.5, scaling="none", surges=surge, quotas=quotas)
        config.tpm_quota = {"sonnet": 1e12, "haiku": 1e12}
        return Simulation(config).run()

    assert run(20)["throttles_by_quota"].get("lambda.scaling_rate", 0) > 0
    assert "lambda.scaling_rate" not in run(1_000)["throttles_by_quota"]


def test_reviews_wait_for_the_standard_workflows_start_quota() -> None:
    # GIVEN one Standard execution start every 5 minutes, WHEN reviews start, THEN they queue
    # for it, and the answers that need no review are not held up.
    slow = QuotaSet(
        "us-east-1",
        {
            "stepfunctions.standard_start_execution.rate": 1 / 300,
            "stepfunctions.standard_start_execution.bucket": 1,
        },
    )
    throttled = Simulation(SimConfig(5_000, days=0.5, quotas=slow)).run()
    default = Simulation(SimConfig(5_000, days=0.5)).run()
    assert throttled["throttles_by_quota"].get("stepfunctions.standard_start_execution.rate", 0) > 0
    assert throttled["reviewed_p50_s"] > 1.5 * default["reviewed_p50_s"]
    assert throttled["p95_s"] == pytest.approx(default["p95_s"], rel=0.05)
