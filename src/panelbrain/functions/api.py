"""API function: POST /queries (accept, queue, 202), GET /queries/{query_id} and
GET /conversations/{conversation_id}.

Every question is a turn of a conversation (a new one unless the request names one). Its reading
is resolved here by the offline planner (cheap and deterministic: the dictionary, no model), from
the conversation's last reading for a follow-up, and a confident reading that was answered before
is served from the result cache without starting the pipeline (docs/adr/0027-conversations.md).

Imports stay light (no pandas, no langchain): Powertools' event handler, pydantic, boto3.
"""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from panelbrain.agents.followup import plan_in_conversation
from panelbrain.agents.offline import OfflinePlanner, PlanningError
from panelbrain.aws.blobs import resolve_all
from panelbrain.aws.cache import DynamoResultCache, ResultCache, reading_key
from panelbrain.aws.conversations import (
    ConversationStore,
    DynamoConversationStore,
    Turn,
    TurnTakenError,
    new_conversation_id,
    ttl_seconds,
)
from panelbrain.aws.queue import QueryQueue, SqsQueryQueue
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.data.dictionary import dataset_names, load_dictionary
from panelbrain.models import (
    CONVERSATION_ID,
    HISTORY_TURNS,
    Conversation,
    Plan,
    QueryInput,
    QueryMessage,
    QueryRequest,
    Reading,
    TerminalRecord,
)
from panelbrain.observe import PATH_QUERY_ID, correlate, logged, logger

# Reads and refused requests publish no metric, which is right; Powertools warns on each.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

QUERY_ID = re.compile(r"q-[0-9a-f]{16}")
CONVERSATION = re.compile(CONVERSATION_ID)
app = APIGatewayRestResolver(enable_validation=True)
metrics = Metrics(namespace=os.environ.get("PANELBRAIN_METRICS_NAMESPACE", "panelbrain"), service="api")
# Built on first use and kept for the container's life, as Lambda reuses it between requests.
store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)
cache: Callable[[], ResultCache] = functools.cache(DynamoResultCache)
queue: Callable[[], QueryQueue] = functools.cache(SqsQueryQueue)
conversations: Callable[[], ConversationStore] = functools.cache(DynamoConversationStore)


def _error(status: int, message: str) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type="application/json", body={"error": message})


