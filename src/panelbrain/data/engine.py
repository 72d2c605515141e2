"""DuckDB query engine: guarded SQL over a read-only, sealed copy of a dataset.

Each dataset is written once into a DuckDB file (keyed by its data version, so a new version
gets a new file), then every connection opens that file read-only with external access off,
extensions off and the configuration locked. Statements pass :func:`guard_sql` first and are
interrupted past the statement timeout.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from panelbrain.config import DataSettings
from panelbrain.data.catalog import LoadedDataset, load_dataset
from panelbrain.data.guard import GuardedSql, guard_sql
from panelbrain.errors import QueryExecutionError, QueryTimeoutError
from panelbrain.xray import subsegment

_SEALED = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "lock_configuration": True,
}


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    guarded: GuardedSql
    truncated: bool
    elapsed_ms: float = field(compare=False)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _database_file(data: LoadedDataset, cache_dir: Path) -> Path:
    """Build (once) the DuckDB file holding ``data``; concurrent builders race safely."""
    safe_key = re.sub(r"[^A-Za-z0-9_-]", "_", data.data_key)
    path = cache_dir / f"{safe_key}.duckdb"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.partial")
    with duckdb.connect(str(partial)) as con:
        con.register("incoming", data.frame)
        con.execute(f'CREATE TABLE "{data.table.name}" AS SELECT * FROM incoming')
        con.unregister("incoming")
    partial.replace(path)  # atomic: readers never see a half-written file
    return path


class QueryEngine:
    """Run guarded, read-only SQL against one dataset.

    Examples
    --------
    >>> engine = QueryEngine.open("ces11")
    >>> engine.run("SELECT count(*) AS n FROM ces11").rows
    [(2231,)]
    """

    def __init__(self, data: LoadedDataset, settings: DataSettings | None = None) -> None:
        self.data = data
        self.settings = settings or DataSettings.from_env()
        path = _database_file(data, self.settings.cache_dir)
        self._con = duckdb.connect(str(path), read_only=True, config=dict(_SEALED))
        self._lock = threading.Lock()  # one DuckDB connection serves one statement at a time

    @classmethod
    def open(cls, dataset: str, *, rows: int | None = None, seed: int | None = None) -> QueryEngine:
        return cls(load_dataset(dataset, rows=rows, seed=seed))

    @property
    def schema(self) -> dict[str, list[str]]:
        return {t.name: list(t.column_names) for t in self.data.spec.tables}

    def close(self) -> None:
        self._con.close()

    def run(self, sql: str) -> QueryResult:
        """Guard ``sql``, run it, and return at most the row limit of rows.

        Raises
        ------
        SqlGuardError
            The statement broke a guard rule.
        QueryExecutionError
            DuckDB refused it (a type mismatch, say); the message is DuckDB's.
        QueryTimeoutError
            It ran past the statement timeout.
        """
        guarded = guard_sql(sql, self.schema, row_limit=self.settings.row_limit)
        timed_out = threading.Event()

        def interrupt() -> None:
            timed_out.set()
            self._con.interrupt()

        with self._lock:
            timer = threading.Timer(self.settings.statement_timeout_s, interrupt)
            started = time.perf_counter()
            timer.start()
            try:
                with subsegment("duckdb query"):
                    cursor = self._con.execute(guarded.sql)
                    columns = [d[0] for d in cursor.description or []]
                    rows = cursor.fetchmany(guarded.row_limit + 1)
            except duckdb.Error as exc:
                if timed_out.is_set():
                    raise QueryTimeoutError(
                        f"the statement ran past {self.settings.statement_timeout_s:g} s and was stopped"
                    ) from None
                message = str(exc).splitlines()[0]
                raise QueryExecutionError(f"the query failed in DuckDB: {message}", sql=guarded.sql) from None
            finally:
                timer.cancel()
            elapsed = (time.perf_counter() - started) * 1000
        # The guard's LIMIT caps the rows; reaching it exactly means more rows were cut off.
        truncated = guarded.limited and len(rows) >= guarded.row_limit
        return QueryResult(columns, rows[: guarded.row_limit], guarded, truncated, elapsed)
