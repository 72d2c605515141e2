"""Follow-up questions, offline: the previous turn's reading refined by the new words.

"What share support a ban on abortion?" → "and by province?" → "only women" → "what about
Quebec?" → "unweighted". A follow-up is read with the same dictionary terms as a question
(:mod:`panelbrain.agents.offline`), plus a few words that say what to change:

- **breakdown**: "by" / "per" / "across" / "split by" / "for each" COLUMN (or a value of it) adds
  or replaces the breakdown; "overall", "in total", "drop the breakdown" removes it; a demographic
  column named on its own ("what about gender?") is a breakdown by it;
- **filters**: values of a demographic column, or any column after "among" / "in" / "for" /
  "only" / "just" ..., set the filter on that column (replacing one already there: "what about
  Quebec?" after "in Ontario"); "not" / "outside" / "excluding" ... negate it; "also" / "too" /
  "as well" / "plus" add the values to it; "drop" / "remove" / "without" COLUMN or "all"
  / "every" / "any" COLUMN removes it; "everyone" / "all respondents" / "drop the filters"
  removes them all; a value of the breakdown column filters on it and drops the breakdown;
- **measure or value**: values of the measure switch the value ("what about oppose?"); values of
  another answer column switch the measure to their share ("same for very important religion");
  an answer column named on its own switches to its distribution; "average" / "mean" COLUMN to
  its mean; "distribution" shows the measure's every category;
- **weighting**: "unweighted" / "raw" / "without weights"; "weighted" / "with weights".

Cue words ("and", "what about", "how about", "same for", "now", "instead", "just", "only", ...)
mark a follow-up. A question that names its own answer and has no cue, or words that change
nothing in the previous reading, is read as a **new question** and the plan says so. Words the
reader cannot place cost confidence as in a question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from panelbrain.agents.offline import (
    BREAKDOWN_PHRASES,
    EXCLUDING_PHRASES,
    FILTER_MARKERS,
    MEAN_WORDS,
    SHARE_WORDS,
    UNPLACED_COST,
    OfflinePlanner,
    PlanningError,
    _Mention,
    _Token,
    phrase_at,
    tokens,
    unplaced_cost,
)
from panelbrain.models import Filter, Plan, QueryInput, Reading, worker_needs

Op = Literal[
    "cue",
    "by",
    "overall",
    "drop",
    "all",
    "everyone",
    "not",
    "mark",
    "add",
    "unweighted",
    "weighted",
    "mean",
    "dist",
    "share",
    "sep",
]
# Longest first where one phrase starts another. The question reader's phrases for a breakdown,
# a filter, an exclusion, a mean and a share mean the same here.
_WORDS: dict[tuple[str, ...], Op] = {
    ("what", "about"): "cue",
    ("how", "about"): "cue",
    ("what", "if"): "cue",
    ("and",): "cue",
    ("now",): "cue",
    ("then",): "cue",
    ("instead",): "cue",
    ("same", "for"): "cue",
    ("same", "but"): "cue",
    ("same", "question", "for"): "cue",
    ("same",): "cue",
    ("again",): "cue",
    ("ok",): "cue",
    ("okay",): "cue",
    ("but",): "cue",
    ("rather",): "cue",
    ("let's", "see"): "cue",
    ("switch", "to"): "cue",
    ("change", "to"): "cue",
    ("break", "it", "down", "by"): "by",
    **dict.fromkeys(BREAKDOWN_PHRASES, "by"),
    ("overall",): "overall",
    ("in", "total"): "overall",
    ("altogether",): "overall",
    ("no", "breakdown"): "overall",
    ("without", "the", "breakdown"): "overall",
    ("drop", "the", "breakdown"): "overall",
    ("remove", "the", "breakdown"): "overall",
    ("not", "broken", "down"): "overall",
    ("drop",): "drop",
    ("remove",): "drop",
    ("without", "the"): "drop",
    ("ignore",): "drop",
    ("forget",): "drop",
    ("all",): "all",
    ("every",): "all",
    ("any",): "all",
    ("both",): "all",
    ("everyone",): "everyone",
    ("everybody",): "everyone",
    ("all", "respondents"): "everyone",
    ("the", "whole", "sample"): "everyone",
    ("no", "filters"): "everyone",
    ("without", "filters"): "everyone",
    ("drop", "the", "filters"): "everyone",
    ("remove", "the", "filters"): "everyone",
    ("all", "canadians"): "everyone",
    ("not",): "not",
    **dict.fromkeys(EXCLUDING_PHRASES, "not"),
    ("non",): "not",
    **dict.fromkeys(FILTER_MARKERS, "mark"),
    ("only",): "mark",
    ("just",): "mark",
    ("also",): "add",
    ("as", "well"): "add",
    ("too",): "add",
    ("plus",): "add",
    ("add",): "add",
    ("unweighted",): "unweighted",
    ("raw",): "unweighted",
    ("without", "weights"): "unweighted",
    ("without", "weighting"): "unweighted",
    ("no", "weighting"): "unweighted",
    ("weighted",): "weighted",
    ("with", "weights"): "weighted",
    ("with", "weighting"): "weighted",
    **dict.fromkeys(MEAN_WORDS, "mean"),
    ("distribution",): "dist",
    ("full", "distribution"): "dist",
    ("every", "answer"): "dist",
    ("all", "answers"): "dist",
    **dict.fromkeys(SHARE_WORDS, "share"),
    ("or",): "sep",
    (",",): "sep",
    ("&",): "sep",
}
_KEYS = sorted(_WORDS, key=len, reverse=True)
# Words that change nothing in a follow-up ("filter" in "drop the gender filter").
_FOLLOWUP_FILLER = frozenset(
    """
    about how if question those that it this them one ones let's lets see look at so please
    filter filters breakdown split instead use try show
    """.split()  # noqa: SIM905 (a word list reads better as words)
)
# A question that opens with one of these is a follow-up, whatever else it says.
_OPENING_CUES = frozenset(
    {"cue", "by", "mark", "add", "not", "overall", "drop", "everyone", "unweighted", "weighted"}
)


@dataclass
class _State:
    intent: str
    measure: str
    values: list[str]
    breakdown: str | None
    filters: dict[str, Filter]
    weighted: bool
    changes: list[str] = field(default_factory=list)
    doubts: int = 0  # words that asked for something the reading could not do


class FollowUpReader:
    """Refines a previous reading with a follow-up's words, over one dataset's dictionary."""

    def __init__(self, planner: OfflinePlanner) -> None:
        self.planner = planner
        self.table = planner.table

    def plan(self, query: QueryInput, previous: Reading, threshold: float = 0.8) -> Plan:
        """The follow-up's plan: a refinement of ``previous``, or, when the words do not relate to
        it, the question read on its own (``read_as`` says which)."""
        words = tokens(query.question)
        opens_as_followup = bool(words) and self._op_at(words, 0) in _OPENING_CUES
        own = None if opens_as_followup else self._own_question(query, threshold)
        if own is not None:
            note = (
                "read as a new question: it names its own answer and no follow-up word ties it to "
                "the last turn"
            )
            return own.model_copy(update={"read_as": "new", "reasons": [note, *own.reasons]})
        refined = self._refine(query, words, previous)
        if refined is not None:
            return refined
        try:
            plan = self.planner.plan(query)
        except PlanningError as exc:
            raise PlanningError(
                f"{query.question!r} changes nothing in the previous question and does not read as a "
                f"question on its own ({exc.message})"
            ) from None
        note = "read as a new question: nothing in it refines the previous turn"
        return plan.model_copy(update={"read_as": "new", "reasons": [note, *plan.reasons]})

    # -- deciding ---------------------------------------------------------------------------

    def _own_question(self, query: QueryInput, threshold: float) -> Plan | None:
        """The plan of a whole question, or None: the offline reader reads it confidently and it
        names an answer (not only who answered) with an intent word or with something else (a
        filter or a breakdown)."""
        try:
            plan = self.planner.plan(query)
        except PlanningError:
            return None
        if plan.confidence < threshold:
            return None
        lowered = {t.lower for t in tokens(query.question)}
        intent_word = bool(
            lowered & {"share", "percentage", "percent", "proportion", "average", "mean", "distribution", "%"}
        )
        answer = not self.planner._demographic(plan.measure)
        return plan if intent_word or (answer and bool(plan.filters or plan.breakdown)) else None

    @staticmethod
    def _op_at(words: list[_Token], i: int) -> Op | None:
        key = phrase_at(words, i, _KEYS)
        return _WORDS[key] if key is not None else None

    # -- refining ---------------------------------------------------------------------------

    def _refine(self, query: QueryInput, words: list[_Token], previous: Reading) -> Plan | None:
        state = _State(
            intent=previous.intent,
            measure=previous.measure,
            values=list(previous.values),
            breakdown=previous.breakdown,
            filters={f.column: f for f in previous.filters},
            weighted=previous.weighted,
        )
        starts = {m.start: m for m in self.planner.mentions(query.question)}
        unplaced: list[str] = []
        pending: str | None = None  # the op waiting for its mention: by, drop, all, not, mark
        negate = add = False
        intent_word: str | None = None
        group: list[_Mention] = []

        def flush() -> None:
            nonlocal negate, add, pending
            if group:
                self._values(state, list(group), negate=negate, add=add, marked=pending == "mark")
                group.clear()
                negate = add = False
                pending = None

        i = 0
        while i < len(words):
            mention = starts.get(i)
            if mention is not None:
                i = mention.end
                if mention.value is not None and pending not in ("by", "drop", "all"):
                    if group and group[-1].column != mention.column:
                        flush()
                    group.append(mention)
                    continue
                flush()
                self._column(state, mention, pending, intent_word)
                pending, negate, add = None, False, False
                continue
            key = phrase_at(words, i, _KEYS)
            if key is not None:
                op = _WORDS[key]
                i += len(key)
                if op == "sep" or (key == ("and",) and group):
                    continue  # "Ontario or Quebec", "Quebec and Ontario": the group goes on
                flush()
                if op in ("by", "drop", "all", "mark"):
                    pending = op
                elif op == "not":
                    negate, pending = True, "mark"
                elif op == "add":
                    add = True
                elif op == "overall":
                    if state.breakdown is not None:
                        state.changes.append(f"dropped the breakdown by {state.breakdown}")
                        state.breakdown = None
                elif op == "everyone":
                    if state.filters:
                        state.changes.append("dropped every filter")
                        state.filters.clear()
                elif op in ("unweighted", "weighted"):
                    # Said even when it was already so: the analyst asked for it.
                    state.weighted = op == "weighted"
                    state.changes.append(op)
                elif op in ("mean", "dist", "share"):
                    intent_word = op
                    if op == "dist" and self.table.column(state.measure).type == "categorical":
                        state.intent, state.values = "distribution", []
                        state.changes.append(f"the whole distribution of {state.measure}")
                continue
            word = words[i]
            i += 1
            if word.lower in _FOLLOWUP_FILLER or self.planner._known(word.lower):
                continue
            unplaced.append(word.text)
        flush()
        if pending == "by":
            unplaced.append("by")
        if not state.changes:
            return None
        return self._plan(query, state, unplaced)

    def _values(self, state: _State, group: list[_Mention], *, negate: bool, add: bool, marked: bool) -> None:
        column = group[0].column
        values = list(dict.fromkeys(m.value for m in group if m.value is not None))
        shown = " or ".join(m.phrase for m in group)
        if column == state.measure and not marked:
            if negate:
                every = [v.value for v in self.table.column(column).values]
                values = [v for v in every if v not in values]
            state.values = list(dict.fromkeys([*state.values, *values])) if add else values
            state.intent = "share"
            state.changes.append(f"the share giving {', '.join(state.values)} of {column}")
            return
        if column == state.breakdown and not negate:
            # "what about Quebec?" after "by province": the breakdown narrows to what was named.
            state.breakdown = None
            state.changes.append(f"dropped the breakdown by {column}: {shown!r} names its groups")
        demographic = self.planner._demographic(column)
        if marked or negate or demographic or column in state.filters:
            old = state.filters.get(column)
            if add and old is not None and old.negate == negate:
                values = list(dict.fromkeys([*old.values, *values]))
            state.filters[column] = Filter(column=column, values=values, negate=negate)
            verb = "replaced" if old is not None and not add else "added"
            state.changes.append(
                f"{verb} the filter {column} {'not in' if negate else 'in'} {', '.join(values)}"
            )
            return
        # A value of another answer column, unmarked: the answer changes to it.
        state.filters.pop(column, None)
        if state.breakdown == column:
            state.breakdown = None
        state.intent, state.measure, state.values = "share", column, values
        state.changes.append(f"switched the answer to the share giving {', '.join(values)} of {column}")

    def _column(self, state: _State, mention: _Mention, pending: str | None, intent_word: str | None) -> None:
        column = self.table.column(mention.column)
        name = column.name
        if pending == "by":
            if name == state.measure:
                state.changes.append(f"cannot break {name} down by itself")
                state.doubts += 1
                return
            self._break_down(state, name)
            return
        if pending in ("drop", "all"):
            if name in state.filters:
                del state.filters[name]
                state.changes.append(f"dropped the filter on {name}")
            elif name == state.breakdown and pending == "drop":
                state.breakdown = None
                state.changes.append(f"dropped the breakdown by {name}")
            else:
                state.changes.append(f"there was no filter on {name} to drop")
                state.doubts += 1
            return
        if column.type != "categorical":
            state.intent, state.measure, state.values = "mean", name, []
            state.changes.append(f"switched to the mean of {name}")
        elif self.planner._demographic(name) and intent_word != "dist":
            if name != state.measure:
                self._break_down(state, name)
            return
        else:
            state.intent, state.measure, state.values = "distribution", name, []
            state.filters.pop(name, None)
            state.changes.append(f"switched to the distribution of {name}")
        if state.breakdown == name:
            state.breakdown = None

    @staticmethod
    def _break_down(state: _State, name: str) -> None:
        if state.breakdown == name:
            state.changes.append(f"kept the breakdown by {name}")
        else:
            state.changes.append(f"{'replaced' if state.breakdown else 'added'} the breakdown by {name}")
        state.breakdown = name
        if state.filters.pop(name, None) is not None:
            # A breakdown by a filtered column would show one group: the breakdown wins.
            state.changes.append(f"dropped the filter on {name} to show every group")

    def _plan(self, query: QueryInput, state: _State, unplaced: list[str]) -> Plan:
        spec = self.planner.spec
        reasons = ["read as a follow-up of the previous question: " + "; ".join(state.changes)]
        confidence = 1.0
        if state.intent == "share" and not state.values:
            # "share" asked of a distribution with no value named: keep the distribution.
            state.intent = "distribution"
        if state.intent == "mean" and self.table.column(state.measure).type == "categorical":
            raise PlanningError(f"{query.question!r}: {state.measure} is categorical and has no mean")
        confidence -= UNPLACED_COST * state.doubts
        if unplaced:
            confidence -= unplaced_cost(len(unplaced))
            shown = ", ".join(repr(w) for w in dict.fromkeys(unplaced))
            reasons.append(
                f"could not place {shown}: not a dictionary term, a follow-up word or known filler"
            )
        weighted = state.weighted and spec.weighting is not None
        return Plan(
            query_id=query.query_id,
            question=query.question,
            dataset=spec.name,
            intent=state.intent,  # type: ignore[arg-type]
            measure=state.measure,
            values=state.values if state.intent == "share" else [],
            breakdown=state.breakdown,
            filters=list(state.filters.values()),
            weighted=weighted,
            needs=worker_needs(weighted),
            confidence=round(max(confidence, 0.0), 4),
            reasons=reasons,
            provider="offline",
            latency_scale=query.latency_scale,
            read_as="followup",
        )


def plan_in_conversation(planner: OfflinePlanner, query: QueryInput, threshold: float = 0.8) -> Plan:
    """The offline plan of ``query``: on its own, or refined from the conversation's last reading."""
    conversation = query.conversation
    if conversation is None or not conversation.history:
        plan = planner.plan(query)
    else:
        plan = FollowUpReader(planner).plan(query, conversation.history[-1], threshold)
    # The plan names its turn and the readings it followed (at most HISTORY_TURNS: a reviewer
    # sees the conversation so far), never their questions' words or tables.
    return plan if conversation is None else plan.model_copy(update={"conversation": conversation})
