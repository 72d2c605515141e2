"""The fidelity check: model-written text may only say what the computed table says.

Every number in the text (percentages, counts, bases, interval bounds, means) must be a figure
of the table as rounded in the text: "33.7 %" matches an estimate of 0.3372, "34 %" too, "33.9 %"
does not. Approximate words ("half", "a third", "one in five", "2 out of 3") must come within
five points of a share in the table. Every group the text names (a dictionary value: its label,
synonyms, a demonym such as "Albertans", or its code written in capitals) must be a group,
category or filter of the table. Only the interval's level ("95 % CI") and the test's ("5 %
level") are allowed besides. The check is deliberately strict: a refused narration costs a
model call, a wrong number published costs an analyst's decision.

Examples
--------
>>> problems = check("87.3 % of Albertans support a ban (n = 12,345).", plan, table, rows)  # doctest: +SKIP
>>> problems  # doctest: +SKIP
['87.3 % is not a percentage in the table', '12,345 is not a figure in the table', ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from panelbrain.data.dictionary import Table
from panelbrain.models import Plan

ALL = "All"
# How far an approximate word may sit from a share it describes ("about half" for 47 %).
VERBAL_TOLERANCE = 0.05
_LEVELS = re.compile(
    r"\b95\s?(?:%|per\s?cent|percent)\s*(?:CI\b|confidence|interval|margin)"
    r"|\b5\s?(?:%|per\s?cent|percent)\s*(?:level|significance)",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w)(\s?(?:%|per\s?cent\b|percent\b))?", re.IGNORECASE
)
_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_FRACTIONS = {"half": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "tenth": 10}
_COUNT = r"(\d+|" + "|".join(_WORDS) + r")"
_RATIO = re.compile(rf"\b{_COUNT}\s+(?:in|out\s+of)\s+(?:every\s+)?{_COUNT}\b", re.IGNORECASE)
_FRACTION = re.compile(
    r"\b(a|an|one|two|three|four|nine)[\s-]+(half|thirds?|quarters?|fourths?|fifths?|tenths?)\b",
    re.IGNORECASE,
)
_HALF = re.compile(r"\bhalf\b", re.IGNORECASE)
# Labels too common in prose to read as a group ("no group differs", "very few").
_PROSE = {"yes", "no", "not", "very", "none", "all", "other", "some", "any"}


@dataclass(frozen=True)
class _Name:
    column: str
    value: str
    pattern: re.Pattern[str]


def check(text: str, plan: Plan, table: Table, rows: list[dict[str, Any]]) -> list[str]:
    """Every reason ``text`` does not follow from ``rows`` (empty: it does)."""
    problems: list[str] = []
    text, named = _groups(text, plan, table, rows)
    problems += named
    text = _LEVELS.sub(" ", text)
    share = plan.intent != "mean"
    figures_of = [
        float(r[k]) for r in rows for k in ("estimate", "ci_low", "ci_high") if r.get(k) is not None
    ]
    estimates = [float(r["estimate"]) for r in rows if r.get("estimate") is not None]
    percentages = [v * 100 for v in figures_of] if share else []
    figures = [
        *percentages,
        *([] if share else figures_of),
        *(float(r["unweighted_base"]) for r in rows if r.get("unweighted_base") is not None),
        *(float(r["weighted_base"]) for r in rows if r.get("weighted_base") is not None),
    ]

    def verbal(phrase: str, value: float) -> None:
        # Against estimates only: an approximate word describes a share, never an interval bound.
        if not share or not any(abs(value - e) <= VERBAL_TOLERANCE for e in estimates):
            problems.append(
                f"{phrase!r} ({value:.0%}) is within {VERBAL_TOLERANCE:.0%} of no share in the table"
            )

    for pattern, reader in ((_RATIO, _ratio), (_FRACTION, _fraction)):
        for match in pattern.finditer(text):
            value = reader(match)
            if value is not None:
                verbal(match.group(0), value)
        text = pattern.sub(" ", text)
    for match in _HALF.finditer(text):
        verbal(match.group(0), 0.5)

    for match in _NUMBER.finditer(text):
        digits, decimals, percent = match.group(1), match.group(2) or "", match.group(3)
        value = float(digits.replace(",", "") + decimals)
        tolerance = 0.5 * 10 ** -(len(decimals) - 1 if decimals else 0) + 1e-9
        pool = percentages if percent else figures
        if not any(abs(value - abs(f)) <= tolerance for f in pool):
            kind = "a percentage" if percent else "a figure"
            problems.append(f"{match.group(0).strip()} is not {kind} in the table")
    return problems


def _ratio(match: re.Match[str]) -> float | None:
    top, bottom = (_count(match.group(i)) for i in (1, 2))
    return top / bottom if bottom else None


def _fraction(match: re.Match[str]) -> float:
    count = {"a": 1, "an": 1}.get(match.group(1).lower()) or _WORDS[match.group(1).lower()]
    return count / _FRACTIONS[match.group(2).lower().rstrip("s")]


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _WORDS[word.lower()]


def _groups(text: str, plan: Plan, table: Table, rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """Find every dictionary value the text names; those the table does not hold are problems.
    The names found are blanked out, so a label's digits ("18 to 24") are not read as figures."""
    allowed: set[tuple[str, str]] = {(f.column, v) for f in plan.filters for v in f.values}
    allowed |= {(plan.measure, str(r["category"])) for r in rows if r.get("category") is not None}
    allowed |= {(plan.measure, v) for v in plan.values}
    if plan.breakdown:
        allowed |= {(plan.breakdown, str(r["group"])) for r in rows if r["group"] != ALL}
    found: dict[tuple[int, int], list[_Name]] = {}
    for name in _names(table):
        for match in name.pattern.finditer(text):
            found.setdefault(match.span(), []).append(name)
    problems: list[str] = []
    blanked = list(text)
    # Longest names first, so "Not very important" is read as itself, not as "very important".
    taken: list[tuple[int, int]] = []
    for (start, end), names in sorted(found.items(), key=lambda item: item[0][0] - item[0][1]):
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        if not any((n.column, n.value) in allowed for n in names):
            first = names[0]
            label = table.column(first.column).value_label(first.value)
            problems.append(
                f"names {text[start:end]!r} ({table.column(first.column).label}: {label}), "
                "not a group of this table"
            )
        blanked[start:end] = " " * (end - start)
    return "".join(blanked), problems


def _names(table: Table) -> list[_Name]:
    names: list[_Name] = []
    for column in table.columns:
        if column.role in ("id", "auxiliary"):
            continue
        for value in column.values:
            phrases = [value.label, *value.synonyms]
            if value.value.isupper() and len(value.value) >= 2:  # a code as written: "QC", not "on"
                names.append(_Name(column.name, value.value, re.compile(rf"\b{re.escape(value.value)}\b")))
            for phrase in phrases:
                if phrase.lower() in _PROSE:
                    continue
                escaped = re.escape(phrase)
                if len(phrase) >= 5:
                    # Plurals and demonyms: Quebecers, Albertans, Ontarians, Newfoundlanders.
                    stem = re.escape(phrase[:-1]) if phrase[-1].lower() in "aeiou" else escaped
                    pattern = rf"(?<!\w)(?:{escaped}\w*|{stem}ans?)(?!\w)"
                else:
                    pattern = rf"(?<!\w){escaped}(?!\w)"
                names.append(_Name(column.name, value.value, re.compile(pattern, re.IGNORECASE)))
    return names
