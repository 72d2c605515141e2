"""The SQL guard, table-driven: hostile statements refused with the rule named, analytical SQL
accepted with the row limit applied. Fixture format: tests/fixtures/sql/README.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot

from panelbrain.data.guard import DIALECT, RULES, guard_sql
from panelbrain.errors import SqlGuardError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sql"
SCHEMA = {
    "ces11": [
        "id",
        "province",
        "population",
        "weight",
        "gender",
        "abortion",
        "importance",
        "education",
        "urban",
    ]
}
HEADER = re.compile(r"^-- case: (\S+)\s*$", re.MULTILINE)


def load_cases(name: str) -> list[tuple[str, str]]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    parts = HEADER.split(text)[1:]
    cases = []
    for expected, body in zip(parts[::2], parts[1::2], strict=True):
        lines = body.strip("\n").split("\n")
        while lines and lines[0].startswith("-- why:"):
            lines.pop(0)
        cases.append((expected, "\n".join(lines).strip("\n")))
    return cases


HOSTILE = load_cases("hostile.sql")
LEGITIMATE = load_cases("legitimate.sql")


def case_id(index: int, sql: str) -> str:
    return f"{index:02d}-" + re.sub(r"\W+", "_", sql.splitlines()[0] if sql else "blank")[:40]


def test_the_tables_are_as_large_as_promised() -> None:
    assert len(HOSTILE) >= 60
    assert len(LEGITIMATE) >= 20
    assert {rule for rule, _ in HOSTILE} <= set(RULES)


@pytest.mark.parametrize(
    ("rule", "sql"), HOSTILE, ids=[case_id(i, sql) for i, (_, sql) in enumerate(HOSTILE)]
)
def test_hostile_statement_is_refused_with_its_rule(rule: str, sql: str) -> None:
    with pytest.raises(SqlGuardError) as caught:
        guard_sql(sql, SCHEMA)
    assert caught.value.rule == rule, caught.value.message
    assert caught.value.message.startswith(f"{rule}: ")
    if rule not in ("empty",):
        assert caught.value.fragment, "a rejection shows where"


@pytest.mark.parametrize(
    ("expected", "sql"), LEGITIMATE, ids=[case_id(i, sql) for i, (_, sql) in enumerate(LEGITIMATE)]
)
def test_legitimate_sql_is_accepted_with_a_row_limit(expected: str, sql: str) -> None:
    assert expected == "ok"
    guarded = guard_sql(sql, SCHEMA)
    tree = sqlglot.parse_one(guarded.sql, dialect=DIALECT)
    limit = tree.args["limit"].expression
    assert int(limit.this) <= 10_000
    assert guarded.tables == ("ces11",)


@pytest.mark.parametrize(
    ("sql", "limit", "limited"),
    [
        ("SELECT gender FROM ces11", 10_000, True),
        ("SELECT gender FROM ces11 LIMIT 50", 50, False),
        ("SELECT gender FROM ces11 LIMIT 999999", 10_000, True),
        ("SELECT gender FROM ces11 LIMIT (SELECT count(*) FROM ces11)", 10_000, True),
    ],
)
def test_limit_is_added_or_lowered(sql: str, limit: int, limited: bool) -> None:
    guarded = guard_sql(sql, SCHEMA)
    assert guarded.sql.endswith(f"LIMIT {limit}")
    assert guarded.limited is limited


def test_row_limit_argument_is_honoured() -> None:
    guarded = guard_sql("SELECT gender FROM ces11 LIMIT 500", SCHEMA, row_limit=100)
    assert guarded.sql.endswith("LIMIT 100") and guarded.row_limit == 100


def test_rejection_message_names_rule_and_fragment() -> None:
    with pytest.raises(SqlGuardError) as caught:
        guard_sql("SELECT gender, getenv('HOME') FROM ces11", SCHEMA)
    assert str(caught.value) == "function_not_allowed: function getenv() is not allowed (at: GETENV('HOME'))"
    assert caught.value.to_dict() == {
        "error": "SqlGuardError",
        "message": str(caught.value),
        "rule": "function_not_allowed",
        "fragment": "GETENV('HOME')",
    }


def test_unknown_column_names_the_column() -> None:
    with pytest.raises(SqlGuardError) as caught:
        guard_sql("SELECT gender FROM ces11 WHERE secret = 1", SCHEMA)
    assert caught.value.fragment == "secret"
    assert "Column 'secret' could not be resolved" in caught.value.message


def test_huge_input_is_refused_before_parsing() -> None:
    sql = "SELECT gender FROM ces11 WHERE id IN (" + ", ".join(["1"] * 10_000) + ")"
    with pytest.raises(SqlGuardError) as caught:
        guard_sql(sql, SCHEMA)
    assert caught.value.rule == "too_long"
    assert "the limit is 20,000" in caught.value.message


def test_deep_nesting_under_the_length_limit_is_refused_not_crashed() -> None:
    sql = "SELECT " + "(" * 5_000 + "1" + ")" * 5_000 + " FROM ces11"
    assert len(sql) < 20_000
    with pytest.raises(SqlGuardError) as caught:
        guard_sql(sql, SCHEMA)
    assert caught.value.rule in ("too_complex", "syntax")
