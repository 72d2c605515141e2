"""What a query's logs may hold by stage: questions and answers never above DEBUG."""

from __future__ import annotations

import json

import pytest

from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine

QUESTION = "What share of people in QC strongly support a ban"  # goes to review: every function


@pytest.mark.parametrize(("stage", "logged"), [("prod", False), ("dev", True)])
def test_a_question_reaches_the_logs_only_at_debug(stage: str, logged: bool) -> None:
    # GIVEN the stage's log level (prod: INFO; dev: DEBUG) WHEN a question is asked and answered
    with LocalEngine.running(parameters={"Stage": stage}) as engine:
        answer = ask(engine, QUESTION, review="approve")
        text = json.dumps(list(engine.logs))
    # THEN the question's words, and the answer's, are in its logs on dev only
    assert answer["status"] == "answered"
    assert (QUESTION in text) is logged
    assert answer["answer"] not in text
