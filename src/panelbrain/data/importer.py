"""``panelbrain datasets add``: an analyst's own survey file in, a drafted dictionary and its data
as Parquet out, in the local datasets directory.

The file's own metadata drafts the dictionary (the same schema as the built-in datasets):
variable labels become column labels; value labels become values and labels; the measurement
level and storage type decide the column type; user-missing codes become the column's
``missing`` list (read as no answer). What the file does not say is reported, never guessed
silently: columns without labels, numeric codes without value labels, free text and dates that
are not exposed, names changed to be SQL-safe. ADR 0024 gives the rules.

The dataset is written into a staging folder inside the datasets directory and renamed into
place at the end, so a failed ``add`` leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from panelbrain.data.catalog import read_file
from panelbrain.data.check import (
    Problem,
    check_dataset,
    code_text,
    codes_as_text,
    id_problems,
    target_problems,
    weight_problems,
)
from panelbrain.data.dictionary import (
    DICTIONARY_FILE,
    Column,
    ColumnRole,
    ColumnType,
    Dataset,
    Table,
    ValueLabel,
    Weighting,
    WeightingVariable,
    builtin_dataset_names,
    dataset_names,
    local_datasets_dir,
)
from panelbrain.errors import BadInputError

# suffix -> (pyreadstat reader, what the format is called in messages)
STAT_FORMATS = {
    ".sav": ("read_sav", "SPSS"),
    ".zsav": ("read_sav", "SPSS (compressed)"),
    ".por": ("read_por", "SPSS portable"),
    ".dta": ("read_dta", "Stata"),
    ".sas7bdat": ("read_sas7bdat", "SAS"),
    ".xpt": ("read_xport", "SAS transport"),
}
SUPPORTED = (*STAT_FORMATS, ".csv", ".parquet")
# A text column with at most this many distinct answers (and each used twice on average) reads
# as categorical; past it, as free text, which is not exposed.
MAX_TEXT_CATEGORIES = 50
# A numeric column without value labels with at most this many distinct values looks coded.
CODED_LOOKING = 12
CHUNK_ROWS = 100_000
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# (stage, done, total): rows read so far, out of total when the file says.
Progress = Callable[[str, int, int | None], None]


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


@dataclass(frozen=True)
class Source:
    """A file's rows and what it says about them (empty for CSV and Parquet)."""

    path: Path
    kind: str
    frame: pd.DataFrame
    labels: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    measures: dict[str, str] = field(default_factory=dict)
    # column -> [(low, high)]: SPSS user-missing values and ranges (discrete: low == high)
    missing_ranges: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)
    title: str | None = None


@dataclass(frozen=True)
class Note:
    """Something the file did not say, or a change made to it: reported after ``add``."""

    kind: str
    column: str
    detail: str = ""


@dataclass(frozen=True)
class Added:
    """What ``add`` wrote, what it could not infer, and the dataset's check."""

    name: str
    path: Path
    spec: Dataset
    rows: int
    renamed: dict[str, str]
    notes: list[Note]
    problems: list[Problem]


# ---------------------------------------------------------------------------------------------
# Reading


def _stat_error_types() -> tuple[type[BaseException], ...]:
    import pyreadstat

    return (pyreadstat.ReadstatError, pyreadstat.PyreadstatError, OSError, ValueError, UnicodeError)


