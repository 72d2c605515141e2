"""The query engine on real DuckDB files: results, the row limit, failures, the timeout, and
the walls that stand even if the guard were bypassed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from panelbrain.config import DataSettings
from panelbrain.data.catalog import load_dataset
from panelbrain.data.engine import QueryEngine
from panelbrain.errors import QueryExecutionError, QueryTimeoutError, SqlGuardError
from tests.unit.test_guard import LEGITIMATE  # the same fixture table, run for real here


def engine_for(tmp_path: Path, dataset: str = "ces11", **settings: float) -> QueryEngine:
    options = {"row_limit": 10_000, "statement_timeout_s": 10.0, **settings}
    rows = 200_000 if dataset == "synthetic" else None
    return QueryEngine(
        load_dataset(dataset, rows=rows),
        DataSettings(
            row_limit=int(options["row_limit"]),
            statement_timeout_s=options["statement_timeout_s"],
            cache_dir=tmp_path,
        ),
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> QueryEngine:
    return engine_for(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("sql", [sql for _, sql in LEGITIMATE])
def test_every_legitimate_statement_runs(engine: QueryEngine, sql: str) -> None:
    result = engine.run(sql)
    assert result.columns
    assert len(result.rows) <= 10_000


def test_results_are_the_data(engine: QueryEngine) -> None:
    result = engine.run("SELECT gender, count(*) AS n FROM ces11 GROUP BY gender ORDER BY gender")
    assert result.records() == [{"gender": "Female", "n": 1244}, {"gender": "Male", "n": 987}]
    assert engine.run("SELECT count(*) FROM ces11").rows == [(2231,)]


def test_row_limit_truncates_and_says_so(tmp_path: Path) -> None:
    # GIVEN an engine with a row limit of 5
    small = engine_for(tmp_path, row_limit=5)
    # WHEN a statement asks for every row
    result = small.run("SELECT id FROM ces11")
    # THEN 5 rows come back, marked as cut off at the limit
    assert len(result.rows) == 5 and result.truncated
    assert result.guarded.sql.endswith("LIMIT 5")
    assert not small.run("SELECT id FROM ces11 LIMIT 3").truncated


def test_duckdb_failure_is_a_clear_bad_input_error(engine: QueryEngine) -> None:
    with pytest.raises(QueryExecutionError, match="the query failed in DuckDB: Conversion Error"):
        engine.run("SELECT gender FROM ces11 WHERE gender = 5")


def test_guard_runs_before_duckdb(engine: QueryEngine) -> None:
    with pytest.raises(SqlGuardError, match="table_function"):
        engine.run("SELECT * FROM read_csv('/etc/passwd')")


def test_long_statement_is_interrupted(tmp_path: Path) -> None:
    # GIVEN a 200,000-row panel and a 0.2 s statement timeout
    slow = engine_for(tmp_path, dataset="synthetic", statement_timeout_s=0.2)
    # WHEN a self cross join (4e10 pairs) runs
    with pytest.raises(QueryTimeoutError, match=r"ran past 0\.2 s and was stopped"):
        slow.run("SELECT count(*) FROM panel a, panel b WHERE a.income > b.income")
    # THEN the engine still answers afterwards
    assert slow.run("SELECT count(*) FROM panel").rows == [(200_000,)]


def test_database_file_is_sealed_even_without_the_guard(engine: QueryEngine) -> None:
    # Defence in depth: talk to the private connection directly, as a guard bug would let
    # a statement do. The database is read-only, files are off limits, settings are locked.
    con = engine._con
    with pytest.raises(duckdb.Error, match="Permission Error"):
        con.execute("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(duckdb.Error, match="read-only"):
        con.execute("CREATE TABLE stolen AS SELECT 1")
    with pytest.raises(duckdb.Error, match="Cannot change configuration option"):
        con.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        con.execute("INSTALL httpfs")
