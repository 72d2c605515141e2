"""BrainSynthesise: worker results -> answer, table, confidence and the reasons for it.

The confidence is computed here from evidence, whichever provider wrote the words: the plan's
own confidence, whether the SQL's bases agree with the estimates' bases, how small the smallest
group is, and how much the weighting costs in effective sample size.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from panelbrain.agents import wording
from panelbrain.agents.latency import simulate_latency
from panelbrain.agents.providers import FALLBACK_PROVIDER, Narration, provider_for
from panelbrain.data.dictionary import Table, load_dictionary
from panelbrain.models import Plan, Synthesis, WorkerResult
from panelbrain.review.policy import ReviewPolicy

# The overall row of an estimate table (panelbrain.data.estimates.ALL, without importing pandas).
ALL = "All"
SMALL_BASE = 30
LOW_EFFICIENCY = 0.5
# The routing policy's default answer threshold; the handler passes the workflow's configured one.
ANSWER_THRESHOLD: float = ReviewPolicy.model_fields["answer"].default
# How far below the answer threshold a fallback answer is capped.
FALLBACK_MARGIN = 0.01


def _by_worker(results: list[WorkerResult]) -> dict[str, WorkerResult]:
    return {r.worker: r for r in results}


def _sql_bases(sql: dict[str, Any], plan: Plan) -> dict[str, int]:
    columns = sql["columns"]
    bases: dict[str, int] = defaultdict(int)
    for row in sql["rows"]:
        record = dict(zip(columns, row, strict=True))
        group = str(record["grp"]) if plan.breakdown else ALL
        bases[group] += int(record["n"])
        if plan.breakdown:
            bases[ALL] += int(record["n"])
    return dict(bases)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _describe(plan: Plan, table: Table, rows: list[dict[str, Any]], weighted: bool) -> str:
    """The answer as an analyst writes it, in the dictionary's words: "33.7% of women say
    religion is very important (95% CI ...; n = ...; weighted)". Every figure is the table's."""
    measure = table.column(plan.measure)
    fmt = _pct if plan.intent != "mean" else (lambda v: f"{v:,.2f}")
    who = wording.population(table, plan.filters)
    basis = "weighted" if weighted else "unweighted"
    overall = [r for r in rows if r["group"] == ALL]

    def interval(r: dict[str, Any]) -> str:
        return f"95% CI {fmt(r['ci_low'])} to {fmt(r['ci_high'])}"

    parts: list[str] = []
    if plan.intent == "mean" and overall:
        o = overall[0]
        among = f" among {who}" if plan.filters else ""
        parts.append(
            f"The {basis} mean of {measure.label.lower()}{among} is {fmt(o['estimate'])} "
            f"({interval(o)}; n = {o['unweighted_base']:,})."
        )
    elif plan.intent == "share":
        for o in overall:
            parts.append(
                f"{fmt(o['estimate'])} of {who} {wording.answer(measure, o['category'])} "
                f"({interval(o)}; n = {o['unweighted_base']:,}; {basis})."
            )
    elif overall:
        parts.append(
            f"Of {who} (n = {overall[0]['unweighted_base']:,}; {basis}): "
            + "; ".join(
                f"{fmt(o['estimate'])} {wording.answer(measure, o['category'])} ({interval(o)})"
                for o in overall
            )
            + "."
        )
    if plan.breakdown:
        by = table.column(plan.breakdown)
        focus = plan.values[0] if plan.values else (overall[0]["category"] if overall else None)
        groups = [r for r in rows if r["group"] != ALL and r["category"] == focus]
        if groups:
            high = max(groups, key=lambda r: r["estimate"])
            low = min(groups, key=lambda r: r["estimate"])
            what = "the mean" if focus is None else f"the share who {wording.answer(measure, focus)}"
            parts.append(
                f"By {by.label.lower()}, {what} is highest among {wording.group(by, high['group'])} "
                f"({fmt(high['estimate'])}) and lowest among {wording.group(by, low['group'])} "
                f"({fmt(low['estimate'])})."
            )
            different = [r for r in groups if r["significant"]]
            if different:
                parts.append(
                    "Different from the rest at the 5% level: "
                    + ", ".join(f"{wording.group(by, r['group'])} ({fmt(r['estimate'])})" for r in different)
                    + "."
                )
    return " ".join(parts)


def _narrate(plan: Plan, table: Table, rows: list[dict[str, Any]], text: str) -> Narration:
    """The provider's paragraph: the deterministic ``text`` offline; under Bedrock the model's,
    if it passes the fidelity check, else ``text`` again with the reason (a fallback)."""
    return provider_for(plan.provider).narrate(plan, table, rows, text)


