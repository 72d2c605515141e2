"""Formatter: a confident (or approved) answer -> markdown for people, JSON for programs."""

from __future__ import annotations

from panelbrain.agents.latency import simulate_latency
from panelbrain.data.dictionary import load_dictionary
from panelbrain.errors import PanelbrainError
from panelbrain.models import FormattedAnswer, Synthesis


def run(synthesis: Synthesis, latency_scale: float = 0.0) -> FormattedAnswer:
    simulate_latency("formatter", latency_scale)
    table = load_dictionary(synthesis.dataset, synthesis.plan.get("data_version")).main_table
    plan = synthesis.plan
    measure = table.column(plan["measure"])
    by = table.column(plan["breakdown"]) if plan.get("breakdown") else None
    is_mean = plan["intent"] == "mean"
    lines = [f"**{synthesis.question}**", "", synthesis.answer, ""]
    head = [by.label if by else "Group", "Value", "Estimate", "95% CI", "Weighted base", "n"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    number = "{:,.2f}" if is_mean else "{:.1%}"

    def fmt(value: float) -> str:
        return number.format(value)

    rows = synthesis.table
    if not isinstance(rows, list):
        raise PanelbrainError(
            f"query {synthesis.query_id}: the formatter was given the table's claim check, not the "
            "table: resolve it first (panelbrain.aws.blobs.resolve)"
        )
    for row in rows:
        group = by.value_label(row["group"]) if by and row["group"] != "All" else row["group"]
        value = measure.value_label(row["category"]) if row["category"] else measure.label
        mark = " *" if row["significant"] else ""
        lines.append(
            f"| {group} | {value} | {fmt(row['estimate'])}{mark} "
            f"| {fmt(row['ci_low'])} – {fmt(row['ci_high'])} "
            f"| {row['weighted_base']:,.1f} | {row['unweighted_base']:,} |"
        )
    lines += ["", f"Confidence {synthesis.confidence:.2f}: " + "; ".join(synthesis.confidence_reasons) + "."]
    if synthesis.sql:
        lines += ["", "```sql", synthesis.sql, "```"]
    lines += ["", f"_Answered by the {synthesis.provider} provider._"]
    return FormattedAnswer(query_id=synthesis.query_id, markdown="\n".join(lines))
