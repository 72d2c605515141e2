"""The datasets: their frames, their default targets, their weights.

A dataset's table is a ``.csv`` or ``.parquet`` file beside its dictionary (built in, or added
with ``panelbrain datasets add``); each is checked against its dictionary when it is loaded, and
one that fails is never served. With ``DATASETS_BUCKET`` set (Lambda, the local engine) the
files are the published version's, fetched once into /tmp (docs/adr/0025-datasets-in-s3.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from panelbrain.data.check import (
    DatasetCheckError,
    Problem,
    check_dataset,
    coded,
    codes_as_text,
    column_problems,
    weighting_columns,
    weighting_problems,
)
from panelbrain.data.dictionary import DICTIONARY_FILE, Column, Dataset, Table, dataset_dir, load_dictionary
from panelbrain.data.remote import remote_dataset_dir
from panelbrain.data.synthetic import generate_panel
from panelbrain.data.weighting import Cap, RakeResult, rake
from panelbrain.errors import DictionaryError


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset's dictionary with its main table as a frame, and what identifies that data."""

    spec: Dataset
    frame: pd.DataFrame
    data_key: str  # changes whenever the rows would: used for caches

    @property
    def table(self) -> Table:
        return self.spec.main_table


def _categorical(series: pd.Series, column: Column, dataset: str) -> pd.Categorical[str]:
    """A coded column as the dictionary's categories, mapped once per distinct code (not per
    row: 300 coded columns of 1,000,000 rows as per-row text took most of a cold start)."""
    categories = [v.value for v in column.values]
    index = {code: i for i, code in enumerate(categories)}
    # The source's missing codes ("Don't know") are no answer: missing, like a blank.
    no_answer = {v.value for v in column.missing}
    positions, texts = coded(series)
    lookup = np.full(len(texts) + 1, -1, dtype=np.int64)  # position -1 (missing) reads the last
    for i, text in enumerate(texts):
        if text is None or text in no_answer:
            continue
        if text not in index:
            raise DictionaryError(f"{dataset}: value {text!r} of {column.name!r} is not in the dictionary")
        lookup[i] = index[text]
    return pd.Categorical.from_codes(lookup[positions], categories=pd.Index(categories))


def _typed_column(column: Column, series: pd.Series, dataset: str) -> object:
    if column.type == "categorical":
        return _categorical(series, column, dataset)
    if column.type == "integer":
        return series.astype("int64")
    numbers = pd.to_numeric(series).astype("float64")
    if column.missing:
        numbers = numbers.mask(codes_as_text(series).isin([v.value for v in column.missing]))
    return numbers


def _typed(frame: pd.DataFrame, table: Table, dataset: str) -> pd.DataFrame:
    """Give every categorical column the dictionary's categories, in the dictionary's order."""
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        raise DictionaryError(f"{dataset}: the data has no column {missing[0]!r}")
    out = {column.name: _typed_column(column, frame[column.name], dataset) for column in table.columns}
    return pd.DataFrame(out, index=frame.index)


# Columns read from Parquet at a time when a dataset is loaded: the file's own types (an SPSS
# code is a float64) cost 8 bytes a cell, the typed column 1 (a categorical's codes), so holding
# a few raw columns at a time instead of all of them keeps the peak near the typed frame's size.
LOAD_BATCH_COLUMNS = 16


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _load_parquet(spec: Dataset, path: Path) -> tuple[list[Problem], pd.DataFrame | None]:
    """Check and type a Parquet table a few columns at a time (the same problems, in the same
    order, as :func:`check_dataset` on the whole file); the typed frame when there are none."""
    table = spec.main_table
    with duckdb.connect() as con:
        present = {
            row[0] for row in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        }
        count = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()
        if count is None or count[0] == 0:
            return [Problem(None, "the data has no rows")], None

        def read(names: list[str]) -> pd.DataFrame:
            query = f"SELECT {', '.join(_quoted(n) for n in names)} FROM read_parquet(?)"
            return con.execute(query, [str(path)]).df()

        absent = [c.name for c in table.columns if c.name not in present]
        problems = [Problem(name, "is in the dictionary but not in the data") for name in absent]
        columns = [c for c in table.columns if c.name in present]
        typed: dict[str, object] = {}
        for start in range(0, len(columns), LOAD_BATCH_COLUMNS):
            batch = columns[start : start + LOAD_BATCH_COLUMNS]
            raw = read([c.name for c in batch])
            for column in batch:
                problems += column_problems(column, raw[column.name])
                if not problems:
                    typed[column.name] = _typed_column(column, raw[column.name], spec.name)
            del raw
        across = [c for c in weighting_columns(spec) if c in present]
        problems += weighting_problems(spec, read(across) if across else pd.DataFrame(), absent)
    if problems:
        return problems, None
    return [], pd.DataFrame(typed, index=pd.RangeIndex(count[0]))


