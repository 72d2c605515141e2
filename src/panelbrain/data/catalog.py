"""The datasets: their frames, their default targets, their weights."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from panelbrain.data.dictionary import Dataset, Table, dataset_dir, load_dictionary
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


def _typed(frame: pd.DataFrame, table: Table, dataset: str) -> pd.DataFrame:
    """Give every categorical column the dictionary's categories, in the dictionary's order."""
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        raise DictionaryError(f"{dataset}: the data has no column {missing[0]!r}")
    out: dict[str, object] = {}
    for column in table.columns:
        series = frame[column.name]
        if column.type == "categorical":
            categories = [v.value for v in column.values]
            typed = pd.Categorical(series.astype("string"), categories=categories)
            unknown = series[typed.isna() & series.notna()]
            if len(unknown):
                raise DictionaryError(
                    f"{dataset}: value {unknown.iloc[0]!r} of {column.name!r} is not in the dictionary"
                )
            out[column.name] = typed
        elif column.type == "integer":
            out[column.name] = series.astype("int64")
        else:
            out[column.name] = series.astype("float64")
    return pd.DataFrame(out, index=frame.index)


def load_dataset(
    name: str, *, rows: int | None = None, seed: int | None = None, version: str | None = None
) -> LoadedDataset:
    """Load a dataset's main table; ``rows`` and ``seed`` apply to generated ones, ``version``
    to a published one (a query's pinned version; default the current one).

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
    # Published (DATASETS_BUCKET set: Lambda, the local engine): the version's files, fetched
    # once into /tmp. Otherwise the local files.
    published = remote_dataset_dir(name, spec.data_version, data=True)
    folder = published.directory if published is not None else dataset_dir(name)
    raw = pd.read_csv(folder / table.file)
    return LoadedDataset(spec, _typed(raw, table, name), f"{name}-{spec.data_version}")


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
