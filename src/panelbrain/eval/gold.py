"""Gold sets: questions with the reading an analyst means, or the failure they must end in.

A set is a YAML file in ``panelbrain/eval/sets/`` (format at the top of ``gold.yaml``). Loading
checks every reading against the dataset's dictionary, so a gold reading that names a column or
code the data does not have is refused at load time, not scored as the pipeline's mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Literal

import yaml

from panelbrain.data.dictionary import Dataset, load_dictionary
from panelbrain.errors import BadInputError

Kind = Literal["answer", "fail", "flag"]
_READING_KEYS = ("share", "mean", "distribution")


@dataclass(frozen=True)
class Reading:
    """A plan reduced to what decides its numbers. Filters are (column, kept codes) with a
    negation already turned into the codes it keeps, so "not in Quebec" and "in the nine other
    provinces" compare equal, as they select the same respondents."""

    intent: str
    measure: str
    values: frozenset[str]
    breakdown: str | None
    filters: tuple[tuple[str, frozenset[str]], ...]
    weighted: bool

    def differences(self, other: Reading) -> list[str]:
        """What ``other`` (the pipeline's reading) got wrong, one phrase per field."""
        out = []
        for name in ("intent", "measure", "values", "breakdown", "filters", "weighted"):
            want, got = getattr(self, name), getattr(other, name)
            if want != got:
                out.append(f"{name}: wanted {_show(want)}, got {_show(got)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "measure": self.measure,
            "values": sorted(self.values),
            "breakdown": self.breakdown,
            "filters": {c: sorted(v) for c, v in self.filters},
            "weighted": self.weighted,
        }


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return "[" + ", ".join(sorted(value)) + "]"
    if isinstance(value, tuple):
        return "{" + "; ".join(f"{c}: {_show(v)}" for c, v in value) + "}" if value else "{}"
    return repr(value)


def _kept(spec: Dataset, column: str, codes: list[str], negated: bool) -> frozenset[str]:
    every = [v.value for v in spec.main_table.column(column).values]
    chosen = frozenset(codes)
    return frozenset(every) - chosen if negated else chosen


def _negated(entry: dict[str, Any]) -> bool:
    # The plan's filter model may carry its negation under any of these names.
    return any(bool(entry.get(k)) for k in ("negate", "negated", "exclude", "not"))


def reading_of_plan(plan: dict[str, Any], spec: Dataset) -> Reading:
    """The pipeline's plan (as the synthesis records it) as a :class:`Reading`. Two filters on
    one column both apply (the data processor keeps rows that pass every filter): their codes
    intersect."""
    filters: dict[str, frozenset[str]] = {}
    for entry in plan.get("filters") or []:
        column = str(entry["column"])
        known = {c.name for c in spec.main_table.columns}
        kept = (
            _kept(spec, column, [str(v) for v in entry["values"]], _negated(entry))
            if column in known
            else frozenset(str(v) for v in entry["values"])
        )
        filters[column] = filters[column] & kept if column in filters else kept
    return Reading(
        intent=str(plan["intent"]),
        measure=str(plan["measure"]),
        values=frozenset(str(v) for v in plan.get("values") or []),
        breakdown=plan.get("breakdown") or None,
        filters=tuple(sorted(filters.items())),
        weighted=bool(plan.get("weighted", True)),
    )


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    dataset: str
    question: str
    kind: Kind
    reading: Reading | None = None  # for answerable questions
    words: tuple[str, ...] = ()  # for fail / flag: what the reason must name
    tags: tuple[str, ...] = ()
    chain: str | None = None  # a follow-up chain's name: its turns are asked in one conversation
    turn: int = 0  # the turn within its chain (1 opens it)

    def names_every_word(self, text: str) -> list[str]:
        """The required words missing from ``text`` (whole words, any case)."""
        return [w for w in self.words if not re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE)]


@dataclass(frozen=True)
class GoldSet:
    name: str
    description: str
    questions: tuple[GoldQuestion, ...] = field(default_factory=tuple)


def set_names() -> list[str]:
    folder = resources.files("panelbrain.eval") / "sets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_set(name: str) -> GoldSet:
    """Load and check the gold set ``name`` (a file ``sets/<name>.yaml`` in this package)."""
    if name not in set_names():
        raise BadInputError(f"--set: no gold set {name!r}; sets: {', '.join(set_names())}")
    text = (resources.files("panelbrain.eval") / "sets" / f"{name}.yaml").read_text(encoding="utf-8")
    return parse_set(yaml.safe_load(text), name)


