"""SqlWriter: plan -> guarded SQL -> rows (unweighted counts, the cross-check for the estimates)."""

from __future__ import annotations

from panelbrain.agents.context import engine
from panelbrain.agents.latency import simulate_latency
from panelbrain.agents.providers import provider_for
from panelbrain.models import Plan, WorkerResult


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_for(plan: Plan, table: str) -> str:
    """The SQL the offline provider writes for a plan: bases per group (and category)."""
    group = f"{plan.breakdown} AS grp, " if plan.breakdown else ""
    where = [
        f"{f.column} {'NOT IN' if f.negate else 'IN'} ({', '.join(_quote(v) for v in f.values)})"
        for f in plan.filters
    ]
    if plan.intent == "mean":
        select = f"SELECT {group}count({plan.measure}) AS n, avg({plan.measure}) AS unweighted_mean"
        where.append(f"{plan.measure} IS NOT NULL")
    else:
        select = f"SELECT {group}{plan.measure} AS category, count(*) AS n"
    sql = f"{select} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    keys = (["grp"] if plan.breakdown else []) + ([] if plan.intent == "mean" else ["category"])
    if keys:
        sql += f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}"
    return sql


def run(plan: Plan) -> WorkerResult:
    simulate_latency("sql_writer", plan.latency_scale)
    outcome = provider_for(plan.provider).write_sql(plan, engine(plan.dataset, plan.data_version))
    result = outcome.result
    return WorkerResult(
        worker="sql_writer",
        output={
            "sql": result.guarded.sql,
            "columns": result.columns,
            "rows": [[_jsonable(v) for v in row] for row in result.rows],
            "truncated": result.truncated,
            "notes": outcome.notes,
            "fallback": outcome.fallback,
        },
        usage=outcome.usage,
    )


def _jsonable(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
