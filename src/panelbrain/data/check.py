"""A dataset's dictionary held against its data: what ``panelbrain datasets check`` reports and
what loading a dataset refuses on.

Every problem names its column and, where one value is at fault, the value: every coded value
has a label, each column holds its type, the design weight is positive and finite, the id is
unique, and the weighting targets sum to 1 over categories the data has. A dataset with a
problem is never served (:func:`panelbrain.data.catalog.load_dataset` raises
:class:`DatasetCheckError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from panelbrain.data.dictionary import Column, Dataset, Table, WeightingVariable
from panelbrain.errors import BadInputError

# Values named one by one per column and kind of problem; past that, one line counts the rest.
MAX_LISTED = 10
TARGET_SUM_TOLERANCE = 1e-6


class DatasetCheckError(BadInputError):
    """A dataset whose dictionary and data disagree: it is not served until they agree."""


@dataclass(frozen=True)
class Problem:
    """One disagreement between a dictionary and its data."""

    column: str | None
    message: str
    value: str | None = None

    def __str__(self) -> str:
        return f"{self.column}: {self.message}" if self.column else self.message


def code_text(value: Any) -> str:
    """A data value as the dictionary writes its code: ``1.0`` and ``1`` are both ``"1"``."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


def coded(series: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """A column as positions into its distinct codes: ``(positions, texts)``, position -1 where
    the value is missing, and a text None for a blank string (missing, as in SPSS string
    variables). Each distinct value is converted once, and no per-row text is made: on a wide
    panel the per-row object arrays cost more time and memory than the data itself."""
    positions, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = [None if isinstance(u, str) and not u.strip() else code_text(u) for u in uniques]
    return positions, texts


def codes_as_text(series: pd.Series) -> pd.Series:
    """A column's values as dictionary codes (object dtype, None where missing); blank strings
    count as missing, as in SPSS string variables."""
    positions, texts = coded(series)
    table = np.array([*texts, None], dtype=object)  # position -1 (missing) reads the last entry
    return pd.Series(table[positions], index=series.index, dtype=object)


def code_counts(series: pd.Series) -> dict[str, int]:
    """How many rows hold each code (missing and blank left out), most frequent first."""
    positions, texts = coded(series)
    per_unique = np.bincount(positions[positions >= 0], minlength=len(texts))
    counts: dict[str, int] = {}
    for text, n in zip(texts, per_unique.tolist(), strict=True):
        if text is not None and n:
            counts[text] = counts.get(text, 0) + n  # 1 and 1.0 in one column are one code
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _listed(column: str, kind: str, items: list[Problem]) -> list[Problem]:
    if len(items) <= MAX_LISTED:
        return items
    rest = len(items) - MAX_LISTED
    return [*items[:MAX_LISTED], Problem(column, f"... and {rest:,} more {kind}")]


def _rows(n: int) -> str:
    return f"{n:,} row{'s' if n != 1 else ''}"


def _rows_have(n: int) -> str:
    return f"{n:,} row has" if n == 1 else f"{n:,} rows have"


def _check_categorical(column: Column, series: pd.Series) -> list[Problem]:
    problems: list[Problem] = []
    listed = [v.value for v in column.values]
    for code in sorted({c for c in listed if listed.count(c) > 1}):
        problems.append(Problem(column.name, f"value {code!r} is listed twice in the dictionary", code))
    missing_codes = {v.value for v in column.missing}
    for code in sorted(missing_codes & set(listed)):
        problems.append(
            Problem(column.name, f"value {code!r} is listed both as a value and as missing", code)
        )
    known = set(listed) | missing_codes
    unlabelled = [
        Problem(column.name, f"value {code!r} has no label in the dictionary ({_rows(n)})", code)
        for code, n in code_counts(series).items()
        if code not in known
    ]
    return problems + _listed(column.name, "values without a label", unlabelled)


def _check_number(column: Column, series: pd.Series) -> list[Problem]:
    numbers = pd.to_numeric(series, errors="coerce")
    bad = series[numbers.isna() & series.notna()]
    problems = _listed(
        column.name,
        "values that are not numbers",
        [
            Problem(column.name, f"value {str(v)!r} is not a number ({_rows(int(n))})", str(v))
            for v, n in bad.value_counts().items()
        ],
    )
    if column.type == "integer":
        absent = int(series.isna().sum())
        if absent:
            problems.append(
                Problem(column.name, f"{_rows_have(absent)} no value; an integer column has none missing")
            )
        finite = numbers[numbers.notna() & np.isfinite(numbers.astype("float64"))]
        fractional = finite[finite != np.floor(finite)]
        problems += _listed(
            column.name,
            "values that are not whole numbers",
            [
                Problem(
                    column.name,
                    f"value {code_text(v)!r} is not a whole number ({_rows(int(n))})",
                    code_text(v),
                )
                for v, n in fractional.value_counts().items()
            ],
        )
    return problems


def weight_problems(name: str, series: pd.Series) -> list[Problem]:
    numbers = pd.to_numeric(series, errors="coerce").astype("float64")
    problems = []
    absent = int(numbers.isna().sum())
    if absent:
        problems.append(Problem(name, f"{_rows_have(absent)} no weight; every respondent needs one"))
    bad = numbers[numbers.notna() & ~(np.isfinite(numbers) & (numbers > 0))]
    problems += _listed(
        name,
        "weights that are not positive and finite",
        [
            Problem(
                name, f"weight {code_text(v)!r} is not positive and finite ({_rows(int(n))})", code_text(v)
            )
            for v, n in bad.value_counts().items()
        ],
    )
    return problems


def id_problems(name: str, series: pd.Series) -> list[Problem]:
    problems = []
    absent = int(series.isna().sum())
    if absent:
        problems.append(Problem(name, f"{_rows_have(absent)} no id"))
    counts = series.dropna().value_counts()
    repeated = counts[counts > 1]
    problems += _listed(
        name,
        "repeated ids",
        [
            Problem(name, f"id {code_text(v)!r} appears {int(n)} times; ids must be unique", code_text(v))
            for v, n in repeated.items()
        ],
    )
    return problems


def target_problems(table: Table, variable: WeightingVariable, frame: pd.DataFrame) -> list[Problem]:
    name = variable.column
    column = table.column(name)
    if column.type != "categorical":
        return [Problem(name, f"a weighting variable must be categorical, not {column.type}")]
    codes = codes_as_text(frame[name])
    missing_codes = {v.value for v in column.missing}
    codes = codes.where(~codes.isin(missing_codes), None)
    problems = []
    absent = int(codes.isna().sum())
    if absent:
        problems.append(
            Problem(name, f"{_rows_have(absent)} no value; weighting needs one for every respondent")
        )
    values = [v.value for v in column.values]
    if variable.recode is not None:
        for code in sorted(set(variable.recode) - set(values)):
            problems.append(Problem(name, f"recode names {code!r}, not a value of the column", code))
        for code in sorted(set(codes.dropna()) - set(variable.recode)):
            problems.append(Problem(name, f"value {code!r} is in the data but not in the recode", code))
        codes = codes.map(variable.recode)
    counts = codes.value_counts()
    if variable.targets_from_column is not None:
        source = variable.targets_from_column
        problems += [Problem(source, p.message, p.value) for p in weight_problems(source, frame[source])]
        return problems
    assert variable.targets is not None
    total = math.fsum(variable.targets.values())
    if abs(total - 1) > TARGET_SUM_TOLERANCE:
        problems.append(Problem(name, f"targets sum to {total:.6g}, not 1"))
    known = set(values) if variable.recode is None else set(variable.recode.values())
    for category, share in variable.targets.items():
        if category not in known:
            problems.append(
                Problem(name, f"target category {category!r} is not a value of the column", category)
            )
        elif category not in counts.index:
            problems.append(
                Problem(name, f"target category {category!r} has no respondents in the data", category)
            )
        if not (math.isfinite(share) and share > 0):
            problems.append(
                Problem(name, f"target for {category!r} is {share!r}; it must be positive", category)
            )
    for found, n in counts.items():
        code = str(found)
        if code not in variable.targets:
            message = f"value {code!r} is in the data ({_rows(int(n))}) but has no target"
            problems.append(Problem(name, message, code))
    return problems


def column_problems(column: Column, series: pd.Series) -> list[Problem]:
    """One column's problems on its own: its values against its type, and its role's rules."""
    if column.type == "categorical":
        problems = _check_categorical(column, series)
    else:
        problems = _check_number(column, series)
    if column.role == "design_weight":
        problems += weight_problems(column.name, series)
    elif column.role == "id":
        problems += id_problems(column.name, series)
    return problems


def weighting_columns(spec: Dataset) -> list[str]:
    """The columns the weighting checks read together (variables, their sources, base weight)."""
    weighting = spec.weighting
    if weighting is None:
        return []
    names = [weighting.base_weight] if weighting.base_weight else []
    for variable in weighting.variables:
        names += [variable.column] + ([variable.targets_from_column] if variable.targets_from_column else [])
    return list(dict.fromkeys(names))


def weighting_problems(spec: Dataset, frame: pd.DataFrame, absent: list[str]) -> list[Problem]:
    """The problems across columns: the base weight, and each target against the data."""
    table, weighting = spec.main_table, spec.weighting
    if weighting is None:
        return []
    problems = []
    base = weighting.base_weight
    if base and base not in absent and table.column(base).role != "design_weight":
        problems += weight_problems(base, frame[base])
    for variable in weighting.variables:
        if variable.column not in absent and variable.targets_from_column not in absent:
            problems += target_problems(table, variable, frame)
    return problems


def check_dataset(spec: Dataset, frame: pd.DataFrame) -> list[Problem]:
    """Every disagreement between ``spec``'s main table and ``frame`` (its data as stored).

    Examples
    --------
    >>> from panelbrain.data.catalog import read_table
    >>> from panelbrain.data.dictionary import load_dictionary
    >>> check_dataset(load_dictionary("ces11"), read_table("ces11"))
    []
    """
    table = spec.main_table
    if frame.empty:
        return [Problem(None, "the data has no rows")]
    absent = [c.name for c in table.columns if c.name not in frame.columns]
    problems = [Problem(name, "is in the dictionary but not in the data") for name in absent]
    for column in table.columns:
        if column.name not in absent:
            problems += column_problems(column, frame[column.name])
    return problems + weighting_problems(spec, frame, absent)