def parse_set(raw: dict[str, Any], name: str) -> GoldSet:
    """A gold set from its YAML document, every reading checked against its dictionary."""
    questions: list[GoldQuestion] = []
    seen: set[tuple[str, str]] = set()
    for dataset, entries in (raw.get("datasets") or {}).items():
        spec = load_dictionary(dataset)
        for entry in entries:
            number = len(questions) + 1
            where = f"gold set {name!r}, question {number} ({entry.get('q')!r})"
            question = _question(entry, spec, f"{name}-{number:03d}", where)
            key = (dataset, question.question.lower())
            if key in seen:
                # The result cache would answer a repeat without running the pipeline.
                raise BadInputError(f"{where}: asked twice for {dataset}; each question must be new")
            seen.add(key)
            questions.append(question)
    for dataset, chains in (raw.get("chains") or {}).items():
        spec = load_dictionary(dataset)
        for chain in chains:
            label = str(chain.get("chain") or "")
            turns = chain.get("turns")
            where = f"gold set {name!r}, chain {label!r}"
            if not label or not isinstance(turns, list) or not 2 <= len(turns) <= 5:
                raise BadInputError(f"{where}: a chain has a `chain` name and 2 to 5 `turns`")
            if any(q.chain == label for q in questions):
                raise BadInputError(f"{where}: two chains share the name")
            for turn, entry in enumerate(turns, start=1):
                qid = f"{name}-{len(questions) + 1:03d}"
                question = _question(entry, spec, qid, f"{where}, turn {turn} ({entry.get('q')!r})")
                questions.append(replace(question, chain=label, turn=turn))
    return GoldSet(
        name=str(raw.get("name", name)),
        description=str(raw.get("description", "")),
        questions=tuple(questions),
    )


def _question(entry: dict[str, Any], spec: Dataset, qid: str, where: str) -> GoldQuestion:
    text = entry.get("q")
    if not isinstance(text, str) or not text.strip():
        raise BadInputError(f"{where}: `q` must be the question text")
    tags = tuple(str(t) for t in entry.get("tags") or ())
    for kind in ("fail", "flag"):
        if kind in entry:
            words = entry[kind]
            if not isinstance(words, list) or not words:
                raise BadInputError(f"{where}: `{kind}` lists the words its reason must name")
            return GoldQuestion(qid, spec.name, text, kind, None, tuple(str(w) for w in words), tags)
    given = [k for k in _READING_KEYS if k in entry]
    if len(given) != 1:
        raise BadInputError(f"{where}: give exactly one of share, mean, distribution, fail, flag")
    table = spec.main_table
    names = {c.name for c in table.columns if c.role not in ("id", "auxiliary", "design_weight")}

    def column(name: Any, role: str) -> str:
        if name not in names:
            raise BadInputError(f"{where}: {role} {name!r} is not a column of {spec.name}")
        return str(name)

    def codes(col: str, listed: Any) -> list[str]:
        if not isinstance(listed, list) or not listed:
            raise BadInputError(f"{where}: the codes of {col} must be a list (quote Yes, No, ON)")
        known = {v.value for v in table.column(col).values}
        for code in listed:
            if not isinstance(code, str) or code not in known:
                raise BadInputError(
                    f"{where}: {code!r} is not a code of {col} (codes: {', '.join(sorted(known))}); "
                    "YAML reads unquoted Yes, No and ON as booleans"
                )
        return list(listed)

    intent = given[0]
    values: list[str] = []
    if intent == "share":
        share = entry["share"]
        if not isinstance(share, dict) or len(share) != 1:
            raise BadInputError(f"{where}: `share` is {{COLUMN: [CODES]}}")
        ((measure_name, listed),) = share.items()
        measure = column(measure_name, "measure")
        values = codes(measure, listed)
    else:
        measure = column(entry[intent], "measure")
        numeric = table.column(measure).type != "categorical"
        if numeric != (intent == "mean"):
            raise BadInputError(f"{where}: {intent} of {measure} ({table.column(measure).type})")
    breakdown = column(entry["by"], "breakdown") if entry.get("by") is not None else None
    filters: list[tuple[str, frozenset[str]]] = []
    for col_name, spec_codes in (entry.get("among") or {}).items():
        col = column(col_name, "filter")
        negated = isinstance(spec_codes, dict)
        listed = spec_codes.get("not") if negated else spec_codes
        filters.append((col, _kept(spec, col, codes(col, listed), negated)))
    reading = Reading(
        intent=intent,
        measure=measure,
        values=frozenset(values),
        breakdown=breakdown,
        filters=tuple(sorted(filters)),
        weighted=not entry.get("unweighted", False) and spec.weighting is not None,
    )
    return GoldQuestion(qid, spec.name, text.strip(), "answer", reading, (), tags)
