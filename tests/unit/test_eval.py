"""The eval's parts without the engine: the gold set, reading comparison, scoring against the
data plane, calibration, and the record/replay of Bedrock responses at botocore's events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from panelbrain.data.dictionary import load_dictionary
from panelbrain.errors import BadInputError
from panelbrain.eval.gold import GoldQuestion, load_set, parse_set, reading_of_plan, set_names
from panelbrain.eval.reference import DataPlane
from panelbrain.eval.replay import Player, Recorder, ReplayMissError, replay_client
from panelbrain.eval.runner import Outcome, _calibration, score

CES11 = load_dictionary("ces11")
NOT_QC = ["AB", "BC", "MB", "NB", "NL", "NS", "ON", "PE", "SK"]


def plan(**fields: Any) -> dict[str, Any]:
    base = {"intent": "share", "measure": "abortion", "values": ["Yes"], "breakdown": None, "filters": []}
    return {**base, "weighted": True, **fields}


def gold(entry: dict[str, Any], dataset: str = "ces11") -> GoldQuestion:
    return parse_set({"datasets": {dataset: [entry]}}, "test").questions[0]


# -- the gold set ---------------------------------------------------------------------------------


def test_the_shipped_set_covers_every_column_and_construct_the_issue_names() -> None:
    questions = load_set("gold").questions
    answerable = [q for q in questions if q.kind == "answer"]
    assert len(questions) >= 80
    for name in ("ces11", "synthetic"):
        table = load_dictionary(name).main_table
        askable = {c.name for c in table.columns if c.role is None}
        used: set[str] = set()
        for q in answerable:
            if q.dataset == name and q.reading is not None:
                used |= {q.reading.measure, q.reading.breakdown or q.reading.measure}
                used |= {c for c, _ in q.reading.filters}
        assert askable <= used, f"{name}: no question asks about {sorted(askable - used)}"
    tags = {t for q in answerable for t in q.tags}
    assert {"paraphrase", "several-filters", "negation", "value-list", "breakdown", "unweighted"} <= tags
    assert sum(q.kind == "fail" for q in questions) >= 8
    assert all(q.words for q in questions if q.kind != "answer")


@pytest.mark.parametrize("name", set_names())
def test_every_shipped_set_loads_with_readings_the_dictionary_knows(name: str) -> None:
    questions = load_set(name).questions
    assert questions and len({q.id for q in questions}) == len(questions)


def test_the_follow_up_set_has_25_chains_of_2_to_5_turns_over_every_refinement() -> None:
    followups = load_set("followups")
    chains: dict[str, list[GoldQuestion]] = {}
    for question in followups.questions:
        assert question.chain is not None
        chains.setdefault(question.chain, []).append(question)
    assert len(chains) >= 25
    assert all(2 <= len(turns) <= 5 for turns in chains.values())
    assert all([q.turn for q in turns] == list(range(1, len(turns) + 1)) for turns in chains.values())
    kinds = {tag for q in followups.questions if q.turn > 1 for tag in q.tags}
    assert kinds >= {
        "add-breakdown",
        "change-breakdown",
        "drop-breakdown",
        "add-filter",
        "replace-filter",
        "drop-filter",
        "negate-filter",
        "switch-measure",
        "switch-value",
        "weighting",
        "same-for",
        "new-question",
    }


def test_a_chain_of_one_turn_is_refused() -> None:
    raw = {
        "chains": {"ces11": [{"chain": "short", "turns": [{"q": "by province", "distribution": "province"}]}]}
    }
    with pytest.raises(BadInputError, match="2 to 5 `turns`"):
        parse_set(raw, "t")


def test_a_negated_filter_keeps_every_other_code() -> None:
    q = gold({"q": "x", "share": {"abortion": ["Yes"]}, "among": {"province": {"not": ["QC"]}}})
    assert q.reading is not None
    assert dict(q.reading.filters) == {"province": frozenset(NOT_QC)}


def test_a_gold_code_yaml_read_as_a_boolean_is_refused_at_load() -> None:
    # `abortion: [Yes]` unquoted is [True] to YAML: the set must not load with it.
    with pytest.raises(BadInputError, match=r"True is not a code of abortion.*YAML reads unquoted Yes"):
        gold({"q": "x", "share": {"abortion": [True]}})


def test_a_gold_reading_on_a_column_the_dataset_lacks_is_refused() -> None:
    with pytest.raises(BadInputError, match="'income' is not a column of ces11"):
        gold({"q": "x", "mean": "income"})


def test_a_repeated_question_is_refused_the_result_cache_would_answer_it() -> None:
    entry = {"q": "Share who support a ban", "share": {"abortion": ["Yes"]}}
    with pytest.raises(BadInputError, match="asked twice"):
        parse_set({"datasets": {"ces11": [entry, entry]}}, "test")


def test_an_unknown_set_names_the_sets_there_are() -> None:
    with pytest.raises(
        BadInputError, match="no gold set 'nope'; sets: followups, followups-holdout, gold, holdout"
    ):
        load_set("nope")


# -- readings -------------------------------------------------------------------------------------


def test_negation_in_the_plan_compares_equal_to_the_codes_it_keeps() -> None:
    q = gold({"q": "x", "share": {"abortion": ["Yes"]}, "among": {"province": {"not": ["QC"]}}})
    negated = reading_of_plan(plan(filters=[{"column": "province", "values": ["QC"], "negate": True}]), CES11)
    listed = reading_of_plan(plan(filters=[{"column": "province", "values": NOT_QC}]), CES11)
    assert negated == q.reading == listed


def test_a_dropped_filter_is_a_difference_that_names_it() -> None:
    q = gold({"q": "x", "share": {"abortion": ["Yes"]}, "among": {"gender": ["Female"], "urban": ["rural"]}})
    assert q.reading is not None
    got = reading_of_plan(plan(filters=[{"column": "gender", "values": ["Female"]}]), CES11)
    assert q.reading.differences(got) == [
        "filters: wanted {gender: [Female]; urban: [rural]}, got {gender: [Female]}"
    ]


# -- scoring --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plane() -> DataPlane:
    return DataPlane()


def document(
    confidence: float | None, table: list[dict[str, Any]], status: str = "answered"
) -> dict[str, Any]:
    route = {"answered": "formatter", "needs_review": "review", "failed": "error"}[status]
    return {"status": status, "route": route, "reason": None, "confidence": confidence, "table": table}


def test_the_data_planes_answer_is_the_share_of_the_rows_the_filters_keep(plane: DataPlane) -> None:
    from panelbrain.data.catalog import load_dataset, weight_dataset

    data = load_dataset("ces11")
    frame, weights = data.frame, weight_dataset(data).weights.to_numpy()
    keep = (frame["gender"] == "Female") & (frame["province"] != "QC")
    supports = (frame["abortion"] == "Yes")[keep].to_numpy(dtype=float)
    entry = {
        "q": "x",
        "share": {"abortion": ["Yes"]},
        "among": {"gender": ["Female"], "province": {"not": ["QC"]}},
    }
    weighted, unweighted = gold(entry), gold({**entry, "unweighted": True})
    assert weighted.reading is not None and unweighted.reading is not None
    assert plane.answer("ces11", weighted.reading) == {
        ("All", "Yes"): pytest.approx(np.average(supports, weights=weights[keep.to_numpy()]), abs=1e-12)
    }
    assert plane.answer("ces11", unweighted.reading) == {
        ("All", "Yes"): pytest.approx(supports.mean(), abs=1e-12)
    }


def test_a_right_reading_with_the_data_planes_numbers_is_correct(plane: DataPlane) -> None:
    q = gold({"q": "x", "share": {"abortion": ["Yes"]}, "among": {"gender": ["Female"]}})
    assert q.reading is not None
    cells = plane.answer("ces11", q.reading)
    table = [{"group": g, "category": c, "estimate": v} for (g, c), v in cells.items()]
    outcome = score(
        q, document(0.95, table), plan(filters=[{"column": "gender", "values": ["Female"]}]), plane, 0.8
    )
    assert (outcome.reading_ok, outcome.estimate_error, outcome.correct) == (True, 0.0, True)
    assert not outcome.confidently_wrong


def test_a_dropped_filter_answered_confidently_is_confidently_wrong(plane: DataPlane) -> None:
    q = gold({"q": "x", "share": {"abortion": ["Yes"]}, "among": {"gender": ["Female"], "urban": ["rural"]}})
    wrong = plan(filters=[{"column": "gender", "values": ["Female"]}])
    got = reading_of_plan(wrong, CES11)
    cells = plane.answer("ces11", got)  # the pipeline's numbers for the question it did answer
    table = [{"group": g, "category": c, "estimate": v} for (g, c), v in cells.items()]
    outcome = score(q, document(1.0, table), wrong, plane, 0.8)
    assert outcome.reading_ok is False and outcome.confidently_wrong
    # Same cells, other rows: the estimate error is how far off the published number is.
    assert outcome.estimate_error is not None and outcome.estimate_error > 0.001


def test_a_must_fail_question_fails_only_when_the_reason_names_the_words(plane: DataPlane) -> None:
    q = gold({"q": "What is the average height?", "fail": ["height"]})
    failed = {**document(None, [], "failed"), "reason": "PlanningError: no column for 'height'"}
    assert score(q, failed, None, plane, 0.8).failed_clearly
    vague = {**document(None, [], "failed"), "reason": "PlanningError: something went wrong"}
    outcome = score(q, vague, None, plane, 0.8)
    assert not outcome.failed_clearly and outcome.missing_words == ["height"]
    answered = score(q, document(0.9, []), plan(), plane, 0.8)
    assert answered.confidently_wrong and not answered.failed_clearly


def test_required_words_match_whole_words_only() -> None:
    q = gold({"q": "average age", "fail": ["age"]})
    assert q.names_every_word("no numeric column in 'the average income'") == ["age"]
    assert q.names_every_word("no column for 'age'") == []


def test_calibration_bins_and_brier_score() -> None:
    def outcome(confidence: float | None, correct: bool) -> Outcome:
        o = Outcome("q", "ces11", "x", "answer", [], "answered", "answered", None, confidence, [], None, None)
        o.correct = correct
        return o

    report = _calibration([outcome(1.0, True), outcome(0.9, False), outcome(0.6, True), outcome(None, False)])
    assert report["n"] == 3
    assert report["brier"] == pytest.approx((0.0 + 0.81 + 0.16) / 3, abs=1e-4)
    top = report["bins"][-1]
    assert (top["n"], top["mean_confidence"], top["share_correct"]) == (2, 0.95, 0.5)


# -- record and replay ----------------------------------------------------------------------------

CONVERSE = {
    "modelId": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "messages": [{"role": "user", "content": [{"text": "share who support a ban"}]}],
}
REPLY = {
    "output": {"message": {"role": "assistant", "content": [{"text": "a plan"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
    "metrics": {"latencyMs": 700},
}


def stubbed_client() -> tuple[Any, Stubber]:
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


def test_a_recorded_response_replays_for_the_same_request_and_never_for_another(tmp_path: Path) -> None:
    client, stubber = stubbed_client()
    recorder = Recorder(tmp_path)
    recorder.attach(client)
    stubber.add_response("converse", REPLY)
    assert client.converse(**CONVERSE)["output"] == REPLY["output"]
    assert recorder.count == 1
    assert json.loads((tmp_path / "responses.jsonl").read_text())["status"] == 200
    # The builder keeps its clients for the process: once detached, the client records no more.
    recorder.detach(client)
    stubber.add_response("converse", REPLY)
    client.converse(**CONVERSE)
    assert recorder.count == 1

    player = Player(tmp_path)
    replaying = player.attach(replay_client())
    replayed = replaying.converse(**CONVERSE)
    assert (replayed["output"], replayed["usage"]) == (REPLY["output"], REPLY["usage"])
    other = {**CONVERSE, "messages": [{"role": "user", "content": [{"text": "another question"}]}]}
    with pytest.raises(ReplayMissError, match="no recorded response for this Converse request"):
        replaying.converse(**other)
    assert (player.replayed, player.misses) == (1, 1)


def test_a_recorded_throttle_replays_as_the_same_client_error(tmp_path: Path) -> None:
    client, stubber = stubbed_client()
    Recorder(tmp_path).attach(client)
    stubber.add_client_error("converse", "ThrottlingException", "slow down", http_status_code=429)
    with pytest.raises(ClientError):
        client.converse(**CONVERSE)
    replaying = Player(tmp_path).attach(replay_client())
    with pytest.raises(ClientError) as raised:
        replaying.converse(**CONVERSE)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"


def test_replay_from_a_folder_without_a_recording_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--record"):
        Player(tmp_path)
