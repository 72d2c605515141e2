"""The offline provider: deterministic answers driven by the data dictionary.

It reads a documented question grammar (README, "What the offline provider understands") and
accounts for every word of the question. A word is one of:

- a **dictionary term**: a column's name, label or synonym, or a value's code, label or synonym
  (longest phrase first, so "not very important" is one value, not a negation);
- a **structure word**: "share", "average", "distribution"; "by" / "per" / "across" / "for each"
  (the breakdown); "among" / "in" / "from" / "with" / "for" (a filter); "not", "outside",
  "except", "excluding", "other than", "without" (a negated filter); "who" / "that" (a relative
  clause); "and" / "or" (value lists: "in Ontario or Quebec", "in Ontario and Quebec" both mean
  either); "unweighted";
- **known filler** (:data:`FILLER`, an explicit list: "what", "of", "the", "respondents", ...,
  plus the words the dictionary gives for the table's rows, such as "Canadians");
- or **unplaced**: reported by name in the plan's reasons, and it costs confidence below the
  answer threshold, so a person sees the answer before anyone acts on it.

Every dictionary term must also be *used* by the plan (as the measure, its values, the
breakdown or a filter); a column named and not used is reported the same way. Guesses (which
of two values is the answer, a filter written without a marker) cost confidence too. The
reasons claim every word was accounted for only when it was. It never calls a model and records
no tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from panelbrain.data.dictionary import Column, Dataset
from panelbrain.errors import BadInputError
from panelbrain.models import Filter, Intent, Plan, QueryInput, worker_needs

PROVIDER = "offline"
# Value codes this short, or these common words, only match when written exactly as coded
# ("ON" is Ontario, "on" is a preposition).
_COMMON = {"no", "not", "very", "yes", "none", "higher", "hs", "all", "other"}
# What a word the reader cannot place costs: the first one takes the answer below the answer
# threshold (0.8), each further one lowers it more, so a question it mostly cannot read falls
# below the review threshold (0.5) and is not answered at all.
UNPLACED_COST = 0.25
FURTHER_UNPLACED_COST = 0.1
GUESS_COST = 0.25
UNUSED_COST = 0.25
NO_BREAKDOWN_COST = 0.3

# Words that carry no content of their own in a question about a survey. Keep it short and
# explicit: a word missing here is reported (and reviewed), a word wrongly here is ignored.
FILLER = frozenset(
    """
    a an the what what's whats which is are was were be been do does did to of on at about
    how much many me us show give tell please i we want know there their they them it its
    this these those one ones whom say says said saying think thinks believe believes feel feels
    answer answers answered answering reply replied respond responded report reports
    respondents respondent people person persons everyone everybody individuals adults
    residents population sample survey participants voters
    all total overall weighted estimate estimated either both
    live lives living reside located based currently
    """.split()  # noqa: SIM905 (a word list reads better as words)
)
_ARTICLES = frozenset({"the", "a", "an", "all"})
# Words that may stand between a filter marker and its value ("among respondents in Quebec").
# Words between "share" and its subject that leave it the subject ("share who live in Quebec").
_BEING = frozenset({"are", "is", "live", "lives", "living", "reside", "resides", "located", "based"})
_ROW_NOUNS = frozenset(
    """
    of respondents respondent people person persons everyone everybody individuals adults
    residents population participants those ones
    """.split()  # noqa: SIM905
)

Kind = Literal[
    "by", "mark", "lives", "exclude", "not", "rel", "and", "or", "mean", "dist", "share", "unweighted"
]
# Phrase groups the follow-up reader (:mod:`panelbrain.agents.followup`) reads the same way.
BREAKDOWN_PHRASES: tuple[tuple[str, ...], ...] = (
    ("broken", "down", "by"),
    ("split", "by"),
    ("for", "each"),
    ("for", "every"),
    ("in", "each"),
    ("in", "every"),
    ("by",),
    ("per",),
    ("across",),
)
FILTER_MARKERS: tuple[tuple[str, ...], ...] = (
    ("among",),
    ("amongst",),
    ("in",),
    ("from",),
    ("with",),
    ("within",),
    ("for",),
)
EXCLUDING_PHRASES: tuple[tuple[str, ...], ...] = (
    ("other", "than"),
    ("apart", "from"),
    ("except",),
    ("excluding",),
    ("outside",),
    ("besides",),
)
MEAN_WORDS: tuple[tuple[str, ...], ...] = (("average",), ("mean",))
SHARE_WORDS: tuple[tuple[str, ...], ...] = (("share",), ("percentage",), ("proportion",))
# Structure words, longest first where one starts another ("per cent" before "per").
_STRUCTURE: dict[tuple[str, ...], Kind] = {
    **dict.fromkeys(BREAKDOWN_PHRASES, "by"),
    ("per", "cent"): "share",
    # "... *live in* rural areas": the verb's complement is an answer, not a filter (unless in a
    # relative clause: "people who live in Quebec").
    ("live", "in"): "lives",
    ("lives", "in"): "lives",
    **dict.fromkeys(FILTER_MARKERS, "mark"),
    **dict.fromkeys(EXCLUDING_PHRASES, "exclude"),
    ("but", "not"): "exclude",
    ("except", "for"): "exclude",
    ("outside", "of"): "exclude",
    ("without",): "exclude",
    ("do", "not"): "not",
    ("does", "not"): "not",
    ("not",): "not",
    ("don't",): "not",
    ("doesn't",): "not",
    ("aren't",): "not",
    ("isn't",): "not",
    ("never",): "not",
    ("no",): "not",
    ("non",): "not",
    ("who",): "rel",
    ("whose",): "rel",
    ("that",): "rel",
    ("and",): "and",
    ("&",): "and",
    (",",): "and",
    ("or",): "or",
    ("nor",): "or",
    **dict.fromkeys(MEAN_WORDS, "mean"),
    ("distribution",): "dist",
    ("breakdown",): "dist",
    ("distributed",): "dist",
    **dict.fromkeys(SHARE_WORDS, "share"),
    ("shares",): "share",
    ("percent",): "share",
    ("fraction",): "share",
    ("%",): "share",
    ("how", "many"): "share",
    ("unweighted",): "unweighted",
}
_STRUCTURE_KEYS = sorted(_STRUCTURE, key=len, reverse=True)
_NEGATION_CODES = {"not", "no"}  # as codes these would swallow the negation itself

_TOKEN = re.compile(r"%|&|,|[^\W_][\w'+/-]*")


class PlanningError(BadInputError):
    """The question names nothing the dictionary knows how to measure."""


@dataclass(frozen=True)
class _Token:
    text: str
    lower: str


@dataclass(frozen=True)
class _Mention:
    start: int  # token positions
    end: int
    column: str
    value: str | None  # None: the column itself is named
    phrase: str
    exact: bool  # matched the column name or value code itself, not a label or synonym
    names_column: bool = False  # a value whose words also name its column ("urban")


Role = Literal["by", "marked", "adjacent", "relative", "subject", "free"]


@dataclass
class _Group:
    """Consecutive values of one column, read together ("Ontario or Quebec")."""

    column: str
    role: Role
    negate: bool
    mentions: list[_Mention] = field(default_factory=list)
    joined_by: str | None = None  # "or" / "and" when a list
    negation: str = ""  # the word that negated it ("not", "outside", ...)
    follows_negation: str = ""  # right after a negated group: "outside 'rural'" (then Quebec)

    @property
    def start(self) -> int:
        return self.mentions[0].start

    @property
    def values(self) -> list[str]:
        return list(dict.fromkeys(m.value for m in self.mentions if m.value is not None))

    @property
    def phrase(self) -> str:
        words = [m.phrase for m in self.mentions]
        return words[0] if len(words) == 1 else f" {self.joined_by or 'or'} ".join(words)


def tokens(text: str) -> list[_Token]:
    """Words of ``text``: punctuation splits ("b.c." is "b c"), "65+", "18-24", "don't" stay whole."""
    found: list[_Token] = []
    for raw in _TOKEN.findall(text.replace("\u2019", "'")):
        word = raw.rstrip("'/-")
        if word.lower().startswith("non-") and len(word) > 4:
            found.append(_Token(word[:3], "non"))
            word = word[4:]
        found.append(_Token(word, word.lower()))
    return found


def phrase_at(words: list[_Token], i: int, phrases: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The first of ``phrases`` (sorted longest first) that ``words`` spell from position ``i``."""
    return next(
        (
            phrase
            for phrase in phrases
            if i + len(phrase) <= len(words) and all(words[i + j].lower == w for j, w in enumerate(phrase))
        ),
        None,
    )


