"""The offline provider: deterministic answers driven by the data dictionary.

It reads a documented question grammar (README, "Asking questions offline"):

- ``share of <value> [of <column>] [by <column>] [among <value>[ and <value>...]]``
- ``average of <numeric column> [by <column>] [among ...]``
- ``distribution of <column> [by <column>] [among ...]``
- ``unweighted`` anywhere turns weighting off.

Words are resolved through the dictionary's column names, labels and synonyms and its value
labels and synonyms, longest phrase first. Every guess it has to make (an ambiguous value, a
breakdown it cannot find) lowers the plan's confidence and says why, so the pipeline routes the
answer to a person instead of pretending. It never calls a model and records no tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from panelbrain.data.dictionary import Column, Dataset
from panelbrain.errors import BadInputError
from panelbrain.models import WORKERS, Filter, Intent, Plan, QueryInput, Worker

PROVIDER = "offline"
# Value codes this short, or these common words, only match when written exactly as coded
# ("ON" is Ontario, "on" is a preposition).
_COMMON = {"no", "not", "very", "yes", "none", "higher", "hs", "all", "other"}


class PlanningError(BadInputError):
    """The question names nothing the dictionary knows how to measure."""


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    column: str
    value: str | None  # None: the column itself is named
    phrase: str
    exact: bool  # matched the column name or value code itself, not a label or synonym


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[?!,;:.()\"]+", " ", text)).strip()


class OfflinePlanner:
    """Plans questions over one dataset from its dictionary."""

    def __init__(self, spec: Dataset) -> None:
        self.spec = spec
        self.table = spec.main_table
        self._phrases: list[tuple[str, str, str | None, bool, bool]] = []  # phrase, col, value, exact, cased
        for column in self.table.columns:
            if column.role in ("id", "auxiliary"):
                continue
            for phrase, exact in self._column_phrases(column):
                self._phrases.append((phrase, column.name, None, exact, False))
            for value in column.values:
                code = value.value
                cased = len(code) <= 2 or code.lower() in _COMMON
                self._phrases.append((code if cased else code.lower(), column.name, code, True, cased))
                for phrase in (value.label, *value.synonyms):
                    self._phrases.append((phrase.lower(), column.name, code, False, False))
        self._phrases.sort(key=lambda p: -len(p[0]))

    @staticmethod
    def _column_phrases(column: Column) -> list[tuple[str, bool]]:
        names = [(column.name.lower(), True), (column.name.replace("_", " ").lower(), True)]
        return names + [(column.label.lower(), False)] + [(s.lower(), False) for s in column.synonyms]

    def mentions(self, text: str) -> list[_Mention]:
        """Non-overlapping dictionary phrases in ``text``, longest first, in reading order."""
        lowered = text.lower()
        taken: list[tuple[int, int]] = []
        found: list[_Mention] = []
        for phrase, column, value, exact, cased in self._phrases:
            haystack = text if cased else lowered
            for match in re.finditer(rf"(?<![\w-]){re.escape(phrase)}s?(?![\w-])", haystack):
                span = match.span()
                if any(span[0] < end and start < span[1] for start, end in taken):
                    continue
                taken.append(span)
                found.append(_Mention(span[0], span[1], column, value, phrase, exact))
        return sorted(found, key=lambda m: m.start)

    def plan(self, query: QueryInput) -> Plan:
        text = _words(query.question)
        lowered = text.lower()
        reasons: list[str] = []
        confidence = 1.0
        weighted = not re.search(r"\bunweighted\b", lowered)
        text = re.sub(r"\b[Uu]nweighted\b", " ", text)

        filter_text = ""
        among = re.search(r"\b(?:among|amongst)\b", text, flags=re.IGNORECASE)
        if among:
            rest = text[among.end() :]
            by_after = re.search(r"\bby\b", rest, flags=re.IGNORECASE)
            filter_text = rest[: by_after.start()] if by_after else rest
            text = text[: among.start()] + (" " + rest[by_after.start() :] if by_after else "")
        breakdown_text = ""
        by_parts = re.split(r"\bby\b", text, flags=re.IGNORECASE)
        if len(by_parts) > 1:
            breakdown_text = by_parts[-1]
            text = " ".join(by_parts[:-1])

        intent = self._intent(text.lower())
        mentions = self.mentions(text)
        values = [m for m in mentions if m.value is not None]
        columns = [m for m in mentions if m.value is None]

        measure: str
        chosen_values: list[str] = []
        implicit_filters: dict[str, list[str]] = {}
        if intent == "mean":
            numeric = [m for m in columns if self.table.column(m.column).type != "categorical"]
            if not numeric:
                raise PlanningError(
                    f"no numeric column named in {query.question!r}; numeric columns: "
                    + ", ".join(c.name for c in self.table.columns if c.type != "categorical" and not c.role)
                )
            measure = numeric[0].column
        elif intent == "share" and values:
            hinted = {m.column for m in columns}
            candidates = {m.column for m in values}
            agreed = candidates & hinted
            # "share of <people> <answering>": without a column named, the answer comes last.
            measure = agreed.pop() if len(agreed) == 1 else values[-1].column
            chosen_values = list(dict.fromkeys(m.value for m in values if m.column == measure and m.value))
            for m in values:
                if m.column == measure and not m.exact:
                    reasons.append(f"read {m.phrase!r} as {measure} = {m.value!r}")
            for m in values:
                if m.column != measure and m.value is not None:
                    implicit_filters.setdefault(m.column, []).append(m.value)
                    reasons.append(
                        f"read {m.phrase!r} as a filter {m.column} = {m.value!r} "
                        "(write 'among ...' to say so)"
                    )
            confidence -= 0.25 * len(implicit_filters)
        else:
            categorical = [m for m in columns if self.table.column(m.column).type == "categorical"]
            if not categorical:
                raise PlanningError(
                    f"nothing in {query.question!r} names a column or value of {self.spec.name}; "
                    "see `panelbrain datasets` for the columns, values and their synonyms"
                )
            if intent == "share":
                confidence -= 0.15
                reasons.append("no value to take a share of was named: showing the whole distribution")
            intent = "distribution"
            measure = categorical[0].column

        breakdown: str | None = None
        if breakdown_text.strip():
            by_mentions = [m for m in self.mentions(breakdown_text) if m.column != measure]
            by_columns = [m for m in by_mentions if self.table.column(m.column).type == "categorical"]
            if by_columns:
                breakdown = by_columns[0].column
                if not by_columns[0].exact:
                    reasons.append(f"read 'by {by_columns[0].phrase}' as a breakdown by {breakdown}")
            else:
                confidence -= 0.3
                reasons.append(f"could not find a column for the breakdown {breakdown_text.strip()!r}")

        filters: dict[str, list[str]] = dict(implicit_filters)
        if filter_text.strip():
            found = [m for m in self.mentions(filter_text) if m.value is not None]
            if not found:
                confidence -= 0.3
                reasons.append(f"could not find a value for the filter {filter_text.strip()!r}")
            for m in found:
                assert m.value is not None
                filters.setdefault(m.column, []).append(m.value)
                if not m.exact:
                    reasons.append(f"read 'among {m.phrase}' as {m.column} = {m.value!r}")

        if confidence == 1.0 and not reasons:
            reasons.append("every term matched the data dictionary exactly")
        elif confidence == 1.0:
            reasons.insert(0, "every term matched the data dictionary's labels or synonyms")
        needs: dict[Worker, bool] = dict.fromkeys(WORKERS, True)
        needs["weight_applier"] = weighted and self.spec.weighting is not None
        if weighted and self.spec.weighting is None:
            reasons.append(f"{self.spec.name} defines no weighting targets: estimates are unweighted")
            weighted = False
        return Plan(
            query_id=query.query_id,
            question=query.question,
            dataset=self.spec.name,
            intent=intent,
            measure=measure,
            values=chosen_values,
            breakdown=breakdown,
            filters=[Filter(column=c, values=v) for c, v in filters.items()],
            weighted=weighted,
            needs=needs,
            confidence=round(max(confidence, 0.0), 4),
            reasons=reasons,
            provider=PROVIDER,
            latency_scale=query.latency_scale,
        )

    @staticmethod
    def _intent(text: str) -> Intent:
        if re.search(r"\b(average|mean)\b", text):
            return "mean"
        if re.search(r"\b(distribution|breakdown|distributed)\b", text):
            return "distribution"
        return "share"
