"""The size budgets, held by the handlers themselves (S3 and DynamoDB on the local engine).

Each test builds payloads at the largest a handler can be given or produce, runs the real
handlers, and composes what Step Functions would hold in one state (as the ASL's ResultPath and
Parameters assemble it) or what DynamoDB would hold in one item, and measures it against AWS's
limits: 262,144 bytes a state, 400 KB an item (see panelbrain.aws.budgets for the sources).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from panelbrain.agents import data_processor as data_processor_agent
from panelbrain.agents import plan as plan_agent
from panelbrain.agents import sql_writer as sql_writer_agent
from panelbrain.agents import synthesise as synthesise_agent
from panelbrain.agents import weight_applier as weight_applier_agent
from panelbrain.aws.blobs import resolve, resolve_all
from panelbrain.aws.budgets import ITEM_LIMIT_BYTES, STATE_LIMIT_BYTES, json_bytes
from panelbrain.errors import PayloadTooLargeError
from panelbrain.functions import (
    api,
    data_processor,
    formatter,
    persist,
    plan,
    sql_writer,
    synthesise,
    weight_applier,
)
from panelbrain.local.ask import api_gateway_event
from panelbrain.local.engine import LocalEngine
from panelbrain.models import Plan, Synthesis, WorkerResult

# The longest question QueryInput accepts, in characters of four UTF-8 bytes each.
LONGEST_QUESTION = "\U0001d53c" * 2_000
SETTINGS = {"answer": 0.8, "review": 0.5, "min_weighted_base": 0, "min_efficiency": 0, "sample_rate": 0}


@pytest.fixture(autouse=True)
def fresh_handlers(engine: LocalEngine) -> None:
    for getter in (persist.store, persist.cache, api.store, api.cache):
        getter.cache_clear()  # type: ignore[attr-defined]


def query() -> dict[str, Any]:
    return {
        "query_id": "q-" + "f" * 16,
        "question": LONGEST_QUESTION,
        "dataset": "ces11",
        "provider": "bedrock",
        "latency_scale": 0.0,
    }


def the_plan(**changes: Any) -> Plan:
    plan = Plan(
        query_id="q-" + "f" * 16,
        question=LONGEST_QUESTION,
        dataset="ces11",
        intent="share",
        measure="abortion",
        values=["Yes"],
        breakdown="province",
        needs={"sql_writer": True, "weight_applier": True, "data_processor": True},
        confidence=0.9,
        reasons=["a long reason " * 40] * 10,
        provider="bedrock",
    )
    return plan.model_copy(update=changes)


def rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "group": f"{i:06d}",
            "category": "Yes",
            "estimate": 0.123456789012345,
            "ci_low": 0.0123456789012345,
            "ci_high": 0.234567890123456,
            "weighted_base": 1.23456789012345,
            "unweighted_base": 1,
            "significant": False,
        }
        for i in range(count)
    ]


def output_of(size: int) -> dict[str, Any]:
    """A worker output of about ``size`` bytes of JSON."""
    return {"rows": [["x" * 90, i] for i in range(size // 100)]}


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it, rounded up: attribute names and values in UTF-8,
    3 bytes for a list or map and 1 for each element
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)."""

    def value(v: dict[str, Any]) -> int:
        kind, content = next(iter(v.items()))
        if kind == "L":
            return 3 + sum(1 + value(e) for e in content)
        if kind == "M":
            return 3 + sum(len(k.encode()) + 1 + value(e) for k, e in content.items())
        return len(str(content).encode())

    return sum(len(name.encode()) + value(v) for name, v in item.items())


