"""Data dictionaries: what each dataset holds, what its values mean, how to weight it.

A dictionary is the contract between the data and everything that reads it: the SQL guard
allows only the tables and columns it lists, the offline agent resolves words through its labels
and synonyms, and the weight applier takes its default targets from it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from panelbrain.data import remote
from panelbrain.errors import DatasetNotFoundError, DictionaryError

ColumnType = Literal["categorical", "numeric", "integer"]
ColumnRole = Literal["id", "design_weight", "auxiliary"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueLabel(_Model):
    value: str
    label: str
    synonyms: tuple[str, ...] = ()


class Wording(_Model):
    """How an answer in plain English names a value of a column, from its label.

    ``{value}`` is the value's label in lower case, ``{Value}`` the label as written (for proper
    names). ``answer`` is what respondents with the value do ("say religion is {value}": "33.7% of
    women say religion is very important"); ``group`` names them as a group, and ``position`` says
    where that goes around the noun "respondents": ``noun`` replaces it ("women"), ``before``
    qualifies it ("rural respondents"), ``after`` follows it ("respondents in Quebec").
    """

    answer: str
    group: str = "{value}"
    position: Literal["noun", "before", "after"] = "after"

    @model_validator(mode="after")
    def _templates_name_the_value(self) -> Wording:
        for template in (self.answer, self.group):
            if "{value}" not in template and "{Value}" not in template:
                raise ValueError(f"wording {template!r} must contain {{value}} or {{Value}}")
        return self


class Column(_Model):
    name: str
    type: ColumnType
    label: str
    description: str = ""
    synonyms: tuple[str, ...] = ()
    values: tuple[ValueLabel, ...] = ()
    unit: str = ""
    role: ColumnRole | None = None
    wording: Wording | None = None

    @model_validator(mode="after")
    def _values_only_on_categoricals(self) -> Column:
        if self.type == "categorical" and not self.values:
            raise ValueError(f"categorical column {self.name!r} lists no values")
        if self.type != "categorical" and self.values:
            raise ValueError(f"{self.type} column {self.name!r} cannot list values")
        return self

    def value_label(self, value: str) -> str:
        for v in self.values:
            if v.value == value:
                return v.label
        return value


class Table(_Model):
    name: str
    label: str
    description: str = ""
    # Words a question may use for the table's rows ("Canadians"): the offline reader reads them
    # as "respondents", beside the generic ones it knows.
    synonyms: tuple[str, ...] = ()
    file: str | None = None
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


class WeightingVariable(_Model):
    """Default targets for one weighting variable, with the source they come from.

    ``recode`` maps data categories onto target categories, for sources coarser than the data
    (the census does not count "some post-secondary"). ``targets_from_column`` derives targets
    from an auxiliary column that holds each category's population.
    """

    column: str
    source: str
    targets: dict[str, float] | None = None
    targets_from_column: str | None = None
    recode: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind_of_target(self) -> WeightingVariable:
        if (self.targets is None) == (self.targets_from_column is None):
            raise ValueError(
                f"weighting variable {self.column!r}: give exactly one of targets, targets_from_column"
            )
        return self


class Weighting(_Model):
    table: str
    base_weight: str | None = None
    variables: tuple[WeightingVariable, ...]


class Generated(_Model):
    rows: int = Field(gt=0)
    seed: int


class Dataset(_Model):
    name: str
    title: str
    description: str
    source: str
    licence: str
    data_version: str
    freshness: Literal["historical", "real_time"]
    tables: tuple[Table, ...]
    weighting: Weighting | None = None
    generated: Generated | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> Dataset:
        names = {t.name for t in self.tables}
        if self.weighting is None:
            return self
        if self.weighting.table not in names:
            raise ValueError(f"weighting table {self.weighting.table!r} is not a table")
        table = self.table(self.weighting.table)
        wanted = [v.column for v in self.weighting.variables]
        wanted += [v.targets_from_column for v in self.weighting.variables if v.targets_from_column]
        if self.weighting.base_weight:
            wanted.append(self.weighting.base_weight)
        for name in wanted:
            if name not in table.column_names:
                raise ValueError(f"weighting refers to {name!r}, not a column of {table.name!r}")
        return self

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def main_table(self) -> Table:
        return self.tables[0]


def dataset_dir(name: str) -> Path:
    """The local folder of the dataset ``name`` (its dictionary and data files)."""
    return Path(str(resources.files("panelbrain.data") / "datasets" / name))


def local_dataset_names() -> list[str]:
    """Names of the datasets in local files (those shipped with panelbrain), sorted."""
    root = resources.files("panelbrain.data") / "datasets"
    return sorted(p.name for p in root.iterdir() if (p / "dictionary.yaml").is_file())


def dataset_names() -> list[str]:
    """Names of the datasets that can be asked about, sorted: those published to the datasets
    bucket when ``DATASETS_BUCKET`` is set (docs/adr/0025-datasets-in-s3.md), else the local ones."""
    if remote.bucket() is not None:
        return remote.dataset_names()
    return local_dataset_names()


@cache
def _read_dictionary(path: Path, name: str, data_version: str | None = None) -> Dataset:
    """The dictionary at ``path``; a published one carries its content hash as ``data_version``."""
    try:
        spec = Dataset.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise DictionaryError(f"data dictionary of {name!r} is invalid: {exc}") from exc
    return spec if data_version is None else spec.model_copy(update={"data_version": data_version})


def load_dictionary(name: str, version: str | None = None) -> Dataset:
    """Load and validate the data dictionary of the dataset ``name``.

    With ``DATASETS_BUCKET`` set, the dictionary is the published one, at ``version`` (a
    query's pinned version) or the current one, and its ``data_version`` is the published
    content hash; otherwise it is read from the local files and ``version`` is not used.

    Raises
    ------
    DatasetNotFoundError
        No dataset of that name ships with panelbrain (or is published to the bucket).
    DictionaryError
        The dictionary file is malformed (a packaging bug, never user input).

    Examples
    --------
    >>> load_dictionary("ces11").main_table.column("gender").value_label("Female")
    'Women'
    """
    published = remote.remote_dataset_dir(name, version)
    if published is not None:
        return _read_dictionary(published.directory / "dictionary.yaml", name, published.data_version)
    if name not in local_dataset_names():
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; available: {', '.join(local_dataset_names())}",
            dataset=name,
        )
    return _read_dictionary(dataset_dir(name) / "dictionary.yaml", name)
