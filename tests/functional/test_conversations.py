"""Follow-up questions through the API on the local engine: conversations, their bounded state
and expiry, and the result cache keyed by the resolved reading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from panelbrain.aws.conversations import DynamoConversationStore
from panelbrain.functions import api
from panelbrain.local.ask import api_gateway_event
from panelbrain.local.engine import LocalEngine
from tests.functional.test_payload_budgets import item_bytes

PIPELINE = "QueryPipelineStateMachine"
FIRST = "What share support a ban on abortion?"
# One conversation's follow-ups: every refinement kind, then around again.
FOLLOW_UPS = [
    "and by province?",  # add a breakdown
    "only women",  # add a filter
    "what about Quebec?",  # a filter on the breakdown's column: it narrows to one group
    "unweighted",  # weighting
    "what about oppose?",  # switch the value
    "same for men",  # replace a filter
    "drop the gender filter",  # drop a filter
    "by education",  # change the breakdown
    "weighted",
    "what about religion?",  # switch the measure
    "very important",  # a value of the new measure
    "everyone",  # drop every filter
    "overall",  # drop the breakdown
]


@pytest.fixture(autouse=True)
def fresh_tables(engine: LocalEngine) -> Iterator[None]:
    engine.clear_table("ResultCacheTable")
    engine.empty_queue("QueryQueue")
    yield
    api.conversations.cache_clear()  # type: ignore[attr-defined]


def post(
    engine: LocalEngine, question: str, conversation_id: str | None = None
) -> tuple[int, dict[str, Any]]:
    """POST /queries through the template's API, and run whatever it queued to its end."""
    body = {"question": question, **({"conversation_id": conversation_id} if conversation_id else {})}
    response = engine.api_call(api_gateway_event("POST", "/queries", json.dumps(body)))
    document = json.loads(response["body"])
    if response["statusCode"] == 202:
        while engine.deliver("QueryQueue", "PollerFunction") is not None:
            pass
        engine.wait(engine.execution_arn(PIPELINE, document["query_id"]))
    return response["statusCode"], document


def get(engine: LocalEngine, path: str) -> tuple[int, dict[str, Any]]:
    response = engine.api_call(api_gateway_event("GET", path))
    return response["statusCode"], json.loads(response["body"])


def executions(engine: LocalEngine) -> int:
    return sum(1 for i in engine.invocations if i.function == "BrainPlanFunction")


def cache_metrics(engine: LocalEngine, name: str) -> list[dict[str, Any]]:
    """The EMF lines of ``name`` with their dimensions (service, route, turn)."""
    found = []
    for line in engine.metric_lines:
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if any(m["Name"] == name for m in directive["Metrics"]):
                found.append({d: document.get(d) for dims in directive["Dimensions"] for d in dims})
    return found


def test_a_fifty_turn_conversation_keeps_small_turns_and_lists_them(engine: LocalEngine) -> None:
    # GIVEN a first question, which opens a conversation
    status, first = post(engine, FIRST)
    assert status == 202 and first["turn"] == 1 and first["read_as"] == "question"
    conversation = first["conversation_id"]
    # WHEN 49 follow-ups refine it, each answered (or served from the cache) before the next
    for n in range(2, 51):
        question = FOLLOW_UPS[(n - 2) % len(FOLLOW_UPS)]
        status, answer = post(engine, question, conversation)
        assert status in (200, 202), answer
        assert (answer["conversation_id"], answer["turn"], answer["read_as"]) == (conversation, n, "followup")
    # THEN every turn is listed in order with its question, reading, status and answer link
    status, listed = get(engine, f"/conversations/{conversation}")
    assert status == 200
    turns = listed["turns"]
    assert [t["turn"] for t in turns] == list(range(1, 51))
    assert all(t["status"] == "answered" for t in turns), [t for t in turns if t["status"] != "answered"]
    assert turns[1]["reading"]["breakdown"] == "province"
    assert turns[3]["reading"]["filters"] == [
        {"column": "gender", "values": ["Female"], "negate": False},
        {"column": "province", "values": ["QC"], "negate": False},
    ]
    assert turns[4]["reading"]["weighted"] is False
    assert turns[10]["reading"]["measure"] == "importance"
    status, linked = get(engine, turns[49]["answer_url"])
    assert status == 200 and linked["status"] == "answered"
    # AND each turn's stored item stays under 4 KB, the 50th no bigger than the first turns
    items = engine.clients["dynamodb"].query(
        TableName="ConversationsTable",
        KeyConditionExpression="conversation_id = :c",
        ExpressionAttributeValues={":c": {"S": conversation}},
    )["Items"]
    sizes = {int(i["turn"]["N"]): item_bytes(i) for i in items}
    assert len(sizes) == 50 and max(sizes.values()) < 4096, sizes
    assert sizes[50] <= max(sizes[n] for n in range(1, 14)), sizes