def _cache_metric(name: str, turn: str) -> None:
    """A hit or a miss, in the service's stream (the dashboard's line) and by the kind of turn
    (a first question or a follow-up), each a metric stream of its own."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={"service": "api"},
    ) as metric:
        metric.add_dimension(name="route", value="POST /queries")
        metric.add_dimension(name="turn", value=turn)


def _planner(dataset: str) -> OfflinePlanner:
    # Per published version (a republish may change the dictionary's words): a container kept
    # warm across a republish reads questions with the new dictionary.
    return _planner_at(dataset, load_dictionary(dataset).data_version)


@functools.cache
def _planner_at(dataset: str, version: str) -> OfflinePlanner:
    # The dictionary's phrases, sorted once per version: planning a question is then a walk.
    return OfflinePlanner(load_dictionary(dataset, version))


def _offline_reading(query: QueryInput) -> Plan | None:
    """The reading the offline planner resolves (None if it cannot read the question)."""
    try:
        return plan_in_conversation(_planner(query.dataset), query, _answer_threshold())
    except PlanningError:
        return None


def _answer_threshold() -> float:
    return float(os.environ.get("ANSWER_CONFIDENCE_THRESHOLD", "0.8"))


def invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
    """422 naming each field that is wrong and why (Powertools' default omits the why)."""
    problems = [
        {
            "field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
            "problem": e.get("msg", e["type"]),
        }
        for e in error.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return Response(
        status_code=422, content_type="application/json", body={"error": summary, "problems": problems}
    )


app.exception_handler(RequestValidationError)(invalid_request)


@app.post("/queries")
def create_query(request: QueryRequest) -> Response[dict[str, Any]]:
    previous: list[Turn] = []
    if request.conversation_id is not None:
        previous = conversations().last_turns(request.conversation_id, HISTORY_TURNS) or []
        if not previous:
            return _error(
                404, f"no conversation {request.conversation_id!r} (conversations expire; start a new one)"
            )
    dataset = request.dataset or (previous[-1].dataset if previous else "ces11")
    available = dataset_names()
    if dataset not in available:
        # Deployed, datasets are what `panelbrain datasets publish` put in the bucket (ADR 0025).
        listed = ", ".join(available) or "none (publish one: panelbrain datasets publish NAME --stack ...)"
        return _error(422, f"unknown dataset {dataset!r}; available: {listed}")
    if previous and dataset != previous[-1].dataset:
        return _error(
            422,
            f"conversation {request.conversation_id} is about {previous[-1].dataset}: "
            f"start a new one for {dataset}",
        )
    query_id = "q-" + uuid.uuid4().hex[:16]
    correlate(query_id=query_id)
    # The question is the analyst's own words: DEBUG only, never at the stages' INFO.
    logger.debug("question received", extra={"question": request.question})
    metrics.add_metric(name="IncomingQueryCount", unit=MetricUnit.Count, value=1)
    conversation = Conversation(
        conversation_id=request.conversation_id or new_conversation_id(),
        turn=previous[-1].turn + 1 if previous else 1,
        history=[t.reading for t in previous if t.reading is not None][-HISTORY_TURNS:],
    )
    query = QueryInput(
        query_id=query_id,
        question=request.question,
        dataset=dataset,
        provider=request.provider,
        conversation=conversation,
    )
    plan = _offline_reading(query)
    now = conversations().clock()
    turn = Turn(
        conversation_id=conversation.conversation_id,
        turn=conversation.turn,
        query_id=query_id,
        question=query.question,
        dataset=dataset,
        provider=request.provider,
        # A Bedrock turn's reading is the brain's: the pipeline records it once planned.
        reading=Reading.of(plan) if plan is not None and request.provider == "offline" else None,
        read_as=plan.read_as if plan is not None and request.provider == "offline" else "question",
        created_at=now,
        expires_at=previous[-1].expires_at if previous else now + ttl_seconds(),
    )
    try:
        conversations().add_turn(turn)
    except TurnTakenError as exc:
        return _error(409, exc.message)
    store().create_query(query_id, {**request.model_dump(mode="json"), "dataset": dataset})
    spec = load_dictionary(dataset)
    about = {
        "conversation_id": conversation.conversation_id,
        "turn": conversation.turn,
        **(
            {"read_as": turn.read_as, "reading": turn.reading.model_dump(mode="json")} if turn.reading else {}
        ),
    }
    kind = "followup" if conversation.turn > 1 else "first"
    # Only a reading the offline planner is sure of keys the cache: an unsure one goes through
    # the pipeline (and its routing rules), whatever an earlier answer said.
    sure = plan is not None and plan.confidence >= _answer_threshold()
    cached = (
        cache().get(reading_key(plan.model_dump(mode="json"), spec)) if plan is not None and sure else None
    )
    if cached is not None:
        # An answered reading, in other words or reached by follow-ups: no execution, no model call.
        _cache_metric("ResultCacheHit", kind)
        store().put_record(TerminalRecord(query_id=query_id, status="answered", route="cache", result=cached))
        logger.info("query answered from the result cache", extra={"dataset": spec.name})
        return Response(
            status_code=200,
            content_type="application/json",
            body={
                "query_id": query_id,
                "status": "answered",
                "cached": True,
                "status_url": f"/queries/{query_id}",
                **about,
            },
        )
    _cache_metric("ResultCacheMiss", kind)
    queue().send(
        QueryMessage(
            query_id=query_id,
            question=query.question,
            dataset=dataset,
            provider=request.provider,
            conversation=conversation,
        )
    )
    logger.info("query queued", extra={"dataset": spec.name, "provider": request.provider})
    return Response(
        status_code=202,
        content_type="application/json",
        body={"query_id": query_id, "status": "queued", "status_url": f"/queries/{query_id}", **about},
    )


@app.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> dict[str, Any]:
    turns = conversations().turns(conversation_id) if CONVERSATION.fullmatch(conversation_id) else None
    if not turns:
        raise NotFoundError(f"no conversation {conversation_id!r} (conversations expire; start a new one)")
    statuses = {r["query_id"]: r.get("status") for r in store().get_many([t.query_id for t in turns])}
    logger.info("conversation read", extra={"turns": len(turns)})
    return {
        "conversation_id": conversation_id,
        "dataset": turns[-1].dataset,
        "expires_at": turns[-1].expires_at,
        "turns": [
            {
                "turn": t.turn,
                "question": t.question,
                "reading": t.reading.model_dump(mode="json") if t.reading else None,
                "read_as": t.read_as,
                "provider": t.provider,
                "query_id": t.query_id,
                "status": statuses.get(t.query_id),
                "answer_url": f"/queries/{t.query_id}",
            }
            for t in turns
        ],
    }


@app.get("/queries/<query_id>")
def get_query(query_id: str) -> dict[str, Any]:
    # Only query ids are looked up: nothing else in the table is the API's to read.
    record = store().get(query_id) if QUERY_ID.fullmatch(query_id) else None
    if record is None:
        raise NotFoundError(f"no query {query_id!r}")
    logger.info("query read", extra={"status": record.get("status")})
    # What was too large for a workflow state or a DynamoDB item is read back from S3, so the
    # caller gets the whole result (a Lambda response may hold 6 MB:
    # https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html).
    return {**record, "result": resolve_all(record.get("result") or {})}


def _unsupported_media(event: dict[str, Any]) -> dict[str, Any] | None:
    """POST bodies are JSON; say so (415) rather than fail parsing a form or multipart body."""
    if event.get("httpMethod") != "POST":
        return None
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    media = str(headers.get("content-type", "application/json")).split(";")[0].strip().lower()
    if media in ("application/json", ""):
        return None
    body = json.dumps({"error": f"send the body as JSON with Content-Type: application/json, not {media!r}"})
    return {"statusCode": 415, "headers": {"Content-Type": "application/json"}, "body": body}


def too_deep(error: RecursionError) -> Response[dict[str, Any]]:
    """JSON nested deeper than Python's parser recurses is malformed input (400), not a crash.

    The request validation's own parse of the body raises it; nothing parses the body twice.
    A RecursionError the body did not cause is a fault, and stays one."""
    try:
        json.loads(app.current_event.decoded_body or "null")
    except RecursionError:
        return Response(
            status_code=400,
            content_type="application/json",
            body={"error": 'the JSON body is nested too deeply; send {"question": "..."}'},
        )
    except ValueError:
        pass
    raise error


app.exception_handler(RecursionError)(too_deep)


@logged(query_id=PATH_QUERY_ID)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _unsupported_media(event) or app.resolve(event, context)