def _fell_back(plan: Plan, narration: Narration) -> list[str]:
    """The parts of the answer a model was asked for and the offline provider wrote instead.
    The SQL is not one: it only cross-checks the bases, and the offline SQL checks them as well
    (its fallback is noted among the reasons)."""
    steps = ["the plan"] if plan.provider == FALLBACK_PROVIDER else []
    if narration.fallback:
        steps.append("the answer text")
    return steps


def cap_below(confidence: float, answer_threshold: float, steps: list[str]) -> tuple[float, str | None]:
    """An answer part-written by the fallback is never published as confident: its confidence
    goes below the answer threshold (a reviewer sees it), and the reason says so."""
    capped = round(answer_threshold - FALLBACK_MARGIN, 4)
    if not steps or confidence <= capped:
        return confidence, None
    return capped, (
        f"{' and '.join(steps)} fell back to the offline provider, so the confidence is capped at "
        f"{capped:.2f}, below the answer threshold {answer_threshold:g}: "
        "a person checks it before it goes out"
    )


def run(plan: Plan, results: list[WorkerResult], answer_threshold: float = ANSWER_THRESHOLD) -> Synthesis:
    simulate_latency("synthesise", plan.latency_scale)
    spec = load_dictionary(plan.dataset, plan.data_version)
    table = spec.main_table
    workers = _by_worker(results)
    confidence = plan.confidence
    reasons = list(plan.reasons)

    estimates = workers["data_processor"].output
    rows = [
        {
            "group": r["group"],
            "category": r["category"],
            "estimate": r["estimate"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "weighted_base": r["weighted_base"],
            "unweighted_base": r["unweighted_base"],
            "significant": r["significant"],
        }
        for r in estimates["rows"]
    ]

    sql_result = workers.get("sql_writer")
    sql: str | None = None
    if sql_result is None or sql_result.skipped:
        confidence -= 0.1
        reasons.append("no SQL cross-check was run")
    else:
        sql = sql_result.output["sql"]
        ours = {r["group"]: r["unweighted_base"] for r in rows}
        theirs = _sql_bases(sql_result.output, plan)
        if sql_result.output.get("truncated"):
            confidence -= 0.1
            reasons.append("the SQL result was cut at the row limit")
        if all(theirs.get(g) == n for g, n in ours.items()):
            reasons.append("the SQL's bases agree with the estimates' bases")
        else:
            confidence -= 0.5
            reasons.append("the SQL's bases disagree with the estimates' bases")

    smallest = min((r["unweighted_base"] for r in rows), default=0)
    if smallest < SMALL_BASE:
        confidence -= 0.2
        reasons.append(
            f"a group has only {smallest} respondents (fewer than {SMALL_BASE}): its estimate is unstable"
        )

    weighting = None
    if plan.weighted:
        applier = workers.get("weight_applier")
        if applier is None or applier.skipped:
            confidence -= 0.3
            reasons.append("the question is weighted but no weighting diagnostics came back")
        else:
            weighting = applier.output
            efficiency = weighting["efficiency"]
            if efficiency < LOW_EFFICIENCY:
                confidence -= 0.1
                reasons.append(
                    f"weighting efficiency is low ({efficiency:.0%}): "
                    "estimates rest on fewer effective respondents"
                )
            else:
                reasons.append(
                    f"weighted to {len(weighting['variables'])} targets, efficiency {efficiency:.0%} "
                    f"(effective n {weighting['effective_n']:,.0f})"
                )
    else:
        reasons.append("unweighted, as asked")

    usage = list(plan.usage) + [u for r in results for u in r.usage]
    if sql_result is not None:
        reasons += sql_result.output.get("notes", [])
    answer = _describe(plan, table, rows, plan.weighted)
    narration = _narrate(plan, table, rows, answer)
    answer = narration.text
    usage += narration.usage
    reasons += narration.notes
    confidence, capped = cap_below(confidence, answer_threshold, _fell_back(plan, narration))
    if capped:
        reasons.append(capped)
    return Synthesis(
        query_id=plan.query_id,
        question=plan.question,
        dataset=plan.dataset,
        answer=answer,
        table=rows,
        sql=sql,
        weighting=weighting,
        confidence=round(max(min(confidence, 1.0), 0.0), 4),
        confidence_reasons=reasons,
        provider=plan.provider,
        plan=plan.model_dump(mode="json", exclude={"usage"}),
        usage=usage,
    )