def test_a_conversation_is_gone_after_its_ttl(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a conversation with a follow-up, and the stack's TTL
    hours = float(engine.template.parameters.get("ConversationTtlHours", "24"))
    _, first = post(engine, "What share say religion is very important?")
    conversation = first["conversation_id"]
    assert post(engine, "by gender", conversation)[0] in (200, 202)
    assert get(engine, f"/conversations/{conversation}")[0] == 200
    # WHEN the clock passes the TTL (DynamoDB, and moto, may still hold the items)
    later = first_turn_expiry(engine, conversation) + 1
    monkeypatch.setattr(api, "conversations", lambda: DynamoConversationStore(clock=lambda: later))
    # THEN the conversation is not found, nor can a follow-up join it
    status, body = get(engine, f"/conversations/{conversation}")
    assert status == 404 and "expire" in body["message"]
    status, body = post(engine, "only men", conversation)
    assert status == 404 and "expire" in body["error"]
    assert (
        engine.clients["dynamodb"]
        .get_item(
            TableName="ConversationsTable", Key={"conversation_id": {"S": conversation}, "turn": {"N": "1"}}
        )
        .get("Item")
    )
    assert later - first_turn_created(engine, conversation) > hours * 3600


def first_turn_expiry(engine: LocalEngine, conversation: str) -> float:
    return float(first_turn(engine, conversation)["expires_at"]["N"])


def first_turn_created(engine: LocalEngine, conversation: str) -> float:
    return float(first_turn(engine, conversation)["created_at"]["N"])


def first_turn(engine: LocalEngine, conversation: str) -> dict[str, Any]:
    item: dict[str, Any] = engine.clients["dynamodb"].get_item(
        TableName="ConversationsTable", Key={"conversation_id": {"S": conversation}, "turn": {"N": "1"}}
    )["Item"]
    return item


def test_paraphrases_and_a_follow_up_of_an_answered_reading_start_no_execution(engine: LocalEngine) -> None:
    # GIVEN an answered question
    status, answered = post(engine, "What share of women support a ban on abortion?")
    assert status == 202
    hits_before = len(cache_metrics(engine, "ResultCacheHit"))
    before = executions(engine)
    # WHEN three paraphrases of it are asked, and a conversation's follow-up resolves to it
    paraphrases = [
        "What percentage of women support a ban on abortion?",
        "Share of women in favour of a ban on abortion",
        "Among women, what share support a ban on abortion?",
    ]
    replies = [post(engine, q) for q in paraphrases]
    _, opened = post(engine, "What share of men support a ban on abortion?")
    replies.append(post(engine, "what about women?", opened["conversation_id"]))
    # THEN each is answered from the cache: no execution started, no model called
    assert [status for status, _ in replies] == [200] * 4, replies
    assert all(reply["cached"] and reply["status"] == "answered" for _, reply in replies)
    assert executions(engine) == before + 1  # the men's question only
    assert replies[-1][1]["read_as"] == "followup"
    for _, reply in replies:
        status, record = get(engine, f"/queries/{reply['query_id']}")
        assert record["route"] == "cache" and "women" in record["result"]["markdown"]
    # AND the hits are metrics, by turn: three first questions and one follow-up
    hits = cache_metrics(engine, "ResultCacheHit")[hits_before:]
    by_turn = [h["turn"] for h in hits if h.get("turn")]
    assert sorted(by_turn) == ["first", "first", "first", "followup"]
    assert answered["query_id"] not in [reply["query_id"] for _, reply in replies]


def test_an_unsure_reading_never_keys_the_cache(engine: LocalEngine) -> None:
    # GIVEN an answered question
    post(engine, "What share support a ban on abortion by gender?")
    before = executions(engine)
    # WHEN a paraphrase the offline reader is unsure of (an unplaced word) resolves to it
    status, reply = post(engine, "What share support a ban on abortion by gender, roughly?")
    # THEN it runs the pipeline (and its routing rules) rather than taking the cached answer
    assert status == 202 and "cached" not in reply and executions(engine) == before + 1
    assert cache_metrics(engine, "ResultCacheMiss")


def test_a_follow_up_that_does_not_relate_is_read_as_a_new_question(engine: LocalEngine) -> None:
    # GIVEN a conversation about abortion among women
    _, first = post(engine, "What share of women support a ban on abortion?")
    # WHEN the next question names its own answer, with no follow-up word
    status, reply = post(
        engine, "What share of men say religion is very important?", first["conversation_id"]
    )
    assert status == 202
    # THEN it is read as a new question, and says so
    assert reply["read_as"] == "new" and reply["turn"] == 2
    assert reply["reading"]["measure"] == "importance"
    assert reply["reading"]["filters"] == [{"column": "gender", "values": ["Male"], "negate": False}]
    _, record = get(engine, f"/queries/{reply['query_id']}")
    reasons = record["result"]["document"]["confidence_reasons"]
    assert any("read as a new question" in r for r in reasons), reasons


def test_an_unknown_or_malformed_conversation_is_refused(engine: LocalEngine) -> None:
    assert post(engine, "by province", "c-0000000000000000")[0] == 404
    response = engine.api_call(
        api_gateway_event("POST", "/queries", json.dumps({"question": "by province", "conversation_id": "x"}))
    )
    assert response["statusCode"] == 422 and "conversation_id" in response["body"]
    assert get(engine, "/conversations/nope")[0] == 404


def test_two_follow_ups_racing_for_one_turn_never_overwrite_each_other(engine: LocalEngine) -> None:
    from panelbrain.aws.conversations import Turn, TurnTakenError

    # GIVEN a conversation whose turn 2 was just taken by one follow-up
    _, first = post(engine, "What share say religion is very important?")
    store = DynamoConversationStore(table_name="ConversationsTable", client=engine.clients["dynamodb"])
    (last,) = store.last_turns(first["conversation_id"], 1) or []
    taken = last.model_copy(update={"turn": 2, "query_id": "q-aaaaaaaaaaaaaaaa", "question": "by gender"})
    store.add_turn(taken)
    # WHEN another follow-up read the conversation before that write and claims turn 2 too
    with pytest.raises(TurnTakenError, match="send this one again"):
        store.add_turn(taken.model_copy(update={"query_id": "q-bbbbbbbbbbbbbbbb", "question": "by province"}))
    # THEN the first one's turn stands
    turns = store.turns(first["conversation_id"]) or []
    assert [(t.turn, t.question) for t in turns] == [(1, last.question), (2, "by gender")]
    assert isinstance(turns[0], Turn)
