"""API function: POST /queries (accept, queue, 202) and GET /queries/{query_id}.

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
from aws_lambda_powertools.metrics import MetricUnit

from panelbrain.aws.blobs import resolve_all
from panelbrain.aws.cache import DynamoResultCache, ResultCache, cache_key
from panelbrain.aws.queue import QueryQueue, SqsQueryQueue
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.data.dictionary import dataset_names, load_dictionary
from panelbrain.models import QueryMessage, QueryRequest, TerminalRecord
from panelbrain.observe import PATH_QUERY_ID, correlate, logged, logger

# Reads and refused requests publish no metric, which is right; Powertools warns on each.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

QUERY_ID = re.compile(r"q-[0-9a-f]{16}")
app = APIGatewayRestResolver(enable_validation=True)
metrics = Metrics(namespace=os.environ.get("PANELBRAIN_METRICS_NAMESPACE", "panelbrain"), service="api")
# Built on first use and kept for the container's life, as Lambda reuses it between requests.
store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)
cache: Callable[[], ResultCache] = functools.cache(DynamoResultCache)
queue: Callable[[], QueryQueue] = functools.cache(SqsQueryQueue)


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
    available = dataset_names()
    if request.dataset not in available:
        # Deployed, datasets are what `panelbrain datasets publish` put in the bucket (ADR 0025).
        listed = ", ".join(available) or "none (publish one: panelbrain datasets publish NAME --stack ...)"
        return Response(
            status_code=422,
            content_type="application/json",
            body={"error": f"unknown dataset {request.dataset!r}; available: {listed}"},
        )
    query_id = "q-" + uuid.uuid4().hex[:16]
    correlate(query_id=query_id)
    # The question is the analyst's own words: DEBUG only, never at the stages' INFO.
    logger.debug("question received", extra={"question": request.question})
    metrics.add_metric(name="IncomingQueryCount", unit=MetricUnit.Count, value=1)
    store().create_query(query_id, request.model_dump(mode="json"))
    spec = load_dictionary(request.dataset)
    cached = cache().get(cache_key(request.question, spec.name, spec.data_version))
    if cached is not None:
        # A repeat of an answered question: no execution, no model call.
        metrics.add_metric(name="ResultCacheHit", unit=MetricUnit.Count, value=1)
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
            },
        )
    queue().send(QueryMessage(query_id=query_id, **request.model_dump()))
    logger.info("query queued", extra={"dataset": spec.name, "provider": request.provider})
    return Response(
        status_code=202,
        content_type="application/json",
        body={"query_id": query_id, "status": "queued", "status_url": f"/queries/{query_id}"},
    )


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
