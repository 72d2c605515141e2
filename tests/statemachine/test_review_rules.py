"""The review rules in configuration, through the real pipeline: a confident answer still goes to
a person when the template's always-review rules or its quality sample say so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panelbrain.functions.review_common import service
from panelbrain.local.ask import ask, open_review
from panelbrain.local.engine import LocalEngine

CONFIDENT = "What share support a ban on abortion by province?"  # answered at the defaults


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield  # this module starts engines of its own


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"ReviewMinWeightedBase": "1000"}, "smallest weighted base shown is"),
        ({"ReviewMinEfficiency": "0.9"}, "weighting efficiency 60% is below the review rule's 90%"),
        ({"ReviewSampleRate": "1"}, "sampled for a quality check (100% of confident answers are)"),
    ],
)
def test_rules_send_a_confident_answer_to_review(parameters: dict[str, str], reason: str) -> None:
    with LocalEngine.running(parameters=parameters) as engine:
        result = ask(engine, CONFIDENT)
        assert result["confidence"] >= 0.8
        assert (result["status"], result["route"]) == ("needs_review", "review")
        review = open_review(result["query_id"])
        assert any(reason in r for r in review.review_reasons), review.review_reasons
        # The reviewer sees why: the reasons travel into the e-mail, Slack and the page.
        assert service().store.get(review.review_id) == review


def test_rules_left_at_their_defaults_answer_it() -> None:
    with LocalEngine.running() as engine:
        result = ask(engine, CONFIDENT)
        assert (result["status"], result["route"]) == ("answered", "formatter")