def read_file(path: Path) -> pd.DataFrame:
    """A table file as stored (``.parquet`` or ``.csv``)."""
    if path.suffix.lower() == ".parquet":
        # DuckDB reads Parquet itself: the data functions' layer has no pyarrow (ADR 0019).
        with duckdb.connect() as con:
            return con.execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
    return pd.read_csv(path)


def dataset_folder(name: str, version: str | None = None) -> Path:
    """Where the dataset's files are: the published version's copy in /tmp when
    ``DATASETS_BUCKET`` is set (``version`` pinned by a query, else the current one), otherwise
    the local folder."""
    published = remote_dataset_dir(name, version, data=True)
    return published.directory if published is not None else dataset_dir(name)


def read_table(name: str, version: str | None = None) -> pd.DataFrame:
    """A file-backed dataset's main table as stored, before any typing or checking."""
    spec = load_dictionary(name, version)
    table = spec.main_table
    if table.file is None:
        raise DictionaryError(f"{name}: table {table.name!r} names no file")
    return read_file(dataset_folder(name, spec.data_version) / table.file)


def load_dataset(
    name: str, *, rows: int | None = None, seed: int | None = None, version: str | None = None
) -> LoadedDataset:
    """Load a dataset's main table, checked and typed; ``rows`` and ``seed`` apply to generated
    ones, ``version`` to a published one (a query's pinned version; default the current one).

    Raises
    ------
    DatasetCheckError
        The data disagrees with its dictionary (``panelbrain datasets check NAME`` lists how).

    Examples
    --------
    >>> load_dataset("ces11").frame.shape
    (2231, 9)
    """
    spec = load_dictionary(name, version)
    table = spec.main_table
    if spec.generated is not None:
        rows = spec.generated.rows if rows is None else rows
        seed = spec.generated.seed if seed is None else seed
        frame = generate_panel(rows, seed)
        return LoadedDataset(spec, frame, f"{name}-{spec.data_version}-{rows}-{seed}")
    if table.file is None:
        raise DictionaryError(f"{name}: table {table.name!r} names no file")
    folder = dataset_folder(name, spec.data_version)
    path = folder / table.file
    typed: pd.DataFrame | None
    if path.suffix.lower() == ".parquet":
        problems, typed = _load_parquet(spec, path)
    else:
        raw = read_file(path)
        problems = check_dataset(spec, raw)
        typed = None if problems else _typed(raw, table, name)
    if problems or typed is None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DatasetCheckError(
            f"dataset {name!r} fails its check, so it is not served: {problems[0]}{more}; "
            f"`panelbrain datasets check {name}` lists every problem",
            dataset=name,
            problems=[str(p) for p in problems],
        )
    # The dictionary decides how the rows read (missing codes, values), so a cached copy of the
    # typed rows is keyed by the dictionary's text as well as the data's version.
    digest = hashlib.sha256((folder / DICTIONARY_FILE).read_bytes()).hexdigest()[:12]
    return LoadedDataset(spec, typed, f"{name}-{spec.data_version}-{digest}")


def default_targets(data: LoadedDataset) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """The dictionary's weighting targets, resolved against the data.

    Returns the targets and a frame of the weighting variables as the targets name their
    categories (recoded where the source is coarser than the data), plus the base weight.
    """
    weighting = data.spec.weighting
    if weighting is None:
        raise DictionaryError(f"{data.spec.name}: the dictionary defines no weighting targets")
    frame = data.frame
    targets: dict[str, dict[str, float]] = {}
    columns: dict[str, pd.Series] = {}
    for var in weighting.variables:
        series = frame[var.column]
        if var.recode:
            series = series.astype("string").map(var.recode).astype("category")
        if var.targets_from_column:
            population = frame.groupby(series, observed=True)[var.targets_from_column].first()
            shares = population / population.sum()
            targets[var.column] = {str(k): float(v) for k, v in shares.items()}
        else:
            assert var.targets is not None
            targets[var.column] = dict(var.targets)
        columns[var.column] = series
    if weighting.base_weight:
        columns[weighting.base_weight] = frame[weighting.base_weight]
    return targets, pd.DataFrame(columns, index=frame.index)


def weight_dataset(data: LoadedDataset, *, cap: Cap = None) -> RakeResult:
    """Rake a dataset to its dictionary's default targets."""
    targets, frame = default_targets(data)
    assert data.spec.weighting is not None
    return rake(frame, targets, cap=cap, base_weight=data.spec.weighting.base_weight)
