"""A review nobody answers: heartbeat and timeout end it in a terminal state.

Its own engine (not the shared one), with a 2 s timeout and a 1 s heartbeat instead of the
template's 3600 s and 300 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.local.ask import REVIEW, ask
from panelbrain.local.engine import LocalEngine

AMBIGUOUS = "What share of people in QC support a ban"


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield  # this module does not use the shared engine


def test_review_without_decision_times_out_into_a_terminal_state() -> None:
    # A separate engine whose review waits 2 s with a 1 s heartbeat, instead of 3600 s / 300 s.
    with LocalEngine.running(
        parameters={"ReviewTimeoutSeconds": "2", "ReviewHeartbeatSeconds": "1"}
    ) as engine:
        result = ask(engine, AMBIGUOUS)
        assert result["status"] == "needs_review"
        engine.wait(engine.execution_arn(REVIEW, result["query_id"]), timeout_s=30)
        stored = DynamoQueryStore().get(result["query_id"])
        assert stored is not None
        assert (stored["status"], stored["route"]) == ("failed", "review_timeout")
        assert stored["reason"] == "no review decision before the timeout"
