"""SqlWriter: plan -> guarded SQL -> rows (unweighted counts, the cross-check for the estimates)."""

from __future__ import annotations

from panelbrain.agents.context import engine
from panelbrain.agents.latency import simulate_latency
from panelbrain.data.engine import QueryEngine, QueryResult
from panelbrain.errors import QueryExecutionError, SqlGuardError
from panelbrain.models import Plan, Usage, WorkerResult


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


def _model_sql(plan: Plan, query_engine: QueryEngine) -> tuple[QueryResult | None, list[Usage], list[str]]:
    """Ask the worker model for the SQL; one retry with the guard's reason, then give up."""
    from panelbrain.agents.bedrock import BREAKER, BedrockProvider, ModelThrottledError, write_sql

    if BREAKER.open:
        return None, [], ["Bedrock kept throttling: the SQL was written offline"]
    provider = BedrockProvider.from_env()
    usages: list[Usage] = []
    feedback: str | None = None
    for _ in range(2):
        try:
            sql, usage = write_sql(provider, plan, query_engine.data.spec, feedback)
        except ModelThrottledError:
            return None, usages, ["Bedrock throttled the SQL writer: the SQL was written offline"]
        usages.append(usage)
        try:
            return query_engine.run(sql), usages, []
        except (SqlGuardError, QueryExecutionError) as exc:
            feedback = exc.message
    return None, usages, [f"the model's SQL was refused twice ({feedback}): the SQL was written offline"]


def run(plan: Plan) -> WorkerResult:
    simulate_latency("sql_writer", plan.latency_scale)
    query_engine = engine(plan.dataset)
    result, usages, notes = (None, [], []) if plan.provider != "bedrock" else _model_sql(plan, query_engine)
    if result is None:
        result = query_engine.run(sql_for(plan, query_engine.data.table.name))
    return WorkerResult(
        worker="sql_writer",
        output={
            "sql": result.guarded.sql,
            "columns": result.columns,
            "rows": [[_jsonable(v) for v in row] for row in result.rows],
            "truncated": result.truncated,
            "notes": notes,
        },
        usage=usages,
    )


def _jsonable(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
