"""The offline follow-up reader: a follow-up's plan is the last reading refined by its words."""

from __future__ import annotations

import pytest

from panelbrain.agents.followup import plan_in_conversation
from panelbrain.agents.offline import OfflinePlanner, PlanningError
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import Conversation, Filter, QueryInput, Reading

CES11 = OfflinePlanner(load_dictionary("ces11"))
LAST = Reading(
    intent="share",
    measure="abortion",
    values=["Yes"],
    breakdown="province",
    filters=[Filter(column="gender", values=["Female"])],
)


def follow(question: str, last: Reading = LAST) -> tuple[Reading, str, float, list[str]]:
    conversation = Conversation(conversation_id="c-0123456789abcdef", turn=2, history=[last])
    plan = plan_in_conversation(
        CES11, QueryInput(query_id="q-1", question=question, conversation=conversation)
    )
    return Reading.of(plan), plan.read_as, plan.confidence, plan.reasons


@pytest.mark.parametrize(
    ("question", "changed"),
    [
        ("by education instead", {"breakdown": "education"}),
        ("overall", {"breakdown": None}),
        ("what about men?", {"filters": [Filter(column="gender", values=["Male"])]}),
        (
            "only rural",
            {
                "filters": [
                    Filter(column="gender", values=["Female"]),
                    Filter(column="urban", values=["rural"]),
                ]
            },
        ),
        ("drop the gender filter", {"filters": []}),
        ("everyone", {"filters": []}),
        ("what about oppose?", {"values": ["No"]}),
        ("unweighted", {"weighted": False}),
        ("what about religion?", {"intent": "distribution", "measure": "importance", "values": []}),
        (
            "what about Quebec?",
            {
                "breakdown": None,
                "filters": [
                    Filter(column="gender", values=["Female"]),
                    Filter(column="province", values=["QC"]),
                ],
            },
        ),
        (
            "not in Ontario",  # the other provinces, still broken down
            {
                "filters": [
                    Filter(column="gender", values=["Female"]),
                    Filter(column="province", values=["ON"], negate=True),
                ],
            },
        ),
    ],
)
def test_each_refinement_changes_only_what_it_names(question: str, changed: dict[str, object]) -> None:
    reading, read_as, confidence, _ = follow(question)
    assert read_as == "followup" and confidence == 1.0
    assert reading == LAST.model_copy(update=changed)


def test_a_question_of_its_own_is_read_as_new_and_says_so() -> None:
    reading, read_as, _, reasons = follow("What share of men say religion is very important?")
    assert read_as == "new" and reasons[0].startswith("read as a new question")
    assert reading == Reading(
        intent="share",
        measure="importance",
        values=["very"],
        filters=[Filter(column="gender", values=["Male"])],
    )


def test_a_word_it_cannot_place_costs_confidence() -> None:
    reading, _, confidence, reasons = follow("only women, roughly")
    assert confidence < 0.8 and any("'roughly'" in r for r in reasons)
    assert reading.filters == [Filter(column="gender", values=["Female"])]


def test_words_that_neither_refine_nor_ask_fail_with_a_reason() -> None:
    with pytest.raises(PlanningError, match="changes nothing in the previous question"):
        follow("hello there")


def test_asking_for_what_the_reading_cannot_do_costs_confidence() -> None:
    # "drop the urban filter" when there is none, a breakdown of the measure by itself
    for question in ("drop the urban filter", "by abortion"):
        reading, read_as, confidence, reasons = follow(question)
        assert read_as == "followup" and confidence < 0.8, (question, reasons)
        assert reading == LAST
