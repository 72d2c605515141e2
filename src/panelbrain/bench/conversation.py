"""A long conversation through the API on the local engine: does a turn cost more as the
conversation grows? Each turn is timed at the API (``POST /queries``: the conversation read, the
follow-up planned, the turn written) and end to end (through the pipeline to its terminal
status), with the size of the turn's stored item; every turn is a reading not answered before,
so each one runs the pipeline (no cache hit flatters the later turns).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

PIPELINE = "QueryPipelineStateMachine"
PROVINCES = [
    "Alberta",
    "British Columbia",
    "Manitoba",
    "New Brunswick",
    "Newfoundland",
    "Nova Scotia",
    "Ontario",
    "Prince Edward Island",
    "Quebec",
    "Saskatchewan",
]


def questions() -> list[str]:
    """Fifty turns, each resolving to a reading of its own: the provinces in turn, then the
    same among women, men, unweighted, and for the other answer."""
    turns = ["What share support a ban on abortion?"]
    turns += [f"what about {p}?" for p in PROVINCES]
    turns += ["only women", *(f"what about {p}?" for p in PROVINCES[:-1])]
    turns += ["same for men", *(f"what about {p}?" for p in PROVINCES if p != "Quebec")]
    turns += ["unweighted", *(f"what about {p}?" for p in PROVINCES if p != "Saskatchewan")]
    turns += ["what about oppose?", *(f"what about {p}?" for p in PROVINCES[:8])]
    return turns


def _item_bytes(item: dict[str, Any]) -> int:
    """A flat item's size as DynamoDB counts it: attribute names and values in UTF-8
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)."""
    return sum(len(name.encode()) + len(str(next(iter(v.values()))).encode()) for name, v in item.items())


def run_conversation_benchmark(
    repeat: int = 3, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    from panelbrain.local.ask import api_gateway_event
    from panelbrain.local.engine import LocalEngine

    asked = questions()
    api_ms: list[list[float]] = [[] for _ in asked]
    total_ms: list[list[float]] = [[] for _ in asked]
    sizes: list[int] = []
    hits = 0
    with LocalEngine.running() as engine:
        table = engine.template.resolve({"Ref": "ConversationsTable"})

        def post(question: str, conversation: str | None) -> tuple[dict[str, Any], float, float]:
            body = {"question": question, **({"conversation_id": conversation} if conversation else {})}
            started = time.perf_counter()
            response = engine.api_call(api_gateway_event("POST", "/queries", json.dumps(body)))
            accepted = time.perf_counter()
            document = json.loads(response["body"])
            if response["statusCode"] == 202:
                while engine.deliver("QueryQueue", "PollerFunction") is not None:
                    pass
                engine.wait(engine.execution_arn(PIPELINE, document["query_id"]))
            elif response["statusCode"] != 200:
                raise RuntimeError(f"turn {question!r}: {response['statusCode']} {document}")
            ended = time.perf_counter()
            return document, (accepted - started) * 1000, (ended - started) * 1000

        post("What share say religion is very important?", None)  # warm: imports, first invocations
        for run in range(repeat):
            engine.clear_table("ResultCacheTable")  # each run pays for its own answers
            conversation: str | None = None
            for n, question in enumerate(asked):
                document, api, total = post(question, conversation)
                conversation = document["conversation_id"]
                hits += bool(document.get("cached"))
                api_ms[n].append(api)
                total_ms[n].append(total)
            items = engine.clients["dynamodb"].query(
                TableName=table,
                KeyConditionExpression="conversation_id = :c",
                ExpressionAttributeValues={":c": {"S": conversation}},
            )["Items"]
            sizes = [_item_bytes(i) for i in sorted(items, key=lambda i: int(i["turn"]["N"]))]
            if progress is not None:
                progress(f"run {run + 1}/{repeat}: {len(items)} turns")

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    def span(rows: list[list[float]]) -> float:
        return median([v for row in rows for v in row])

    return {
        "turns": len(asked),
        "repeat": repeat,
        "cache_hits": hits,
        "api_ms": {
            "turn_1": median(api_ms[0]),
            "turn_50": median(api_ms[-1]),
            "turns_2_11": span(api_ms[1:11]),
            "turns_41_50": span(api_ms[-10:]),
        },
        "end_to_end_ms": {
            "turn_1": median(total_ms[0]),
            "turn_50": median(total_ms[-1]),
            "turns_2_11": span(total_ms[1:11]),
            "turns_41_50": span(total_ms[-10:]),
        },
        "turn_item_bytes": {"turn_1": sizes[0], "turn_50": sizes[-1], "max": max(sizes)},
        "per_turn": [
            {"turn": n + 1, "question": q, "api_ms": median(api_ms[n]), "end_to_end_ms": median(total_ms[n])}
            for n, q in enumerate(asked)
        ],
    }