def unplaced_cost(count: int) -> float:
    """What ``count`` (at least 1) words the reader could not place take off its confidence."""
    return UNPLACED_COST + FURTHER_UNPLACED_COST * (count - 1)


@dataclass
class _Reading:
    """What the walk over the question found, before the plan is chosen."""

    groups: list[_Group] = field(default_factory=list)
    # Columns named, with where: "by" (a breakdown), "clause" (inside a filter or relative clause,
    # "who say religion is ..."), or "free" (a hint at what is measured, "... of abortion").
    columns: list[tuple[_Mention, str]] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    kinds: set[Kind] = field(default_factory=set)
    notes: list[tuple[str, float]] = field(default_factory=list)  # (reason, what it costs)
    empty_by: bool = False


class OfflinePlanner:
    """Plans questions over one dataset from its dictionary."""

    def __init__(self, spec: Dataset) -> None:
        self.spec = spec
        self.table = spec.main_table
        # (words, column, value, exact, cased, names_column), longest phrase first.
        self._phrases: list[tuple[tuple[str, ...], str, str | None, bool, bool, bool]] = []
        for column in self.table.columns:
            if column.role in ("id", "auxiliary"):
                continue
            column_phrases = self._column_phrases(column)
            names = {p for p, _ in column_phrases}
            for phrase, exact in column_phrases:
                self._phrases.append((self._split(phrase), column.name, None, exact, False, False))
            for value in column.values:
                code = value.value
                cased = len(code) <= 2 or code.lower() in _COMMON
                if code not in _NEGATION_CODES:
                    words = self._split(code if cased else code.lower(), lower=not cased)
                    self._phrases.append((words, column.name, code, True, cased, code.lower() in names))
                for phrase in (value.label, *value.synonyms):
                    lowered = phrase.lower()
                    self._phrases.append(
                        (self._split(lowered), column.name, code, False, False, lowered in names)
                    )
        # Longest first; on a tie a value beats a column ("urban" the value is more specific, and
        # after "by" a value names its column anyway).
        self._phrases.sort(key=lambda p: (-len(" ".join(p[0])), p[2] is None))
        row_words = {w for s in self.table.synonyms for w in self._split(s)}
        self._filler = FILLER | row_words
        self._row_nouns = _ROW_NOUNS | row_words

    @staticmethod
    def _split(phrase: str, lower: bool = True) -> tuple[str, ...]:
        return tuple(t.lower if lower else t.text for t in tokens(phrase))

    @staticmethod
    def _column_phrases(column: Column) -> list[tuple[str, bool]]:
        names = [(column.name.lower(), True), (column.name.replace("_", " ").lower(), True)]
        return names + [(column.label.lower(), False)] + [(s.lower(), False) for s in column.synonyms]

    def mentions(self, text: str) -> list[_Mention]:
        """Non-overlapping dictionary phrases in ``text``, longest first, in reading order."""
        return self._mentions(tokens(text))

    def _mentions(self, words: list[_Token]) -> list[_Mention]:
        taken = [False] * len(words)
        found: list[_Mention] = []
        for phrase, column, value, exact, cased, names_column in self._phrases:
            size = len(phrase)
            for start in range(len(words) - size + 1):
                if any(taken[start : start + size]):
                    continue
                window = words[start : start + size]
                if all(
                    self._word_matches(
                        want, word.text if cased else word.lower, last=i == size - 1 and not cased
                    )
                    for i, (want, word) in enumerate(zip(phrase, window, strict=True))
                ):
                    taken[start : start + size] = [True] * size
                    shown = " ".join(w.text for w in window)
                    found.append(_Mention(start, start + size, column, value, shown, exact, names_column))
        return sorted(found, key=lambda m: m.start)

    @staticmethod
    def _word_matches(want: str, word: str, last: bool) -> bool:
        # A plural or possessive of the phrase's last word is the same term ("graduates").
        return word == want or (last and word in (want + "s", want + "'s", want + "es"))

    # -- reading ---------------------------------------------------------------------------

    def _read(self, words: list[_Token]) -> _Reading:
        reading = _Reading()
        starts = {m.start: m for m in self._mentions(words)}
        # A marker waiting for its value: "mark" (among, in, ...), "rel" (who, that), "by", and
        # "by-done" after a breakdown column (an "and" then names a second one).
        pending: str | None = None
        negate, negation_word = False, ""
        after_share_of = via_relative = False
        last: _Group | None = None
        gap: list[str] = []  # what came since the last group: decides lists and adjacency
        i = 0
        while i < len(words):
            mention = starts.get(i)
            if mention is not None:
                i = mention.end
                subject = after_share_of and not via_relative
                if after_share_of and via_relative:
                    pending = "rel"
                if pending == "by":
                    reading.columns.append((mention, "by"))
                    pending, last, gap = "by-done", None, []
                    continue
                if mention.value is None:
                    in_clause = pending in ("mark", "rel") or negate
                    reading.columns.append((mention, "clause" if in_clause else "free"))
                    gap.append("column")
                    continue  # "share of people aged 18 to 24": still the subject
                after_share_of = False
                named = reading.columns[-1][0] if reading.columns and gap[-1:] == ["column"] else None
                if named is not None and named.column == mention.column and reading.columns[-1][1] == "free":
                    # "aged 25 to 34": the column names this value's group, it does not point
                    # at the answer.
                    reading.columns[-1] = (named, "clause")
                last = self._place(
                    reading, mention, pending, negation_word if negate else "", subject, last, gap
                )
                pending, negate, gap = None, False, []
                continue
            key = phrase_at(words, i, _STRUCTURE_KEYS)
            if key is not None:
                kind = _STRUCTURE[key]
                reading.kinds.add(kind)
                phrase = " ".join(w.text for w in words[i : i + len(key)])
                i += len(key)
                # The subject may follow a marker or a negation: "share *with* a degree", "share
                # of respondents *from* BC", "share of *non*-Quebec respondents".
                after_share_of = kind == "share" or (
                    kind in ("not", "exclude", "mark", "rel") and after_share_of
                )
                # "share of people *who* support a ban say ...": a relative clause, not the subject.
                via_relative = kind == "rel" or (via_relative and kind != "share")
                if kind in ("exclude", "not"):
                    if negate:
                        reading.unplaced.append(negation_word)
                    negate, negation_word = True, phrase
                    if kind == "exclude":
                        pending = "mark"
                elif kind in ("mark", "rel", "by"):
                    if kind == "by" and negate:
                        reading.unplaced.append(negation_word)
                        negate = False
                    pending = kind
                elif kind == "lives":
                    pending = "rel" if pending == "rel" else None
                elif kind in ("and", "or") and pending == "by-done":
                    pending = "by"
                gap.append(kind if kind in ("and", "or") else "word")
                continue
            word = words[i]
            i += 1
            if word.lower in _ARTICLES:
                continue  # articles keep lists and adjacency ("in the North and the South")
            if word.lower == "of" and after_share_of:
                continue
            # "share of people who live in ...": words for the respondents keep the subject open.
            after_share_of = after_share_of and (word.lower in self._row_nouns or word.lower in _BEING)
            gap.append("word")
            if pending in ("mark", "by-done") and word.lower not in self._row_nouns:
                pending = None  # "in the survey say ...": the marker found no value
            if not self._known(word.lower):
                reading.unplaced.append(word.text)
        if negate:
            reading.unplaced.append(negation_word)
        if pending == "by":
            reading.empty_by = True
        return reading

    def _known(self, word: str) -> bool:
        return word in self._filler or (len(word) > 3 and word.endswith("s") and word[:-1] in self._filler)

    def _place(
        self,
        reading: _Reading,
        mention: _Mention,
        pending: str | None,
        negation: str,
        subject: bool,
        last: _Group | None,
        gap: list[str],
    ) -> _Group:
        """Add a value mention to the reading: to the list before it, or as a new group."""
        joined = next((g for g in gap if g in ("and", "or")), None)
        # A column named between two values belongs to the second ("women aged 65 and over").
        continues = last is not None and pending is None and all(g in ("and", "or", "column") for g in gap)
        if continues and last is not None and last.column == mention.column and not negation:
            if not joined:
                reading.notes.append(
                    (
                        f"{last.phrase!r} and {mention.phrase!r} are two values of {mention.column} "
                        "written side by side: read as either",
                        GUESS_COST,
                    )
                )
            last.mentions.append(mention)
            if joined:
                last.joined_by = joined
            return last
        role: Role
        follows_negation = ""
        if subject:
            role = "subject"
        elif pending == "mark":
            role = "marked"
        elif pending == "rel":
            role = "relative"
        elif continues and last is not None and last.role != "free":
            role = "adjacent"
            if joined == "or":
                reading.notes.append(
                    (
                        f"'or' joins {last.phrase!r} and {mention.phrase!r}, values of two columns: "
                        "read as both (a filter cannot take either of two columns)",
                        GUESS_COST,
                    )
                )
            if last.negate:
                follows_negation = f"{last.negation} {last.phrase!r}"
        else:
            role = "free"
        group = _Group(mention.column, role, bool(negation), [mention], joined, negation, follows_negation)
        reading.groups.append(group)
        return group

    # -- planning --------------------------------------------------------------------------

    def _demographic(self, column: str) -> bool:
        """Weighting variables describe who answered; the other columns are what they answered."""
        weighting = self.spec.weighting
        return weighting is not None and any(v.column == column for v in weighting.variables)

    def plan(self, query: QueryInput) -> Plan:
        words = tokens(query.question)
        reading = self._read(words)
        reasons: list[str] = []
        confidence = 1.0
        weighted = "unweighted" not in reading.kinds
        intent: Intent = (
            "mean" if "mean" in reading.kinds else "distribution" if "dist" in reading.kinds else "share"
        )

        by_mentions = [m for m, where in reading.columns if where == "by"]
        standalone = [m for m, where in reading.columns if where != "by"]
        hints = [m for m, where in reading.columns if where == "free"]
        groups = [g for g in reading.groups if g.role != "by"]

        measure: str | None = None
        chosen: list[_Group] = []
        if intent == "mean":
            numeric = [m for m in standalone if self.table.column(m.column).type != "categorical"]
            if not numeric:
                names = [c.name for c in self.table.columns if c.type != "categorical" and not c.role]
                raise PlanningError(
                    f"no numeric column named in {query.question!r}; "
                    + (
                        f"numeric columns: {', '.join(names)}"
                        if names
                        else f"{self.spec.name} has none to average: ask for shares or a distribution"
                    )
                )
            measure = numeric[0].column
        elif intent == "distribution":
            categorical = [m for m in standalone if self.table.column(m.column).type == "categorical"]
            naming = [g for g in groups if g.mentions[0].names_column and g.role in ("free", "subject")]
            if categorical:
                measure = categorical[0].column
            elif naming:
                measure, chosen = naming[0].column, [naming[0]]
        else:
            measure, chosen, confidence = self._share_measure(groups, hints, reasons, confidence)
            if measure is None:
                categorical = [m for m in standalone if self.table.column(m.column).type == "categorical"]
                if categorical:
                    measure = categorical[0].column
                    intent = "distribution"
                    if "share" in reading.kinds:  # asked for a share, and named no value
                        confidence -= 0.15
                        reasons.append(
                            "no value to take a share of was named: showing the whole distribution"
                        )
        if measure is None:
            raise PlanningError(
                f"nothing in {query.question!r} names a column or a value to measure in {self.spec.name}"
                + (f" (it names only filters: {', '.join(g.phrase for g in groups)})" if groups else "")
                + "; see `panelbrain datasets` for the columns, values and their synonyms"
            )

        values: list[str] = []
        if intent == "share":
            values = list(dict.fromkeys(v for g in chosen if not g.negate for v in g.values))
            negated = [v for g in chosen if g.negate for v in g.values]
            if negated:
                codes = [v.value for v in self.table.column(measure).values]
                values = [v for v in (values or codes) if v not in negated]
                if len(values) > 1:
                    confidence -= GUESS_COST
                    reasons.append(
                        f"a negated answer ({', '.join(g.phrase for g in chosen if g.negate)}) leaves "
                        f"{len(values)} answers of {measure}: each is shown apart, and their sum is the share"
                    )
            for g in chosen:
                if g.negate:
                    reasons.append(
                        f"read '{g.negation} {g.phrase}' as {measure} other than "
                        f"{', '.join(repr(v) for v in g.values)}"
                    )
                    continue
                for m in g.mentions:
                    if not m.exact:
                        reasons.append(f"read {m.phrase!r} as {measure} = {m.value!r}")

        breakdown: str | None = None
        for m in by_mentions:
            column = self.table.column(m.column)
            if breakdown is None and m.column != measure and column.type == "categorical":
                breakdown = m.column
                if not m.exact:
                    reasons.append(f"read 'by {m.phrase}' as a breakdown by {breakdown}")
            else:
                confidence -= UNUSED_COST
                why = (
                    "only one breakdown is supported"
                    if breakdown
                    else f"{m.column} cannot break {measure} down"
                )
                reasons.append(f"did not use 'by ... {m.phrase}' ({why})")
        if reading.empty_by:
            confidence -= NO_BREAKDOWN_COST
            reasons.append("could not find a column for the breakdown after 'by'")

        filters: dict[tuple[str, bool], list[str]] = {}
        for g in groups:
            if g in chosen:
                continue
            written = f"{g.negation} {g.phrase}" if g.negate else g.phrase
            listed = ", ".join(repr(v) for v in g.values)
            if g.role == "free" and intent == "share":
                confidence -= GUESS_COST
                reasons.append(
                    f"read {written!r} as a filter {g.column} {'not in' if g.negate else 'in'} {listed} "
                    f"(write 'among {g.phrase}' to say so)"
                )
            elif g.follows_negation:
                confidence -= GUESS_COST
                reasons.append(
                    f"could not tell whether {g.follows_negation} covers {g.phrase!r} too: "
                    f"read as {g.follows_negation}, and {g.phrase!r}"
                )
            elif g.negate or any(not m.exact for m in g.mentions):
                reasons.append(
                    f"read {written!r} as a filter {g.column} {'not in' if g.negate else 'in'} {listed}"
                )
            filters.setdefault((g.column, g.negate), [])
            filters[(g.column, g.negate)] += [v for v in g.values if v not in filters[(g.column, g.negate)]]
        for note, cost in reading.notes:
            confidence -= cost
            reasons.append(note)

        used = {measure, breakdown} | {column for column, _ in filters}
        for m in standalone:
            if m.column not in used:
                confidence -= UNUSED_COST
                reasons.append(f"{m.phrase!r} names the column {m.column}, which this reading does not use")
                used.add(m.column)

        if reading.unplaced:
            confidence -= unplaced_cost(len(reading.unplaced))
            shown = ", ".join(repr(w) for w in dict.fromkeys(reading.unplaced))
            reasons.append(
                f"could not place {shown}: not a dictionary term or a known filler word, "
                "so the answer ignores it"
            )
        elif confidence == 1.0:
            reasons.insert(0, "every word is accounted for: dictionary terms, structure or known filler")

        if weighted and self.spec.weighting is None:
            reasons.append(f"{self.spec.name} defines no weighting targets: estimates are unweighted")
            weighted = False
        return Plan(
            query_id=query.query_id,
            question=query.question,
            dataset=self.spec.name,
            intent=intent,
            measure=measure,
            values=values,
            breakdown=breakdown,
            filters=[Filter(column=c, values=v, negate=n) for (c, n), v in filters.items()],
            weighted=weighted,
            needs=worker_needs(weighted and self.spec.weighting is not None),
            confidence=round(max(confidence, 0.0), 4),
            reasons=reasons,
            provider=PROVIDER,
            latency_scale=query.latency_scale,
        )

    def _share_measure(
        self, groups: list[_Group], hints: list[_Mention], reasons: list[str], confidence: float
    ) -> tuple[str | None, list[_Group], float]:
        measure, chosen, confidence = self._answer(groups, hints, reasons, confidence)
        rival = next((g for g in groups if g.role == "subject" and g not in chosen), None)
        if (
            measure is not None
            and rival is not None
            and not self._demographic(rival.column)
            and not self._demographic(measure)
        ):
            # "What share support a ban and say religion is very important?": two answers.
            confidence -= GUESS_COST
            reasons.append(
                f"two answers were named ({rival.phrase!r} and {measure}): read {measure} as the answer "
                f"and {rival.phrase!r} as a filter"
            )
        return measure, chosen, confidence

    def _answer(
        self, groups: list[_Group], hints: list[_Mention], reasons: list[str], confidence: float
    ) -> tuple[str | None, list[_Group], float]:
        """Which values are the answer: the rest of the groups are filters.

        In order: the one column a named column points at ("... of abortion"); the last value
        written without a marker ("what share *support* a ban among women"); an answer column
        in a relative clause or after the filters when the subject is a demographic ("share of
        women in Quebec *who support* a ban"); the subject ("share of *women* among rural
        respondents"); a value after the filters, as a guess.
        """
        candidates = [g for g in groups if g.role in ("free", "subject", "adjacent", "relative")]

        def pick(column: str) -> tuple[str, list[_Group], float]:
            return column, [g for g in candidates if g.column == column], confidence

        hinted = {m.column for m in hints} & {g.column for g in candidates}
        if len(hinted) == 1:
            return pick(hinted.pop())
        free = [g for g in candidates if g.role == "free"]
        if free:
            last = free[-1]
            # "Do women in Ontario support a ban?": a demographic first, the answer after the
            # filters that follow it; the demographic is then the subject.
            after = {
                g.column
                for g in candidates
                if g.role == "adjacent" and g.start > last.start and not self._demographic(g.column)
            }
            if self._demographic(last.column) and len(after) == 1:
                last.role = "subject"
                return pick(after.pop())
            return pick(last.column)
        subject = next((g for g in candidates if g.role == "subject"), None)
        later = [g for g in candidates if g.role in ("adjacent", "relative")]
        if subject is None or self._demographic(subject.column):
            # A value right after the filters is the main verb ("people who ... *support a ban*");
            # then a relative clause's ("men *who support a ban*").
            for role in ("adjacent", "relative"):
                outcomes = {g.column for g in later if g.role == role and not self._demographic(g.column)}
                if len(outcomes) == 1:
                    return pick(outcomes.pop())
        if subject is not None:
            return pick(subject.column)
        relative = {g.column for g in later if g.role == "relative"}
        if len(relative) == 1:
            return pick(relative.pop())
        if hints:  # "Satisfaction with public services among women aged 55 to 64": its distribution
            return None, [], confidence
        if later:
            reasons.append(
                f"no answer was marked: read {later[-1].phrase!r} as the answer, the rest as filters"
            )
            return later[-1].column, [later[-1]], confidence - GUESS_COST
        return None, [], confidence
