"""Plain English for a plan, from the data dictionary's labels and wording templates.

Who the respondents are ("rural women in Quebec", "respondents outside Quebec") and what they
answered ("say religion is very important"), so the offline answer reads as an analyst writes
it: "33.7% of women say religion is very important", not "of respondents among gender = Women
answer 'Very important'". A column without a ``wording`` in its dictionary still reads
correctly, if less smoothly ("answer 'Very important' to 'Importance of religion'").
"""

from __future__ import annotations

from collections.abc import Sequence

from panelbrain.data.dictionary import Column, Table, Wording
from panelbrain.models import Filter

RESPONDENTS = "respondents"


def wording(column: Column) -> Wording:
    """The column's wording, or a plain one quoting its labels."""
    if column.wording is not None:
        return column.wording
    return Wording(
        answer=f"answer '{{Value}}' to '{column.label}'",
        group=f"who answer '{{Value}}' to '{column.label}'",
        position="after",
    )


def listed(words: Sequence[str], joiner: str = "or") -> str:
    """ "A", "A or B", "A, B or C"."""
    items = list(words)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def _fill(template: str, labels: Sequence[str]) -> str:
    return template.format(value=listed([label.lower() for label in labels]), Value=listed(labels))


def answer(column: Column, value: str) -> str:
    """What respondents with ``value`` did: "say religion is very important"."""
    return _fill(wording(column).answer, [column.value_label(value)])


def group(column: Column, value: str) -> str:
    """Respondents with ``value``, named: "women", "rural respondents", "respondents in Alberta"."""
    return population_of([_Part(column, [value], negate=False)])


class _Part:
    def __init__(self, column: Column, values: Sequence[str], negate: bool) -> None:
        self.column, self.negate = column, negate
        self.wording = wording(column)
        self.text = _fill(self.wording.group, [column.value_label(v) for v in values])


def _negated(text: str, position: str) -> str:
    if position == "noun":
        return f"other than {text}"
    if position == "before":
        return f"who are not {text}"
    if text.startswith("who "):
        return "who do not " + text[len("who ") :]
    if text.startswith("whose ") and " is " in text:
        return text.replace(" is ", " is not ", 1)
    return f"not {text}"


def population(table: Table, filters: Sequence[Filter]) -> str:
    """The respondents a plan's filters keep, as a noun phrase ("rural women in Quebec")."""
    return population_of([_Part(table.column(f.column), f.values, f.negate) for f in filters])


def population_of(parts: Sequence[_Part]) -> str:
    before: list[str] = []
    head: str | None = None
    after: list[str] = []
    for part in parts:
        position = part.wording.position
        if part.negate:
            after.append(_negated(part.text, position))
        elif position == "noun" and head is None:
            head = part.text
        elif position == "noun":
            after.append(f"who are {part.text}")
        elif position == "before":
            before.append(part.text)
        else:
            after.append(part.text)
    phrase = " ".join([*before, head or RESPONDENTS])
    # "men in Ontario whose highest education is ...": places before relative clauses.
    after.sort(key=lambda text: text.startswith(("who ", "whose ")))
    clauses = 0
    for text in after:
        relative = text.startswith(("who ", "whose "))
        phrase += (" and " if relative and clauses else " ") + text
        clauses += relative
    return phrase
