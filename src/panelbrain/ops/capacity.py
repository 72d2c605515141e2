"""Capacity planning: tokens, model units, Lambda concurrency and Step Functions load.

Every figure carries the formula that produced it and its inputs, so an operator can check the
arithmetic. The default profile is the seed document's (section 4.2): the brain makes 2 calls of
2,500 tokens on a Sonnet-class model, the workers 3 calls of 1,800 tokens on a Haiku-class one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from panelbrain.agents.latency import SEED_LATENCY_S

if TYPE_CHECKING:
    from panelbrain.pricing.quotas import QuotaSet

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class CallProfile:
    role: str
    model: str
    calls: int
    tokens_per_call: int

    @property
    def tokens(self) -> int:
        return self.calls * self.tokens_per_call


SEED_PROFILE = (
    CallProfile("brain", "sonnet", calls=2, tokens_per_call=2_500),
    CallProfile("workers", "haiku", calls=3, tokens_per_call=1_800),
)
# Characters per token when no tokenizer is at hand (English prose and JSON average about 4).
CHARS_PER_TOKEN = 4.0
# Output tokens of each call, and the answer table's size, as the structured outputs come back.
MEASURED_OUTPUT_TOKENS = {"plan": 150, "narrate": 120, "sql": 60}
NARRATED_TABLE_CHARS = 1_650  # a breakdown by province: 11 rows of about 150 characters


def measured_profile(dataset: str = "ces11") -> tuple[CallProfile, ...]:
    """The calls the bedrock provider really makes, sized from the prompts in this repository:
    the brain plans and narrates (2 calls), the SQL writer is the only worker that calls a model."""
    from panelbrain.agents.bedrock import NARRATE_SYSTEM, SQL_SYSTEM, SYSTEM, dictionary_prompt
    from panelbrain.data.dictionary import load_dictionary

    dictionary = dictionary_prompt(load_dictionary(dataset))

    def tokens(*texts: str) -> int:
        return round(sum(len(t) for t in texts) / CHARS_PER_TOKEN)

    plan_call = tokens(SYSTEM, dictionary) + 20 + MEASURED_OUTPUT_TOKENS["plan"]
    narrate_call = (
        tokens(NARRATE_SYSTEM)
        + round(NARRATED_TABLE_CHARS / CHARS_PER_TOKEN)
        + MEASURED_OUTPUT_TOKENS["narrate"]
    )
    sql_call = tokens(SQL_SYSTEM, dictionary) + 60 + MEASURED_OUTPUT_TOKENS["sql"]
    return (
        CallProfile("brain", "sonnet", calls=2, tokens_per_call=round((plan_call + narrate_call) / 2)),
        CallProfile("workers", "haiku", calls=1, tokens_per_call=sql_call),
    )


def profile_from_usage(documents: list[dict[str, Any]]) -> tuple[CallProfile, ...]:
    """A profile from `panelbrain ask --json` documents: each model's average tokens a query
    (input, output, cache reads and writes together), as one call of that size."""
    totals: dict[str, float] = {}
    answered = [d for d in documents if d.get("usage")]
    if not answered:
        raise ValueError("none of the documents records model usage (offline answers use no model)")
    for document in answered:
        for model_id, tokens in document["usage"].items():
            family = "sonnet" if "sonnet" in model_id else "haiku" if "haiku" in model_id else model_id
            totals[family] = totals.get(family, 0.0) + sum(tokens.values())
    return tuple(
        CallProfile("recorded", family, calls=1, tokens_per_call=round(total / len(answered)))
        for family, total in sorted(totals.items())
    )


# Tokens a minute one provisioned model unit serves (seed 4.2: "covers ~100K" / "~200K").
TPM_PER_UNIT = {"sonnet": 100_000, "haiku": 200_000}
# Seed 4.1: on demand under 100 a day, provisioned from 1,000, provisioned + cross-region above 10,000.
FUNCTIONS = {
    "BrainPlanFunction": "plan",
    "SqlWriterFunction": "sql_writer",
    "WeightApplierFunction": "weight_applier",
    "DataProcessorFunction": "data_processor",
    "BrainSynthesiseFunction": "synthesise",
    "FormatterFunction": "formatter",
}
# The states an answered query passes through in query_pipeline.asl.json (all workers needed).
ANSWERED_PATH_STATES = 14


def _figure(value: float, formula: str, **inputs: Any) -> dict[str, Any]:
    return {"value": value, "formula": formula, "inputs": inputs}


def recommendation(queries_per_day: float) -> str:
    if queries_per_day > 10_000:
        return "provisioned throughput + cross-region inference"
    if queries_per_day >= 1_000:
        return "provisioned throughput"
    return "on-demand"


def plan(
    queries_per_day: float,
    *,
    peak_factor: float = 4.0,
    profile: tuple[CallProfile, ...] = SEED_PROFILE,
    headroom: float = 1.5,
) -> dict[str, Any]:
    """The capacity plan for ``queries_per_day``; every number comes with its formula."""
    tokens_per_query = sum(p.tokens for p in profile)
    per_day = queries_per_day * tokens_per_query
    per_minute = per_day / MINUTES_PER_DAY
    models: dict[str, Any] = {}
    for model in sorted({p.model for p in profile}):
        tokens = sum(p.tokens for p in profile if p.model == model)
        peak_tpm = queries_per_day * tokens / MINUTES_PER_DAY * peak_factor
        units = max(1, math.ceil(peak_tpm / TPM_PER_UNIT[model]))
        models[model] = {
            "tokens_per_query": tokens,
            "peak_tokens_per_minute": _figure(
                peak_tpm,
                "queries_per_day * tokens_per_query / 1440 * peak_factor",
                queries_per_day=queries_per_day,
                tokens_per_query=tokens,
                peak_factor=peak_factor,
            ),
            "model_units": _figure(
                units,
                "max(1, ceil(peak_tokens_per_minute / tokens_per_minute_per_unit))",
                tokens_per_minute_per_unit=TPM_PER_UNIT[model],
            ),
        }
    peak_per_second = queries_per_day / 86_400 * peak_factor
    concurrency = {
        name: _figure(
            max(1, math.ceil(peak_per_second * SEED_LATENCY_S[agent] * headroom)),
            "ceil(peak_arrivals_per_second * duration_s * headroom)",
            peak_arrivals_per_second=peak_per_second,
            duration_s=SEED_LATENCY_S[agent],
            headroom=headroom,
        )
        for name, agent in FUNCTIONS.items()
    }
    return {
        "queries_per_day": queries_per_day,
        "peak_factor": peak_factor,
        "provisioned_concurrency_at_peak": provisioned_at_peak(peak_per_second * 60),
        "tokens_per_query": _figure(
            tokens_per_query,
            "sum(calls * tokens_per_call)",
            profile=[
                {"role": p.role, "model": p.model, "calls": p.calls, "tokens_per_call": p.tokens_per_call}
                for p in profile
            ],
        ),
        "tokens_per_day": _figure(per_day, "queries_per_day * tokens_per_query"),
        "tokens_per_hour": _figure(per_day / 24, "tokens_per_day / 24"),
        "tokens_per_minute_average": _figure(per_minute, "tokens_per_day / 1440"),
        "tokens_per_minute_peak": _figure(
            per_minute * peak_factor, "tokens_per_minute_average * peak_factor"
        ),
        "models": models,
        "lambda_concurrency_at_peak": concurrency,
        "step_functions": {
            "express_executions_per_day": _figure(queries_per_day, "one execution per query"),
            "state_transitions_per_day": _figure(
                queries_per_day * ANSWERED_PATH_STATES,
                "queries_per_day * states_on_the_answered_path",
                states_on_the_answered_path=ANSWERED_PATH_STATES,
            ),
        },
        "recommendation": recommendation(queries_per_day),
    }


def provisioned_at_peak(queries_per_minute: float) -> dict[str, dict[str, Any]]:
    """Provisioned instances each agent's scaling settles at under a steady ``queries_per_minute``
    in business hours: the most of the schedule's minimum and each target-tracking policy's
    ceil(load / target), within the target's maximum (the policy with the largest capacity wins:
    https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html).
    """
    from panelbrain.ops.template_scaling import scaling

    agents = scaling().agents
    out: dict[str, dict[str, Any]] = {}
    for name, agent in FUNCTIONS.items():
        deployed = agents[name]
        business = max(deployed.bounds_at(t * 3600)[0] for t in range(24))  # Monday's highest minimum
        busy = queries_per_minute / 60 * SEED_LATENCY_S[agent]
        demand, utilisation = deployed.policy("demand"), deployed.policy("utilisation")
        by_demand = math.ceil(queries_per_minute / demand.target - 1e-9) if demand else 0
        by_utilisation = math.ceil(busy / utilisation.target - 1e-9) if utilisation else 0
        out[name] = _figure(
            min(deployed.max_capacity, max(business, by_demand, by_utilisation)),
            "min(max_capacity, max(schedule_minimum, ceil(queries_per_minute / demand_target), "
            "ceil(queries_per_minute / 60 * duration_s / utilisation_target)))",
            queries_per_minute=queries_per_minute,
            schedule_minimum=business,
            demand_target=demand.target if demand else None,
            utilisation_target=utilisation.target if utilisation else None,
            duration_s=SEED_LATENCY_S[agent],
            max_capacity=deployed.max_capacity,
        )
    return out


def recommended_tpm_quota(queries_per_day: float, peak_factor: float = 4.0) -> dict[str, float]:
    """Tokens a minute each model can serve with the units :func:`plan` recommends."""
    models = plan(queries_per_day, peak_factor=peak_factor)["models"]
    return {m: float(f["model_units"]["value"] * TPM_PER_UNIT[m]) for m, f in models.items()}


# -- account quotas and the regional split -----------------------------------------------------

# Regions a split takes, in order: the three share the `us.` inference profiles (the data stays in
# the United States); N. Virginia and Oregon have the larger Step Functions buckets (quotas.yaml).
REGION_ORDER = ("us-east-1", "us-west-2", "us-east-2", "us-west-1")
OUTPUT_SHARE = 0.2  # of each call's tokens (the cost model's assumption too)
OTHER_FUNCTIONS_PER_QUERY = 5  # API, poller, error handler or start-review, persist, API reads
OTHER_FUNCTION_S = 0.1  # each of them runs about 100 ms
POLLER_CONCURRENCY, POLLER_BATCH = 10, 10  # template.yaml: the poller's ScalingConfig and BatchSize
# The cost model's assumptions (panelbrain.ops.cost.Assumptions takes its defaults from these).
STATUS_POLLS_PER_QUERY = 5  # GET /queries/{id} while a question is answered
WRITE_UNITS_PER_QUERY, READ_UNITS_PER_QUERY = 12, 6  # query record writes (~1 KB each) + an ~8 KB answer
REVIEW_FRACTION, REVIEW_TRANSITIONS = 0.10, 5
# A minute's arrivals vary about the planned peak (Poisson, plus the busiest minute of the
# profile): quotas that are rates a minute or a second are requested with this margin.
QUOTA_HEADROOM = 1.2


def quota_tokens_per_call(tokens_per_call: float, burndown: float) -> float:
    """Tokens one call takes from a tokens-per-minute quota: input once, output ``burndown``
    times (https://docs.aws.amazon.com/bedrock/latest/userguide/quotas-token-burndown.html)."""
    return tokens_per_call * (1 - OUTPUT_SHARE) + tokens_per_call * OUTPUT_SHARE * burndown


def request_value(needed: float) -> float:
    """``needed`` rounded up to two significant figures: the value an increase asks for."""
    if needed <= 0:
        return 0.0
    step = 10 ** max(0, math.floor(math.log10(needed)) - 1)
    return float(math.ceil(needed / step - 1e-9) * step)


def _check(quota_id: str, quotas: QuotaSet, needed: float, formula: str, **inputs: Any) -> dict[str, Any]:
    from panelbrain.pricing.quotas import quota_table

    quota = quota_table().get(quota_id)
    limit = quotas.value(quota_id)
    return {
        "quota": quota_id,
        "name": quota.name,
        "unit": quota.unit,
        "region": quotas.region,
        "needed": needed,
        "limit": limit,
        "ok": needed <= limit,
        "adjustable": quota.adjustable,
        "basis": quota.basis,
        "source": quota.source,
        "formula": formula,
        "inputs": inputs,
    }


def quota_checks(
    queries_per_day: float,
    quotas: QuotaSet,
    *,
    peak_factor: float = 4.0,
    profile: tuple[CallProfile, ...] = SEED_PROFILE,
    headroom: float = 1.5,
    all_regions_queries_per_day: float | None = None,
) -> list[dict[str, Any]]:
    """Every quota the region's share of the load meets, what it needs and the limit in
    ``quotas`` (a :class:`panelbrain.pricing.quotas.QuotaSet`). ``all_regions_queries_per_day``
    is the whole load: a global table's replica writes every region's items."""
    from panelbrain.pricing.quotas import quota_table

    burndown = quota_table().rule("bedrock.output_burndown")
    per_second = queries_per_day / 86_400 * peak_factor
    figures = plan(queries_per_day, peak_factor=peak_factor, profile=profile, headroom=headroom)
    concurrency = {n: f["value"] for n, f in figures["lambda_concurrency_at_peak"].items()}
    # Target tracking follows the minute's arrivals, which run above the planned peak (margin).
    busiest = provisioned_at_peak(per_second * 60 * QUOTA_HEADROOM)
    provisioned = {n: f["value"] for n, f in busiest.items()}
    agents = sum(max(concurrency[n], provisioned[n]) for n in FUNCTIONS)
    others = (
        math.ceil(per_second * OTHER_FUNCTIONS_PER_QUERY * OTHER_FUNCTION_S * headroom) + POLLER_CONCURRENCY
    )
    unreserved = quotas.value("lambda.unreserved_minimum")
    checks = [
        _check(
            "lambda.concurrent_executions",
            quotas,
            float(max(agents + others, sum(provisioned.values()) + unreserved)),
            "max(sum over agents of max(concurrency at peak, provisioned at peak * margin) + other "
            "functions + poller, sum(provisioned at peak * margin) + unreserved minimum)",
            agents=agents,
            other_functions_and_poller=others,
            provisioned=sum(provisioned.values()),
            unreserved_minimum=unreserved,
        ),
        _check(
            "lambda.scaling_rate",
            quotas,
            float(max(concurrency.values())),
            "the most concurrency one function needs at peak, if it had to start from none",
        ),
        _check(
            "stepfunctions.express_start_execution.rate",
            quotas,
            per_second * QUOTA_HEADROOM,
            "peak arrivals a second * margin: one Express execution per query",
            margin=QUOTA_HEADROOM,
        ),
        _check(
            "stepfunctions.standard_start_execution.rate",
            quotas,
            per_second * REVIEW_FRACTION * QUOTA_HEADROOM,
            "peak arrivals a second * review fraction * margin",
            review_fraction=REVIEW_FRACTION,
        ),
        _check(
            "stepfunctions.standard_state_transitions.rate",
            quotas,
            per_second * REVIEW_FRACTION * REVIEW_TRANSITIONS * QUOTA_HEADROOM,
            "peak arrivals a second * review fraction * transitions a review * margin",
            transitions=REVIEW_TRANSITIONS,
        ),
    ]
    for model in sorted({p.model for p in profile}):
        calls = sum(p.calls for p in profile if p.model == model)
        quota_tokens = sum(
            p.calls * quota_tokens_per_call(p.tokens_per_call, burndown) for p in profile if p.model == model
        )
        checks.append(
            _check(
                f"bedrock.cross_region_tpm.{model}",
                quotas,
                queries_per_day * quota_tokens / MINUTES_PER_DAY * peak_factor * QUOTA_HEADROOM,
                "queries_per_day * quota tokens a query / 1440 * peak_factor * margin; quota tokens "
                "= input + output * burndown",
                quota_tokens_per_query=quota_tokens,
                burndown=burndown,
                output_share=OUTPUT_SHARE,
            )
        )
        checks.append(
            _check(
                f"bedrock.cross_region_rpm.{model}",
                quotas,
                queries_per_day * calls / MINUTES_PER_DAY * peak_factor * QUOTA_HEADROOM,
                "queries_per_day * calls a query / 1440 * peak_factor * margin",
                calls_per_query=calls,
            )
        )
    everywhere = all_regions_queries_per_day or queries_per_day
    checks += [
        _check(
            "sqs.in_flight",
            quotas,
            float(POLLER_CONCURRENCY * POLLER_BATCH),
            "poller concurrency * batch size: the most messages the poller holds at once",
        ),
        _check(
            "dynamodb.on_demand_table_writes",
            quotas,
            everywhere / 86_400 * peak_factor * WRITE_UNITS_PER_QUERY * QUOTA_HEADROOM,
            "peak arrivals a second in all regions * write units a query * margin (replicas "
            "write every region's items)",
            write_units_per_query=WRITE_UNITS_PER_QUERY,
        ),
        _check(
            "dynamodb.on_demand_table_reads",
            quotas,
            per_second * READ_UNITS_PER_QUERY * QUOTA_HEADROOM,
            "peak arrivals a second * read units a query * margin",
            read_units_per_query=READ_UNITS_PER_QUERY,
        ),
        _check(
            "apigateway.account_rps",
            quotas,
            per_second * (1 + STATUS_POLLS_PER_QUERY) * QUOTA_HEADROOM,
            "peak arrivals a second * (POST + status polls) * margin",
            status_polls=STATUS_POLLS_PER_QUERY,
        ),
    ]
    return checks


def regional_plan(
    queries_per_day: float,
    regions: int = 1,
    *,
    region_names: tuple[str, ...] | None = None,
    peak_factor: float = 4.0,
    profile: tuple[CallProfile, ...] = SEED_PROFILE,
    headroom: float = 1.5,
    quotas: dict[str, QuotaSet] | None = None,
) -> dict[str, Any]:
    """The load spread evenly over ``regions`` regions (each a full stack calling its own
    cross-region inference profile), each region's figures against its own quotas, the
    increases to request and, where a quota cannot be raised, the regions it takes.

    ``quotas`` maps a region to its :class:`QuotaSet` (default: the table's defaults)."""
    from panelbrain.pricing.quotas import QuotaSet

    names = region_names or REGION_ORDER[:regions]
    if len(names) != regions:
        raise ValueError(f"{regions} regions need {regions} region names, got {len(names)}")
    share = queries_per_day / regions
    per_region: dict[str, Any] = {}
    requests: list[dict[str, Any]] = []
    regions_needed = regions
    for name in names:
        region_quotas = (quotas or {}).get(name) or QuotaSet.defaults(name)
        checks = quota_checks(
            share,
            region_quotas,
            peak_factor=peak_factor,
            profile=profile,
            headroom=headroom,
            all_regions_queries_per_day=queries_per_day,
        )
        figures = plan(share, peak_factor=peak_factor, profile=profile, headroom=headroom)
        per_region[name] = {
            "queries_per_day": share,
            "model_units": {m: f["model_units"]["value"] for m, f in figures["models"].items()},
            "checks": checks,
        }
        for check in checks:
            if check["ok"]:
                continue
            if check["adjustable"]:
                requests.append(
                    {
                        "quota": check["quota"],
                        "name": check["name"],
                        "region": name,
                        "from": check["limit"],
                        "to": request_value(check["needed"]),
                        "needed": check["needed"],
                        "basis": check["basis"],
                    }
                )
            else:
                # A quota AWS will not raise: spread the load over enough regions instead.
                regions_needed = max(regions_needed, math.ceil(regions * check["needed"] / check["limit"]))
    return {
        "queries_per_day": queries_per_day,
        "regions": list(names),
        "per_region": per_region,
        "requests": requests,
        "regions_needed": regions_needed,
        "model_units_total": {
            m: sum(r["model_units"][m] for r in per_region.values())
            for m in next(iter(per_region.values()))["model_units"]
        },
    }


def requested_quotas(regional: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The increases of :func:`regional_plan` as ``{quota id: {region: value}}``, the form
    ``panelbrain simulate --quotas FILE`` reads."""
    out: dict[str, dict[str, float]] = {}
    for request in regional["requests"]:
        out.setdefault(request["quota"], {})[request["region"]] = request["to"]
    return out
