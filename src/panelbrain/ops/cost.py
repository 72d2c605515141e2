"""Monthly cost of the stack, line by line, each line derived from a formula and its inputs.

Lines are the spend with prompt caching (Bedrock per model and token kind: input, output, cache
reads, cache writes) and every other component as if every query ran and provisioned
concurrency stayed all week at the most the deployed scaling reaches; then the result cache's
savings and those of the schedule and target tracking (a week of them, minute by minute:
:func:`panelbrain.ops.tracking.tracked_week`) as negative lines. The total is the sum of the
counted lines; the prompt-caching saving is a memo line, because the Bedrock lines already
carry it. A saving is computed from the very spend it
reduces, so it can never exceed it (the seed's table listed USD 10,000 of caching savings
against USD 4,000 of spend).
Assumptions not in the seed are named in :class:`Assumptions` and printed with the table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from panelbrain.agents.latency import SEED_LATENCY_S
from panelbrain.ops.capacity import (
    ANSWERED_PATH_STATES,
    FUNCTIONS,
    OTHER_FUNCTIONS_PER_QUERY,
    OUTPUT_SHARE,
    READ_UNITS_PER_QUERY,
    REVIEW_FRACTION,
    REVIEW_TRANSITIONS,
    SEED_PROFILE,
    STATUS_POLLS_PER_QUERY,
    WRITE_UNITS_PER_QUERY,
    CallProfile,
)
from panelbrain.ops.template_scaling import scaling
from panelbrain.ops.tracking import tracked_week
from panelbrain.pricing import cost_usd

BRAIN_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
WORKER_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
# Smallest prefix Bedrock will cache (tokens): FACTS.md, langchain-aws 1.9.1 notes.
MIN_CACHEABLE = {"sonnet": 1_024, "haiku": 4_096}


@dataclass(frozen=True)
class Assumptions:
    days_per_month: float = 30.4
    output_share: float = OUTPUT_SHARE  # of each call's tokens
    cacheable_share: float = 0.75  # of each call's input: the system prompt + data dictionary
    cache_ttl_minutes: float = 5.0
    result_cache_hit_rate: float = 0.25  # seed 6.3
    review_fraction: float = REVIEW_FRACTION
    review_transitions: int = REVIEW_TRANSITIONS
    status_polls_per_query: int = STATUS_POLLS_PER_QUERY
    log_kb_per_query: float = 20.0
    write_units_per_query: int = WRITE_UNITS_PER_QUERY  # query record writes (~1 KB each) + an ~8 KB answer
    read_units_per_query: int = READ_UNITS_PER_QUERY
    alarm_metrics: int | None = None  # None: counted from template.yaml, target tracking's included
    custom_metrics: int = 2
    peak_factor: float = 4.0  # busiest minute over the day's average minute (shapes the tracking)


@cache
def _tracked_week(function: str, queries_per_day: float, peak_factor: float) -> tuple[int, ...]:
    agent = FUNCTIONS[function]
    return tuple(
        tracked_week(
            scaling().agents[function], queries_per_day, SEED_LATENCY_S[agent], peak_factor=peak_factor
        )
    )


@cache
def aws_prices() -> dict[str, Any]:
    text = (resources.files("panelbrain.pricing") / "aws_prices.yaml").read_text(encoding="utf-8")
    prices: dict[str, Any] = yaml.safe_load(text)
    return prices


def _line(name: str, usd: float, formula: str, counted: bool = True, **inputs: Any) -> dict[str, Any]:
    """One line; ``counted`` False marks a memo line, shown but already inside other lines."""
    return {"line": name, "usd": usd, "formula": formula, "counted": counted, "inputs": inputs}


def _bedrock(profile: tuple[CallProfile, ...], queries: float, a: Assumptions) -> dict[str, dict[str, float]]:
    """Per model and token kind: spend with prompt caching for ``queries`` a month, and the
    spend the same calls would cost without it."""
    out: dict[str, dict[str, float]] = {}
    windows = a.days_per_month * 24 * 60 / a.cache_ttl_minutes
    for p in profile:
        model_id = BRAIN_MODEL if p.model == "sonnet" else WORKER_MODEL
        calls = queries * p.calls
        input_tokens = p.tokens_per_call * (1 - a.output_share)
        output_tokens = p.tokens_per_call * a.output_share
        prefix = input_tokens * a.cacheable_share
        prefix = prefix if prefix >= MIN_CACHEABLE[p.model] else 0.0
        writes = min(calls, windows) if prefix else 0.0  # one write per cache lifetime
        reads = calls - writes if prefix else 0.0
        slot = out.setdefault(
            p.model,
            {
                "input": 0.0,
                "output": 0.0,
                "cache_read": 0.0,
                "cache_write": 0.0,
                "without_cache": 0.0,
                "cached_tokens_per_call": prefix,
            },
        )
        slot["input"] += cost_usd(model_id, int(calls * (input_tokens - prefix)), 0, 0, 0)
        slot["output"] += cost_usd(model_id, 0, int(calls * output_tokens), 0, 0)
        slot["cache_read"] += cost_usd(model_id, 0, 0, int(reads * prefix), 0)
        slot["cache_write"] += cost_usd(model_id, 0, 0, 0, int(writes * prefix))
        slot["without_cache"] += cost_usd(
            model_id, int(calls * input_tokens), int(calls * output_tokens), 0, 0
        )
    return out


def monthly_cost(
    queries_per_day: float, a: Assumptions | None = None, profile: tuple[CallProfile, ...] = SEED_PROFILE
) -> dict[str, Any]:
    a = a or Assumptions()
    aws = aws_prices()
    queries = queries_per_day * a.days_per_month
    lines: list[dict[str, Any]] = []

    bedrock = _bedrock(profile, queries, a)
    kinds = {"input": "input", "output": "output", "cache_read": "cache reads", "cache_write": "cache writes"}
    for model, spend in bedrock.items():
        for kind, label in kinds.items():
            lines.append(
                _line(
                    f"Bedrock {model}: {label}",
                    spend[kind],
                    "queries * calls * tokens of this kind * price",
                    queries=queries,
                    cached_tokens_per_call=spend["cached_tokens_per_call"],
                )
            )
    with_cache = sum(spend[kind] for spend in bedrock.values() for kind in kinds)
    without_cache = sum(spend["without_cache"] for spend in bedrock.values())
    lines.append(
        _line(
            "Prompt-caching savings (memo: already in the Bedrock lines)",
            with_cache - without_cache,
            "Bedrock with caching - the same calls without; positive = caching costs more",
            counted=False,
        )
    )

    lam = aws["lambda"]
    # Each agent's memory as template.yaml deploys it (MemorySize, else the Globals').
    agents = scaling().agents
    agent_gb_s = sum(
        SEED_LATENCY_S[agent] * agents[function].memory_gb for function, agent in FUNCTIONS.items()
    )
    lambda_requests = (
        queries * (len(FUNCTIONS) + OTHER_FUNCTIONS_PER_QUERY) / 1e6 * lam["per_million_requests"]
    )
    lambda_duration = queries * (agent_gb_s + OTHER_FUNCTIONS_PER_QUERY * 0.1 * 0.25) * lam["per_gb_second"]
    lines.append(
        _line(
            "Lambda requests",
            lambda_requests,
            "queries * invocations per query * price",
            invocations=len(FUNCTIONS) + OTHER_FUNCTIONS_PER_QUERY,
        )
    )
    lines.append(
        _line(
            "Lambda duration",
            lambda_duration,
            "queries * sum(seconds * GB) * price",
            gb_seconds_per_query=agent_gb_s,
        )
    )

    sfn = aws["step_functions"]
    pipeline_seconds = sum(SEED_LATENCY_S.values())
    express = queries * (
        sfn["express_per_million_requests"] / 1e6
        + pipeline_seconds * sfn["express_memory_gb"] * sfn["express_per_gb_second"]
    )
    standard = (
        queries * a.review_fraction * a.review_transitions * sfn["standard_per_thousand_transitions"] / 1e3
    )
    lines.append(
        _line(
            "Step Functions Express (pipeline)",
            express,
            "queries * (request + seconds * GB * price)",
            transitions_per_query=ANSWERED_PATH_STATES,
            seconds=pipeline_seconds,
        )
    )
    lines.append(
        _line(
            "Step Functions Standard (reviews)",
            standard,
            "queries * review_fraction * transitions * price",
            review_fraction=a.review_fraction,
        )
    )

    # Provisioned concurrency as deployed: each agent's schedule and target tracking over a week.
    weeks = a.days_per_month / 7
    gb_hours_tracked = gb_hours_peak = 0.0
    peak_instances: dict[str, int] = {}
    for name in FUNCTIONS:
        week = _tracked_week(name, queries_per_day, a.peak_factor)
        gb = agents[name].memory_gb
        peak_instances[name] = max(week)
        gb_hours_tracked += sum(week) / 60 * gb * weeks
        gb_hours_peak += max(week) * 168 * gb * weeks
    per_gb_hour = lam["provisioned_per_gb_second"] * 3600
    lines.append(
        _line(
            "Provisioned concurrency (always on at its peak)",
            gb_hours_peak * per_gb_hour,
            "sum(most instances in the week * GB) * 168 h/week * price",
            gb_hours=gb_hours_peak,
            peak_instances=peak_instances,
        )
    )

    lines.append(
        _line("SQS", queries * 3 / 1e6 * aws["sqs"]["per_million_requests"], "queries * 3 requests * price")
    )
    ddb = aws["dynamodb"]
    lines.append(
        _line(
            "DynamoDB",
            queries
            * (
                a.write_units_per_query * ddb["per_million_write_units"]
                + a.read_units_per_query * ddb["per_million_read_units"]
            )
            / 1e6,
            "queries * (write units * price + read units * price)",
        )
    )
    lines.append(
        _line(
            "S3 (claim checks)",
            queries * 0.01 * (aws["s3"]["per_thousand_puts"] + aws["s3"]["per_thousand_gets"]) / 1e3,
            "1 % of queries offload one payload: a put and a get",
        )
    )
    lines.append(
        _line(
            "API Gateway",
            queries * (1 + a.status_polls_per_query) / 1e6 * aws["api_gateway"]["rest_per_million_requests"],
            "queries * (POST + polls) * price",
        )
    )
    cw = aws["cloudwatch"]
    alarm_metrics = a.alarm_metrics if a.alarm_metrics is not None else scaling().alarm_metrics
    lines.append(
        _line(
            "CloudWatch",
            a.custom_metrics * cw["per_custom_metric_month"]
            + alarm_metrics * cw["per_alarm_month"]
            + cw["per_dashboard_month"]
            + queries * a.log_kb_per_query / 1e6 * cw["logs_ingest_per_gb"],
            "metrics + alarm metrics + dashboard + log ingestion",
            alarm_metrics=alarm_metrics,
        )
    )

    # Savings, each from the spend it reduces.
    variable = with_cache + lambda_requests + lambda_duration + express
    result_saving = a.result_cache_hit_rate * variable
    schedule_saving = (gb_hours_peak - gb_hours_tracked) * per_gb_hour
    lines.append(
        _line(
            "Result-cache savings",
            -result_saving,
            "hit_rate * (Bedrock + Lambda + Express) of the queries it answers",
            hit_rate=a.result_cache_hit_rate,
        )
    )
    lines.append(
        _line(
            "Provisioned-concurrency savings (schedule + target tracking)",
            -schedule_saving,
            "(always-on GB-hours - GB-hours the schedule and target tracking provision) * price",
            tracked_gb_hours=gb_hours_tracked,
        )
    )
    return {
        "queries_per_day": queries_per_day,
        "lines": lines,
        "total_usd": math.fsum(line["usd"] for line in lines if line["counted"]),
        "assumptions": {**asdict(a), "alarm_metrics": alarm_metrics},
        "prices_as_of": aws["as_of"],
    }


def split_cost(
    queries_per_day: float,
    regions: int,
    a: Assumptions | None = None,
    profile: tuple[CallProfile, ...] = SEED_PROFILE,
    model_unit_hour: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A month of the load spread evenly over ``regions`` active regions: each region's stack
    at its share (so schedules, target tracking and provisioned concurrency per region), plus
    what the split adds: the global table's replicated writes and their transfer between
    regions, and Bedrock provisioned throughput bought per region (model units round up in each).

    Provisioned throughput is priced where ``model_unit_hour`` (or aws_prices.yaml) gives a
    price per model unit and hour; that model's token lines then become memo lines, since its
    calls are billed by the unit. Without a price its line is a memo of the unit-hours."""
    from panelbrain.ops.capacity import plan

    a = a or Assumptions()
    aws = aws_prices()
    share = monthly_cost(queries_per_day / regions, a, profile)
    prices: dict[str, float] = {m: float(p) for m, p in aws["bedrock_provisioned"].items() if p is not None}
    prices.update(model_unit_hour or {})
    lines: list[dict[str, Any]] = []
    by_the_unit = 0.0  # token spend now billed by provisioned throughput instead
    for line in share["lines"]:
        model = next((m for m in prices if line["line"].startswith(f"Bedrock {m}:")), None)
        counted = line["counted"] and model is None
        if model is not None and line["counted"]:
            by_the_unit += line["usd"] * regions
        label = line["line"] + (" (memo: billed by provisioned throughput)" if model else "")
        inputs = {**line["inputs"], "regions": regions}
        lines.append(
            {**line, "line": label, "usd": line["usd"] * regions, "counted": counted, "inputs": inputs}
        )
    # A cached answer saves the tokens it would have cost, but not the hours of a model unit.
    for line in lines:
        if line["line"] == "Result-cache savings" and by_the_unit:
            line["usd"] += a.result_cache_hit_rate * by_the_unit
            line["inputs"] = {**line["inputs"], "excluded_provisioned_token_spend": by_the_unit}
    units = plan(queries_per_day / regions, peak_factor=a.peak_factor, profile=profile)["models"]
    for model, figures in units.items():
        per_region = figures["model_units"]["value"]
        unit_hours = per_region * regions * 24 * a.days_per_month  # billed every hour, used or not
        price = prices.get(model)
        lines.append(
            _line(
                f"Bedrock {model}: provisioned throughput, {per_region} units x {regions} region(s)"
                + ("" if price is not None else " (memo: price on quote)"),
                unit_hours * price if price is not None else 0.0,
                "units per region * regions * hours a month * price per unit-hour",
                counted=price is not None,
                units_per_region=per_region,
                unit_hours=unit_hours,
                price_per_unit_hour=price,
            )
        )
    queries = queries_per_day * a.days_per_month
    other_replicas = regions - 1
    lines.append(
        _line(
            "DynamoDB replicated writes (global table)",
            queries
            * a.write_units_per_query
            * other_replicas
            / 1e6
            * aws["dynamodb"]["per_million_replicated_write_units"],
            "queries * write units a query * other replicas * price",
            other_replicas=other_replicas,
        )
    )
    gigabytes = queries * a.write_units_per_query * other_replicas / 1024**2  # a write unit is 1 KB
    lines.append(
        _line(
            "Data transfer between regions (replication)",
            gigabytes * aws["data_transfer"]["inter_region_per_gb"],
            "queries * KB written a query * other replicas / 1024^2 * price per GB",
            gigabytes=gigabytes,
        )
    )
    return {
        "queries_per_day": queries_per_day,
        "regions": regions,
        "lines": lines,
        "total_usd": math.fsum(line["usd"] for line in lines if line["counted"]),
        "assumptions": share["assumptions"],
        "prices_as_of": share["prices_as_of"],
    }