def test_the_largest_state_of_the_pipeline_fits(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the longest question, a plan full of reasons, and three workers each returning just
    # under 200 KB (what each used to keep inline), and a synthesis with a 2 MB table
    plan_event = the_plan().model_dump(mode="json")
    for agent, name in (
        (sql_writer_agent, "sql_writer"),
        (weight_applier_agent, "weight_applier"),
        (data_processor_agent, "data_processor"),
    ):
        monkeypatch.setattr(
            agent, "run", lambda p, name=name: WorkerResult(worker=name, output=output_of(199_000))
        )
    workers = [
        handler.handler({"plan": plan_event}, None)
        for handler in (sql_writer, weight_applier, data_processor)
    ]
    table = rows(12_000)
    synthesis_model = Synthesis(
        query_id=plan_event["query_id"],
        question=LONGEST_QUESTION,
        dataset="ces11",
        answer="An answer. " * 400,
        table=table,
        sql="SELECT 1",
        weighting={"efficiency": 0.9, "variables": [{"detail": "w" * 100}] * 100},
        confidence=0.9,
        confidence_reasons=["a reason " * 20] * 20,
        provider="bedrock",
        plan=the_plan().model_dump(mode="json", exclude={"usage"}),
    )
    monkeypatch.setattr(synthesise_agent, "run", lambda p, r, **_: synthesis_model)
    # WHEN the workers and BrainSynthesise return
    synthesis = synthesise.handler({"plan": plan_event, "workers": workers, "settings": SETTINGS}, None)
    # THEN BrainSynthesise's output, which keeps its whole input beside the synthesis, fits a state
    state = {"query": query(), "settings": SETTINGS, "plan": plan_event, "workers": workers}
    assert json_bytes({**state, "synthesis": synthesis}) < STATE_LIMIT_BYTES
    # AND what went to S3 comes back whole
    assert [resolve(w["output"]) for w in workers] == [output_of(199_000)] * 3
    assert synthesis["table"]["rows"] == len(table) and resolve(synthesis["table"]) == table
    assert synthesis["table"]["head"] == table[: len(synthesis["table"]["head"])]
    # AND the states after it fit too: the formatter's markdown goes to S3, the answer is persisted
    formatted = formatter.handler({"synthesis": synthesis, "latency_scale": 0}, None)
    assert resolve(formatted["markdown"]).count("\n| ") == len(table) + 1
    later = {"query": query(), "settings": SETTINGS, "synthesis": synthesis, "formatted": formatted}
    result = {"markdown": formatted["markdown"], "document": synthesis}
    persisted = persist.handler(
        {"query_id": plan_event["query_id"], "status": "answered", "route": "formatter", "result": result},
        None,
    )
    assert json_bytes({**later, "persisted": persisted}) < STATE_LIMIT_BYTES
    assert json_bytes({**later, "terminal": {"result": {"synthesis": synthesis}}}) < STATE_LIMIT_BYTES


def test_a_plan_over_its_budget_fails_catchably(monkeypatch: pytest.MonkeyPatch) -> None:
    # Step Functions' own size error cannot be caught; ours can, so the query is recorded failed.
    monkeypatch.setattr(plan_agent, "run", lambda q: the_plan(reasons=["r" * 1_000] * 100))
    with pytest.raises(PayloadTooLargeError, match="the plan is"):
        plan.handler(query(), None)


def test_a_large_persisted_result_keeps_every_item_under_the_item_limit(engine: LocalEngine) -> None:
    # GIVEN an answer whose markdown and table are each larger than a DynamoDB item
    result = {
        "markdown": "| row |\n" * 80_000,
        "document": {
            "query_id": "q-" + "a" * 16,
            "question": "What share support a ban on abortion by province?",
            "dataset": "ces11",
            "plan": {"intent": "share", "measure": "abortion", "values": ["Yes"], "breakdown": "province"},
            "table": rows(5_000),
        },
    }
    assert (
        json_bytes(result["markdown"]) > ITEM_LIMIT_BYTES
        and json_bytes(result["document"]) > ITEM_LIMIT_BYTES
    )
    event = {"query_id": "q-" + "a" * 16, "status": "answered", "route": "formatter", "result": result}
    engine.clear_table("ResultCacheTable")
    # WHEN it is persisted
    persisted = persist.handler(event, None)
    # THEN the query item and the result cache item each stay under 400 KB
    dynamodb = engine.clients["dynamodb"]
    query_item = dynamodb.get_item(TableName="QueriesTable", Key={"query_id": {"S": event["query_id"]}})[
        "Item"
    ]
    assert persisted["written"] and item_bytes(query_item) < ITEM_LIMIT_BYTES
    (cached,) = dynamodb.scan(TableName="ResultCacheTable")["Items"]
    assert item_bytes(cached) < ITEM_LIMIT_BYTES
    # AND the API gives the whole result back
    response = api.handler(api_gateway_event("GET", f"/queries/{event['query_id']}"), None)
    assert json.loads(response["body"])["result"] == result
    assert resolve_all(json.loads(cached["result"]["S"])) == {**result, "route": "formatter"}
