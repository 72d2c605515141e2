"""The SQL guard: every statement, from a user or a model, passes here before DuckDB sees it.

Allowed: exactly one read-only query (SELECT, set operations, CTEs) over the tables and columns a
data dictionary lists, calling only functions from an analytical allow-list, returning at most a
row limit. Everything else is refused with the rule it broke and the fragment that broke it, so a
person can fix the statement and a model can retry with the reason in hand. The engine adds its
own walls (external access disabled, configuration locked, read-only database); the guard is the
first, not the only one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, SqlglotError
from sqlglot.optimizer.qualify import qualify

from panelbrain.errors import SqlGuardError

DIALECT = "duckdb"
DEFAULT_ROW_LIMIT = 10_000
MAX_SQL_LENGTH = 20_000

# Every rule a statement can break; tests and callers match on these names.
RULES = (
    "empty",
    "too_long",
    "too_complex",
    "syntax",
    "single_statement",
    "select_only",
    "forbidden_statement",
    "table_function",
    "unknown_table",
    "unknown_column",
    "function_not_allowed",
    "parameter",
)

_QUERY_ROOTS = (exp.Select, exp.SetOperation)

# Statement kinds that may not appear anywhere in the tree (a data-modifying CTE included).
_FORBIDDEN_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "Command",
        "Pragma",
        "Attach",
        "Detach",
        "Copy",
        "Set",
        "Use",
        "Install",
        "Describe",
        "Show",
        "Summarize",
        "Into",
        "Transaction",
        "Commit",
        "Rollback",
        "LoadData",
        "Refresh",
        "Cache",
        "Uncache",
        "Analyze",
        "Grant",
        "Revoke",
        "Export",
        "TruncateTable",
        "Pivot",
    )
    if hasattr(exp, name)
)

# Analytical functions a survey question needs; anything else (file readers, catalogue and
# settings functions, getenv, regexes, list lambdas) is refused by omission.
_ALLOWED_FUNCTIONS = frozenset(
    {
        # aggregates
        "Count",
        "CountIf",
        "Sum",
        "Avg",
        "Min",
        "Max",
        "Median",
        "Mode",
        "Stddev",
        "StddevPop",
        "StddevSamp",
        "Variance",
        "VariancePop",
        "Corr",
        "CovarPop",
        "CovarSamp",
        "Quantile",
        "PercentileCont",
        "PercentileDisc",
        "ApproxDistinct",
        "AnyValue",
        "First",
        "Last",
        "ArgMax",
        "ArgMin",
        "LogicalAnd",
        "LogicalOr",
        "GroupConcat",
        # window functions
        "RowNumber",
        "Rank",
        "DenseRank",
        "PercentRank",
        "CumeDist",
        "Ntile",
        "Lag",
        "Lead",
        "FirstValue",
        "LastValue",
        "NthValue",
        # scalar
        "Abs",
        "Round",
        "Floor",
        "Ceil",
        "Sqrt",
        "Pow",
        "Exp",
        "Ln",
        "Log",
        "Sign",
        "Greatest",
        "Least",
        "Coalesce",
        "Nullif",
        "If",
        "Case",
        "Cast",
        "TryCast",
        "Lower",
        "Upper",
        "Length",
        "Trim",
        "Substring",
        "Concat",
        "Replace",
        "Left",
        "Right",
        "StartsWith",
        "Contains",
        # logical connectives and EXISTS, which sqlglot models as functions
        "And",
        "Or",
        "Xor",
        "Exists",
        "Extract",
        "Year",
    }
)
_ALLOWED_ANONYMOUS = frozenset({"ifnull", "log10", "log2", "quantile_cont", "quantile_disc"})

logging.getLogger("sqlglot").setLevel(logging.ERROR)


@dataclass(frozen=True)
class GuardedSql:
    """A statement that passed the guard, ready to run.

    ``sql`` is the statement as it will run (with the row limit applied); ``limited`` says
    whether the guard lowered or added the LIMIT.
    """

    sql: str
    tables: tuple[str, ...]
    row_limit: int
    limited: bool


def _fragment(node: exp.Expr, width: int = 120) -> str:
    text = node.sql(dialect=DIALECT)
    return text if len(text) <= width else text[: width - 3] + "..."


def _refuse(rule: str, message: str, node: exp.Expr | str = "") -> SqlGuardError:
    fragment = node if isinstance(node, str) else _fragment(node)
    return SqlGuardError(rule, message, fragment)


def _parse_one(sql: str) -> exp.Expr:
    try:
        # A trailing comment after the last semicolon parses as a comment-only "statement".
        statements = [
            s
            for s in sqlglot.parse(sql, dialect=DIALECT)
            if s is not None and not isinstance(s, exp.Semicolon)
        ]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        highlight = str(first.get("highlight") or "")
        raise _refuse(
            "syntax", f"the statement does not parse{where}: {first.get('description', exc)}", highlight
        ) from None
    except RecursionError:
        raise _refuse("too_complex", "the statement nests too deeply to analyse", sql[:120]) from None
    except SqlglotError as exc:
        raise _refuse("syntax", f"the statement does not parse: {exc}", sql[:120]) from None
    if not statements:
        raise _refuse("empty", "there is no statement, only comments or separators")
    if len(statements) > 1:
        raise _refuse(
            "single_statement",
            f"exactly one statement is allowed, found {len(statements)}",
            statements[1],
        )
    return statements[0]


def _check_nodes(tree: exp.Expr, allowed_tables: set[str]) -> list[str]:
    """Walk the whole tree once; return the dataset tables it reads."""
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables: list[str] = []
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise _refuse("forbidden_statement", f"{type(node).__name__.upper()} is not allowed", node)
        if isinstance(node, exp.Placeholder | exp.Parameter):
            raise _refuse("parameter", "parameters and placeholders are not allowed; write the value", node)
        if isinstance(node, exp.Values):
            raise _refuse("table_function", "VALUES lists are not allowed as table sources", node)
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                raise _refuse("table_function", "table functions and file reads are not allowed", node)
            name = node.name.lower()
            qualified = bool(node.args.get("db") or node.args.get("catalog"))
            if qualified or (name not in allowed_tables and name not in cte_names):
                raise _refuse(
                    "unknown_table",
                    f"table {node.sql(dialect=DIALECT)!r} is not in this dataset "
                    f"(tables: {', '.join(sorted(allowed_tables))})",
                    node,
                )
            if name in allowed_tables and name not in cte_names:
                tables.append(name)
        elif isinstance(node, exp.Func):
            if isinstance(node, exp.Anonymous):
                if node.name.lower() not in _ALLOWED_ANONYMOUS:
                    raise _refuse("function_not_allowed", f"function {node.name}() is not allowed", node)
            elif type(node).__name__ not in _ALLOWED_FUNCTIONS:
                raise _refuse("function_not_allowed", f"function {node.sql_name()}() is not allowed", node)
    return tables


def _check_unresolved(qualified: exp.Expr) -> None:
    """Columns qualify left unqualified must be aliases of their own SELECT list.

    qualify resolves every column it can to its table; it does not check some clauses (HAVING
    without GROUP BY), so anything still unqualified that is not a projection alias is unknown.
    """
    for column in qualified.find_all(exp.Column):
        if column.table:
            continue
        select = column.find_ancestor(exp.Select)
        aliases = {e.alias_or_name for e in select.expressions} if select is not None else set()
        if column.name not in aliases:
            raise OptimizeError(f"Column '{column.name}' could not be resolved")


def _apply_limit(tree: exp.Expr, row_limit: int) -> bool:
    limit = tree.args.get("limit")
    value = limit.expression if isinstance(limit, exp.Limit) else None
    if isinstance(value, exp.Literal) and value.is_int and int(value.this) <= row_limit:
        return False
    tree.set("limit", exp.Limit(expression=exp.Literal.number(row_limit)))
    return True


def guard_sql(
    sql: str,
    schema: Mapping[str, Sequence[str]],
    *,
    row_limit: int = DEFAULT_ROW_LIMIT,
    max_length: int = MAX_SQL_LENGTH,
) -> GuardedSql:
    """Check ``sql`` against the guard rules for the tables and columns in ``schema``.

    Parameters
    ----------
    sql
        One statement, in DuckDB's dialect.
    schema
        ``{table: [column, ...]}``: the only tables and columns the statement may touch.
    row_limit
        Most rows the statement may return; a missing or larger LIMIT is set to it.

    Raises
    ------
    SqlGuardError
        With ``rule`` (one of :data:`RULES`) and ``fragment`` (the offending part).

    Examples
    --------
    >>> guard_sql("SELECT gender, count(*) FROM ces11 GROUP BY 1", {"ces11": ["gender"]}).sql
    'SELECT gender, COUNT(*) FROM ces11 GROUP BY 1 LIMIT 10000'
    """
    if not isinstance(sql, str) or not sql.strip():
        raise _refuse("empty", "the statement is empty")
    if len(sql) > max_length:
        raise _refuse(
            "too_long", f"the statement is {len(sql):,} characters; the limit is {max_length:,}", sql[:120]
        )
    tree = _parse_one(sql)
    if not isinstance(tree, _QUERY_ROOTS):
        kind = str(tree.this).upper() if isinstance(tree, exp.Command) else type(tree).__name__.upper()
        if isinstance(tree, _FORBIDDEN_NODES):
            raise _refuse("forbidden_statement", f"{kind} is not allowed: only SELECT queries run", tree)
        raise _refuse("select_only", f"only SELECT queries are allowed, not {kind}", tree)
    lowered = {t.lower(): [c.lower() for c in cols] for t, cols in schema.items()}
    tables = _check_nodes(tree, set(lowered))
    try:
        qualified = qualify(
            tree.copy(),
            schema={t: dict.fromkeys(cols, "VARCHAR") for t, cols in lowered.items()},
            dialect=DIALECT,
            validate_qualify_columns=True,
            identify=False,
        )
        _check_unresolved(qualified)
    except OptimizeError as exc:
        match = re.search(r"Column '([^']+)'", str(exc))
        raise _refuse(
            "unknown_column",
            f"{str(exc).split('. Line')[0]}; columns must come from the data dictionary "
            f"({'; '.join(f'{t}: ' + ', '.join(c) for t, c in lowered.items())})",
            match.group(1) if match else tree,
        ) from None
    except RecursionError:
        raise _refuse("too_complex", "the statement nests too deeply to analyse", sql[:120]) from None
    limited = _apply_limit(tree, row_limit)
    return GuardedSql(tree.sql(dialect=DIALECT), tuple(dict.fromkeys(tables)), row_limit, limited)
