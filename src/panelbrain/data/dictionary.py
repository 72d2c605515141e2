"""Data dictionaries: what each dataset holds, what its values mean, how to weight it.

A dictionary is the contract between the data and everything that reads it: the SQL guard
allows only the tables and columns it lists, the offline agent resolves words through its labels
and synonyms, and the weight applier takes its default targets from it.

Datasets live in two places with one layout, ``<folder>/<name>/dictionary.yaml`` beside the data
file its table names: the datasets built into the package, and the local datasets directory that
``panelbrain datasets add`` writes (``PANELBRAIN_DATASETS``, else ``$XDG_DATA_HOME/panelbrain/
datasets``, else ``~/.local/share/panelbrain/datasets``). :func:`dataset_dir` is the one place
that decides where a dataset's files are.
"""

from __future__ import annotations

import os
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
    # Codes that mean "no answer" (a fieldwork file's user-missing codes: "Don't know" 8): read
    # as missing, so they are never counted as an answer nor listed among the values.
    missing: tuple[ValueLabel, ...] = ()
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


DICTIONARY_FILE = "dictionary.yaml"


def builtin_datasets_dir() -> Path:
    """The datasets shipped inside the package (always files: an install or a function's build)."""
    return Path(str(resources.files("panelbrain.data") / "datasets"))


def local_datasets_dir() -> Path | None:
    """Where ``panelbrain datasets add`` keeps datasets: ``PANELBRAIN_DATASETS``, else the XDG
    data directory (``$XDG_DATA_HOME`` or ``~/.local/share``) under ``panelbrain/datasets``.

    None when neither the variables nor a home directory say where (a Lambda sandbox has no
    home): then only the built-in datasets exist.
    """
    explicit = os.environ.get("PANELBRAIN_DATASETS")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec: a relative $XDG_DATA_HOME is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "panelbrain" / "datasets"
    try:
        return Path.home() / ".local" / "share" / "panelbrain" / "datasets"
    except RuntimeError:
        return None


def _names_in(folder: Path | None) -> list[str]:
    if folder is None or not folder.is_dir():
        return []
    # A leading dot marks the staging folder of an `add` under way: never a dataset.
    return [
        p.name for p in folder.iterdir() if not p.name.startswith(".") and (p / DICTIONARY_FILE).is_file()
    ]


def builtin_dataset_names() -> list[str]:
    """Names of the datasets shipped with panelbrain, sorted."""
    return sorted(_names_in(builtin_datasets_dir()))


def local_dataset_names() -> list[str]:
    """Names of the datasets in local files, built in or added, sorted (what can be published)."""
    return sorted(set(builtin_dataset_names()) | set(_names_in(local_datasets_dir())))


def dataset_names() -> list[str]:
    """Names of the datasets that can be asked about, sorted: those published to the datasets
    bucket when ``DATASETS_BUCKET`` is set (docs/adr/0025-datasets-in-s3.md), else the local ones."""
    if remote.bucket() is not None:
        return remote.dataset_names()
    return local_dataset_names()


def dataset_dir(name: str) -> Path:
    """The local folder holding the dataset ``name``: its ``dictionary.yaml`` and its data file.

    The one local lookup every reader goes through. A built-in dataset wins over a local folder
    of the same name (``datasets add`` refuses such names, so that only happens by hand).

    Raises
    ------
    DatasetNotFoundError
        No dataset of that name, built in or local.
    """
    if name in builtin_dataset_names():
        return builtin_datasets_dir() / name
    local = local_datasets_dir()
    if local is not None and not name.startswith(".") and (local / name / DICTIONARY_FILE).is_file():
        return local / name
    raise DatasetNotFoundError(
        f"unknown dataset {name!r}; available: {', '.join(local_dataset_names())}",
        dataset=name,
    )


def load_dictionary(name: str, version: str | None = None) -> Dataset:
    """Load and validate the data dictionary of the dataset ``name``.

    With ``DATASETS_BUCKET`` set, the dictionary is the published one, at ``version`` (a
    query's pinned version) or the current one, and its ``data_version`` is the published
    content hash; otherwise it is read from the local files and ``version`` is not used.
    A local dictionary is parsed once per file version: an edited one (a synonym added) is
    read again.

    Raises
    ------
    DatasetNotFoundError
        No dataset of that name, built in, local or published.
    DictionaryError
        The dictionary file is malformed.

    Examples
    --------
    >>> load_dictionary("ces11").main_table.column("gender").value_label("Female")
    'Women'
    """
    published = remote.remote_dataset_dir(name, version)
    if published is not None:
        return _parse_dictionary(
            name, str(published.directory / DICTIONARY_FILE), None, published.data_version
        )
    path = dataset_dir(name) / DICTIONARY_FILE
    status = path.stat()
    return _parse_dictionary(name, str(path), (status.st_mtime_ns, status.st_size), None)


@cache
def _parse_dictionary(
    name: str, where: str, stamp: tuple[int, int] | None, data_version: str | None
) -> Dataset:
    # Keyed by where the file is and its version (``stamp`` locally, ``data_version`` published).
    path = Path(where)
    try:
        spec = Dataset.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise DictionaryError(f"data dictionary {path} is not valid YAML{at}: {problem}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DictionaryError(
            f"data dictionary {path} is invalid: {field}: {first['msg']} (got {first.get('input')!r}){more}"
        ) from exc
    if spec.name != name:
        raise DictionaryError(f"data dictionary {path} names the dataset {spec.name!r}, not {name!r}")
    return spec if data_version is None else spec.model_copy(update={"data_version": data_version})