def _read_stat(path: Path, suffix: str, progress: Progress) -> Source:
    import pyreadstat

    reader_name, kind = STAT_FORMATS[suffix]
    reader = getattr(pyreadstat, reader_name)
    # SPSS user-missing codes are kept as codes here: the drafted dictionary lists them as
    # missing, so the data stays as delivered and the dictionary decides how it reads.
    options: dict[str, Any] = {"user_missing": True} if reader_name == "read_sav" else {}
    try:
        _, meta = reader(str(path), metadataonly=True, **options)
        total = meta.number_rows if isinstance(meta.number_rows, int) and meta.number_rows >= 0 else None
        chunks = []
        done = 0
        progress("reading", 0, total)
        for chunk, _ in pyreadstat.read_file_in_chunks(reader, str(path), chunksize=CHUNK_ROWS, **options):
            chunks.append(chunk)
            done += len(chunk)
            progress("reading", done, total)
    except _stat_error_types() as exc:
        raise BadInputError(
            f"cannot read {str(path)!r}: not a readable {kind} file ({_first_line(exc)})"
        ) from None
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=meta.column_names)
    value_labels = {
        column: {code_text(code): str(label) for code, label in labels.items()}
        for column, labels in (meta.variable_value_labels or {}).items()
    }
    missing = {
        column: [(r["lo"], r["hi"]) for r in ranges] for column, ranges in (meta.missing_ranges or {}).items()
    }
    return Source(
        path=path,
        kind=kind,
        frame=frame,
        labels={c: str(label) for c, label in (meta.column_names_to_labels or {}).items() if label},
        value_labels=value_labels,
        measures=dict(meta.variable_measure or {}),
        missing_ranges=missing,
        title=meta.file_label or None,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_source(path: Path, progress: Progress = _no_progress) -> Source:
    """Read a survey file with whatever labels it carries.

    Raises
    ------
    BadInputError
        The file is missing, of an unsupported type, or unreadable as its type.
    """
    if not path.is_file():
        raise BadInputError(f"file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in STAT_FORMATS:
        return _read_stat(path, suffix, progress)
    if suffix not in SUPPORTED:
        raise BadInputError(
            f"cannot add {str(path)!r}: {suffix or 'no extension'} is not a supported file type "
            f"({', '.join(SUPPORTED)})"
        )
    progress("reading", 0, None)
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise BadInputError(
            f"cannot read {str(path)!r}: not a readable {kind} file ({_first_line(exc)})"
        ) from None
    progress("reading", len(frame), len(frame))
    return Source(path=path, kind="CSV" if suffix == ".csv" else "Parquet", frame=frame)


# ---------------------------------------------------------------------------------------------
# Names


def _reserved_words() -> set[str]:
    import duckdb

    with duckdb.connect() as con:
        rows = con.execute("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'")
        return {str(r[0]).lower() for r in rows.fetchall()}


def sql_safe_names(names: list[str]) -> dict[str, str]:
    """Each column name made a plain, unique, lower-case SQL identifier (not a reserved word)."""
    reserved = _reserved_words()
    safe: dict[str, str] = {}
    taken: set[str] = set()
    for position, name in enumerate(names, start=1):
        text = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
        if not text:
            text = f"column_{position}"
        if text[0].isdigit():
            text = f"c_{text}"
        if text in reserved:
            text = f"{text}_"
        candidate, n = text, 2
        while candidate in taken:
            candidate, n = f"{text}_{n}", n + 1
        taken.add(candidate)
        safe[str(name)] = candidate
    return safe


def _check_name(name: str, what: str) -> None:
    if not NAME_PATTERN.match(name) or name in _reserved_words():
        raise BadInputError(
            f"{what} {name!r} must be a lower-case SQL name: a letter, then letters, digits or "
            "underscores (at most 63), not an SQL keyword"
        )


# ---------------------------------------------------------------------------------------------
# Drafting


def _is_temporal(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series) or isinstance(series.dtype, pd.PeriodDtype):
        return True
    if series.dtype == object:
        first = series.dropna().head(1)
        return bool(len(first)) and isinstance(first.iloc[0], dt.date | dt.time)
    return False


def _in_ranges(code: str, ranges: list[tuple[Any, Any]]) -> bool:
    for low, high in ranges:
        if isinstance(low, str) or isinstance(high, str):
            if str(low) <= code <= str(high):
                return True
            continue
        try:
            number = float(code)
        except ValueError:
            continue
        if float(low) <= number <= float(high):
            return True
    return False


def _code_order(codes: list[str]) -> list[str]:
    def key(code: str) -> tuple[int, float, str]:
        try:
            return (0, float(code), code)
        except ValueError:
            return (1, 0.0, code)

    return sorted(codes, key=key)


def _humanised(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


@dataclass
class _Draft:
    columns: list[Column]
    keep: list[str]  # source column names stored, in order
    notes: list[Note]


def _draft_column(source: Source, original: str, name: str, notes: list[Note]) -> Column | None:
    series = source.frame[original]
    if _is_temporal(series):
        notes.append(Note("dates and times are not exposed", name))
        return None
    label = source.labels.get(original) or _humanised(name)
    codes = codes_as_text(series)
    present = list(pd.unique(codes.dropna()))
    ranges = source.missing_ranges.get(original, [])
    labelled = source.value_labels.get(original, {})
    missing_codes = sorted({c for c in [*labelled, *present] if _in_ranges(c, ranges)}) if ranges else []
    missing = tuple(ValueLabel(value=c, label=labelled.get(c, c)) for c in _code_order(missing_codes))
    if missing:
        shown = ", ".join(f"{v.value} {v.label!r}" for v in missing)
        notes.append(Note("user-missing codes, read as no answer", name, shown))
    answers = [c for c in present if c not in missing_codes]
    labels = {c: text for c, text in labelled.items() if c not in missing_codes}
    unlabelled = [c for c in answers if c not in labels]
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    measure = source.measures.get(original, "unknown")

    if labels and not (numeric and measure == "scale" and unlabelled):
        if unlabelled:
            notes.append(
                Note(
                    "codes without value labels (not served until labelled or listed as missing)",
                    name,
                    ", ".join(_code_order(unlabelled)[:10]) + (" ..." if len(unlabelled) > 10 else ""),
                )
            )
        values = tuple(ValueLabel(value=c, label=labels[c]) for c in _code_order(list(labels)))
        return Column(name=name, type="categorical", label=label, values=values, missing=missing)
    if labels:
        notes.append(Note("scale with labels on some values only: read as numbers, labels dropped", name))
    if numeric:
        numbers = pd.to_numeric(series, errors="coerce")
        numbers = numbers[~codes.isin(missing_codes)]
        finite = numbers.dropna()
        whole = (
            bool(len(finite))
            and bool(np.all(np.isfinite(finite)))
            and bool((finite == np.floor(finite)).all())
        )
        kind: ColumnType = "integer" if whole and not numbers.isna().any() and not missing else "numeric"
        if measure in ("nominal", "ordinal") or (
            not source.value_labels and whole and 1 < len(answers) <= CODED_LOOKING
        ):
            notes.append(
                Note(
                    f"numeric codes without value labels (typed {kind}; add values to make it categorical)",
                    name,
                    f"{len(answers)} distinct",
                )
            )
        return Column(name=name, type=kind, label=label, missing=missing)
    # Text (or true/false) without value labels: categories if few and repeated, else free text.
    if isinstance(series.dtype, pd.CategoricalDtype):
        ordered = [code_text(c) for c in series.cat.categories if code_text(c) in answers]
    else:
        ordered = sorted(answers)
    used = len(codes.dropna())
    if not ordered:
        notes.append(Note("empty: no values, not exposed", name))
        return None
    if len(ordered) > MAX_TEXT_CATEGORIES or len(ordered) * 2 > used:
        notes.append(Note("free text, not exposed", name, f"{len(ordered):,} distinct answers"))
        return None
    notes.append(Note("values without value labels (each value is its own label)", name))
    values = tuple(ValueLabel(value=c, label=c) for c in ordered)
    return Column(name=name, type="categorical", label=label, values=values, missing=missing)


def _draft_columns(source: Source, renamed: dict[str, str]) -> _Draft:
    notes: list[Note] = []
    columns: list[Column] = []
    keep: list[str] = []
    for original in source.frame.columns:
        column = _draft_column(source, str(original), renamed[str(original)], notes)
        if column is not None and not source.labels.get(str(original)):
            notes.append(Note("no variable label (label drafted from the name)", column.name))
        if column is not None:
            columns.append(column)
            keep.append(str(original))
    return _Draft(columns, keep, notes)


def _resolve_column(text: str, renamed: dict[str, str], draft: _Draft, where: str) -> Column:
    name = renamed.get(text, text)
    for column in draft.columns:
        if column.name == name:
            return column
    if name in renamed.values():
        raise BadInputError(f"{where}: column {text!r} is not exposed (free text or dates)")
    known = ", ".join(c.name for c in draft.columns)
    raise BadInputError(f"{where}: unknown column {text!r} (columns: {known})")


def _with_role(draft: _Draft, name: str, role: ColumnRole, kind: str | None = None) -> None:
    for i, column in enumerate(draft.columns):
        if column.name == name:
            update: dict[str, Any] = {"role": role}
            if kind is not None:
                update["type"] = kind
            draft.columns[i] = column.model_copy(update=update)


def _refuse(where: str, problems: list[Problem]) -> None:
    """Raise the first problem, named by the option or file at fault (``where``)."""
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        first = problems[0]
        # An option names its column already: "--weight 'w': weight '0' is not positive ...".
        text = first.message if first.column and repr(first.column) in where else str(first)
        raise BadInputError(f"{where}: {text}{more}")


def _category(column: Column, text: Any, where: str) -> str:
    wanted = code_text(text)
    for v in column.values:
        if wanted == v.value:
            return v.value
    for v in column.values:
        if wanted.casefold() == v.label.casefold():
            return v.value
    known = ", ".join(f"{v.value} ({v.label})" if v.label != v.value else v.value for v in column.values)
    raise BadInputError(f"{where}: {column.name!r} has no category {wanted!r} (its values: {known})")


class _NoBoolLoader(yaml.SafeLoader):
    """YAML without its 1.1 booleans: in a targets file ``{Yes: 0.4, No: 0.6}`` names the
    categories Yes and No, not true and false."""


_NoBoolLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_targets(path: Path, renamed: dict[str, str], draft: _Draft) -> list[WeightingVariable]:
    """A targets file, its columns and categories resolved against the draft (by name or label).

    Two forms: ``{column: {category: share}}``, or ``variables:`` entries as a dictionary's
    ``weighting`` section writes them (``column``, ``source``, ``targets`` or
    ``targets_from_column``, ``recode``).
    """
    where = f"targets file {str(path)!r}"
    if not path.is_file():
        raise BadInputError(f"{where} does not exist")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoBoolLoader)
    except (yaml.YAMLError, UnicodeError) as exc:
        raise BadInputError(f"{where} is not valid YAML: {_first_line(exc)}") from None
    if isinstance(raw, dict) and "variables" in raw:
        entries = raw["variables"]
    elif isinstance(raw, dict) and raw:
        entries = [{"column": column, "targets": shares} for column, shares in raw.items()]
    else:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not entries:
        raise BadInputError(
            f"{where} must map each column to its category shares, or list `variables:` "
            "(column, source, targets or targets_from_column, recode)"
        )
    variables = []
    for entry in entries:
        column = _resolve_column(str(entry.get("column")), renamed, draft, where)
        if column.type != "categorical":
            raise BadInputError(
                f"{where}: {column.name!r} is {column.type}; weighting needs a categorical column"
            )
        out: dict[str, Any] = {
            "column": column.name,
            "source": str(entry.get("source") or f"targets file {path.name}"),
        }
        recode = entry.get("recode")
        if recode is not None:
            if not isinstance(recode, dict):
                raise BadInputError(
                    f"{where}: recode of {column.name!r} must map categories to target categories"
                )
            out["recode"] = {_category(column, k, where): str(v) for k, v in recode.items()}
        if entry.get("targets_from_column") is not None:
            source = _resolve_column(str(entry["targets_from_column"]), renamed, draft, where)
            if source.type == "categorical":
                raise BadInputError(f"{where}: targets_from_column {source.name!r} must hold numbers")
            out["targets_from_column"] = source.name
        shares = entry.get("targets")
        if shares is not None:
            if not isinstance(shares, dict) or not all(isinstance(s, int | float) for s in shares.values()):
                raise BadInputError(f"{where}: targets of {column.name!r} must map categories to shares")
            if recode is None:
                out["targets"] = {_category(column, k, where): float(s) for k, s in shares.items()}
            else:
                produced = set(out["recode"].values())
                for k in shares:
                    if str(k) not in produced:
                        raise BadInputError(
                            f"{where}: {column.name!r} target category {str(k)!r} is not one its recode "
                            f"produces ({', '.join(sorted(produced))})"
                        )
                out["targets"] = {str(k): float(s) for k, s in shares.items()}
        try:
            variables.append(WeightingVariable.model_validate(out))
        except ValidationError as exc:
            raise BadInputError(f"{where}: {column.name!r}: {exc.errors()[0]['msg']}") from None
    return variables


def _content_version(path: Path) -> str:
    with path.open("rb") as handle:
        return f"sha256-{hashlib.file_digest(handle, 'sha256').hexdigest()[:16]}"


class _Flow(dict[str, Any]):
    """A mapping written on one line: a value and its label, a set of targets."""


class _Dumper(yaml.SafeDumper):
    # Lists indented under their key, as the built-in dictionaries are written.
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_Dumper.add_representer(
    _Flow,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True),
)


def dictionary_yaml(spec: Dataset) -> str:
    """``spec`` as YAML in the built-in dictionaries' layout: one value per line."""
    document = spec.model_dump(mode="json", exclude_defaults=True)
    for table in document["tables"]:
        for column in table["columns"]:
            for key in ("values", "missing"):
                if key in column:
                    column[key] = [_Flow(v) for v in column[key]]
    for variable in document.get("weighting", {}).get("variables", []):
        for key in ("targets", "recode"):
            if key in variable:
                variable[key] = _Flow(variable[key])
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


HEADER = """\
# Drafted by `panelbrain datasets add` from {file} ({kind}). Review it: labels,
# synonyms (words a question may use for a column or a value), wording, source and
# licence; then `panelbrain datasets check {name}`: a dataset is served only while its
# check passes. data_version is the SHA-256 of {data} (first 16 hex digits): it
# keys the result cache, so replace it whenever the data file changes.
"""


def add_dataset(
    path: Path,
    name: str,
    *,
    weight: str | None = None,
    id_column: str | None = None,
    targets: Path | None = None,
    table: str | None = None,
    progress: Progress = _no_progress,
) -> Added:
    """Draft a dictionary for the survey at ``path``, store its data as Parquet, and check both.

    Raises
    ------
    BadInputError
        Unreadable or unsupported file, no rows, a name taken or not SQL-safe, a weight column
        with missing, zero or negative weights, a repeated id, a targets file naming an unknown
        column or category (or shares not summing to 1). Nothing is written then.
    """
    _check_name(name, "--name")
    table_name = table or name
    _check_name(table_name, "--table")
    if name in dataset_names():
        where = "built into panelbrain" if name in builtin_dataset_names() else "already added"
        raise BadInputError(f"a dataset named {name!r} exists ({where}); choose another --name")
    home = local_datasets_dir()
    if home is None:
        raise BadInputError("no datasets directory: set PANELBRAIN_DATASETS (or HOME, or XDG_DATA_HOME)")

    source = read_source(path, progress)
    frame = source.frame
    if frame.empty:
        raise BadInputError(f"{str(path)!r} has no rows")
    progress("drafting", 0, None)
    renamed = sql_safe_names([str(c) for c in frame.columns])
    draft = _draft_columns(source, renamed)
    if not draft.columns:
        raise BadInputError(f"{str(path)!r}: no column can be exposed (only free text or dates)")
    stored = frame[draft.keep].rename(columns=renamed)

    weight_name = None
    if weight is not None:
        column = _resolve_column(weight, renamed, draft, "--weight")
        weight_name = column.name
        if column.type == "categorical" or not pd.api.types.is_numeric_dtype(stored[column.name]):
            raise BadInputError(
                f"--weight {column.name!r} holds categories (text or labelled codes), not weights"
            )
        _refuse(f"--weight {column.name!r}", weight_problems(column.name, stored[column.name]))
        _with_role(draft, column.name, "design_weight", "numeric")
    if id_column is not None:
        column = _resolve_column(id_column, renamed, draft, "--id")
        if column.type != "integer":
            raise BadInputError(f"--id {column.name!r} must hold whole numbers with none missing")
        _refuse(f"--id {column.name!r}", id_problems(column.name, stored[column.name]))
        _with_role(draft, column.name, "id")
    variables = read_targets(targets, renamed, draft) if targets is not None else []
    for variable in variables:
        if variable.targets_from_column:
            _with_role(draft, variable.targets_from_column, "auxiliary")
    if weight_name is not None and not variables:
        draft.notes.append(
            Note(
                "weighting",
                weight_name,
                "a design weight without --targets is recorded but not applied: estimates are weighted "
                "only to targets (add a weighting section, or add again with --targets)",
            )
        )

    spec_document: dict[str, Any] = {
        "name": name,
        "title": source.title or name,
        "description": f"Added from {path.name} ({source.kind}, {len(frame):,} rows).",
        "source": f"{path.name}, added with `panelbrain datasets add` on {dt.date.today().isoformat()}.",
        "licence": "Not stated in the file: state the terms the data may be used under.",
        "data_version": "pending",
        "freshness": "historical",
        "tables": [
            Table(
                name=table_name,
                label=f"{source.title or name} respondents",
                description="One row per respondent.",
                file=f"{table_name}.parquet",
                columns=tuple(draft.columns),
            ).model_dump(mode="json", exclude_defaults=True)
        ],
    }
    if variables:
        weighting = Weighting(table=table_name, base_weight=weight_name, variables=tuple(variables))
        spec_document["weighting"] = weighting.model_dump(mode="json", exclude_defaults=True)
        drafted = Dataset.model_validate(spec_document).main_table
        problems = [p for v in weighting.variables for p in target_problems(drafted, v, stored)]
        _refuse(f"targets file {str(targets)!r}", problems)
    draft.notes.append(Note("source and licence are not in the file: fill them in", DICTIONARY_FILE))

    try:
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".adding-{name}-", dir=home))
    except OSError as exc:
        raise BadInputError(f"cannot write to the datasets directory {str(home)!r}: {exc.strerror}") from None
    try:
        progress("writing", 0, None)
        data_file = staging / f"{table_name}.parquet"
        stored.to_parquet(data_file, index=False)
        spec_document["data_version"] = _content_version(data_file)
        spec = Dataset.model_validate(spec_document)
        text = HEADER.format(file=path.name, kind=source.kind, name=name, data=data_file.name)
        text += dictionary_yaml(spec)
        (staging / DICTIONARY_FILE).write_text(text, encoding="utf-8")
        progress("checking", 0, None)
        # The check reads the file back as every reader will (DuckDB), not the frame in memory.
        problems = check_dataset(spec, read_file(data_file))
        target = home / name
        if target.exists():
            raise BadInputError(
                f"a dataset named {name!r} appeared at {target} meanwhile; choose another --name"
            )
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    moved = {
        original: safe for original, safe in renamed.items() if original != safe and original in draft.keep
    }
    return Added(name, target, spec, len(stored), moved, draft.notes, problems)
