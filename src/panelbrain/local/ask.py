"""One question through the pipeline on the local engine, from start to terminal state."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import ValidationError

from panelbrain.aws.blobs import resolve_all
from panelbrain.aws.store import DynamoQueryStore
from panelbrain.errors import BadInputError, PanelbrainError
from panelbrain.local.engine import LOCAL_REVIEWER, Invocation, LocalEngine, StateTrace
from panelbrain.models import QueryInput, Usage
from panelbrain.review.models import Review

PIPELINE = "QueryPipelineStateMachine"
REVIEW = "HumanReviewStateMachine"
Decision = Literal["approve", "reject"]


class ReviewWaitError(PanelbrainError):
    """The review workflow never asked for a decision (its notifier did not run)."""


def new_query_id() -> str:
    return "q-" + uuid.uuid4().hex[:16]


def query_input(
    question: str, dataset: str, provider: str, latency_scale: float, query_id: str
) -> QueryInput:
    try:
        fields = {"query_id": query_id, "question": question, "dataset": dataset}
        return QueryInput.model_validate({**fields, "provider": provider, "latency_scale": latency_scale})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"{where}: {first['msg']}") from None


def _usage_totals(usages: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for raw in usages:
        usage = Usage.model_validate(raw)
        slot = totals.setdefault(
            usage.model_id,
            {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0},
        )
        for key in slot:
            slot[key] += getattr(usage, key)
    return totals


def _cost(usage: dict[str, dict[str, int]]) -> float:
    from panelbrain.pricing import cost_usd

    return round(
        sum(
            cost_usd(
                model, t["input_tokens"], t["output_tokens"], t["cache_read_tokens"], t["cache_write_tokens"]
            )
            for model, t in usage.items()
        ),
        6,
    )


def _served_by_state(
    engine: LocalEngine | None, traces: list[StateTrace], invocations: list[Invocation]
) -> list[Invocation | None]:
    """For each traced state, the Lambda invocation that served it (the last attempt when the
    state retried): an invocation of the state's function that began while the state ran. moto
    stamps history events to the millisecond, so the invocation's start is compared at that
    precision."""
    if engine is None:
        return [None] * len(traces)
    functions = {machine: engine.task_functions(machine) for machine in {t.machine for t in traces}}
    served: list[Invocation | None] = []
    for trace in traces:
        function = functions[trace.machine].get(trace.state)
        end = trace.ended_at
        hits = [
            i
            for i in invocations
            if function is not None
            and i.function == function
            and end is not None
            and trace.started_at <= i.at.replace(microsecond=i.at.microsecond // 1000 * 1000) <= end
        ]
        served.append(hits[-1] if hits else None)
    return served


def _trace_rows(
    traces: list[StateTrace], invocations: list[Invocation], engine: LocalEngine | None
) -> list[dict[str, Any]]:
    served = _served_by_state(engine, traces, invocations)
    return [
        {
            "state": t.state,
            "machine": t.machine,
            "started_at": t.started_at.isoformat(),
            "ended_at": t.ended_at.isoformat() if t.ended_at else None,
            "duration_ms": round(t.duration_ms, 1) if t.duration_ms is not None else None,
            # Which Lambda instance ran the state: "provisioned", "on_demand", or None (no Lambda).
            "served_by": s.served_by if s else None,
            "cold_start": s.cold_start if s else None,
        }
        for t, s in zip(traces, served, strict=True)
    ]


def open_review(query_id: str, *, wait_s: float = 30.0) -> Review:
    """The query's open review, once its notifier has stored it (the workflow starts it)."""
    from panelbrain.functions.review_common import service

    deadline = time.monotonic() + wait_s
    while True:
        waiting = [r for r in service().store.of_query(query_id) if r.status == "open"]
        if waiting:
            return max(waiting, key=lambda r: r.level)
        if time.monotonic() > deadline:
            raise ReviewWaitError(f"query {query_id}: no review task is waiting for a decision")
        time.sleep(0.02)


def decide(
    engine: LocalEngine,
    query_id: str,
    decision: Decision,
    *,
    wait_s: float = 30.0,
    approver: str = LOCAL_REVIEWER,
    comment: str = "",
) -> Review:
    """Decide the query's review as the reviewer page does: allow-list, audit record, task."""
    from panelbrain.functions.review_common import service

    review = open_review(query_id, wait_s=wait_s)
    from panelbrain.review.service import principal_named

    principal = principal_named(approver, "cli")
    return service().decide(review.review_id, decision, principal=principal, comment=comment, channel="cli")


def submit(engine: LocalEngine, query: QueryInput, conversation_id: str | None = None) -> dict[str, Any]:
    """POST the question through the API's integration and run the queue's event source until
    it is drained: the path a deployed question takes, API -> SQS -> poller -> pipeline. Returns
    the API's answer (query id, conversation id and turn, ...)."""
    fields = {"question": query.question, "dataset": query.dataset, "provider": query.provider}
    body = json.dumps({**fields, "conversation_id": conversation_id} if conversation_id else fields)
    # What the function writes (log lines, EMF metric lines) the engine keeps, as CloudWatch
    # Logs would: stdout stays the command's own.
    response = engine.api_call(api_gateway_event("POST", "/queries", body))
    document = json.loads(response["body"])
    if response["statusCode"] == 200 and document.get("cached"):
        return dict(document)  # answered from the result cache: nothing to run
    if response["statusCode"] == 404:
        raise BadInputError(str(document.get("error", document)).replace("'", ""))
    if response["statusCode"] != 202:
        raise BadInputError(str(document.get("error", document)))
    previous = os.environ.get("PANELBRAIN_LATENCY_SCALE")
    os.environ["PANELBRAIN_LATENCY_SCALE"] = str(query.latency_scale)
    try:
        while engine.deliver("QueryQueue", "PollerFunction") is not None:
            pass
    finally:
        if previous is None:
            os.environ.pop("PANELBRAIN_LATENCY_SCALE", None)
        else:
            os.environ["PANELBRAIN_LATENCY_SCALE"] = previous
    return dict(document)


# The API's resources, as API Gateway matches them (path parameters in braces).
RESOURCES = (
    "/queries",
    "/queries/{query_id}",
    "/conversations/{conversation_id}",
    "/reviews",
    "/reviews/{review_id}",
    "/slack/interactions",
)


def _resource(path: str) -> tuple[str, dict[str, str] | None]:
    for resource in RESOURCES:
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(resource))
        match = re.fullmatch(pattern, path)
        if match:
            return resource, (match.groupdict() or None)
    return path, None


def api_gateway_event(
    method: str, path: str, body: str | None = None, *, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A REST API proxy event, as API Gateway hands one to a function (``path`` may carry a
    query string)."""
    path, _, query = path.partition("?")
    resource, parameters = _resource(path)
    given = headers or {"Content-Type": "application/json"}
    pairs = parse_qs(query, keep_blank_values=True) if query else {}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(given),
        "multiValueHeaders": {k: [v] for k, v in given.items()},
        "queryStringParameters": {k: v[-1] for k, v in pairs.items()} or None,
        "multiValueQueryStringParameters": pairs or None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": uuid.uuid4().hex,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def ask(
    engine: LocalEngine,
    question: str,
    *,
    dataset: str = "ces11",
    provider: str = "offline",
    review: Decision | None = None,
    latency_scale: float = 0.0,
    on_state: Callable[[StateTrace], None] | None = None,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """Run ``question`` to its terminal state and return the ``--json`` document; with
    ``conversation_id``, as a follow-up in that conversation."""
    checked = query_input(question, dataset, provider, latency_scale, new_query_id())
    started = time.perf_counter()
    first_invocation = len(engine.invocations)
    accepted = submit(engine, checked, conversation_id)
    query_id = str(accepted["query_id"])
    query = checked.model_copy(update={"query_id": query_id})
    turn: dict[str, Any] = {
        k: accepted[k] for k in ("conversation_id", "turn", "read_as", "reading") if k in accepted
    }
    store = DynamoQueryStore()
    record = store.get(query.query_id)
    if record is not None and record.get("route") == "cache":
        return {**document(query, record, [], time.perf_counter() - started), **turn, "cached": True}
    pipeline_arn = engine.execution_arn(PIPELINE, query_id)
    description = engine.wait(pipeline_arn, on_state=on_state)
    traces = engine.trace(pipeline_arn)
    record = store.get(query.query_id)
    if description["status"] != "SUCCEEDED" or record is None:
        raise PanelbrainError(
            f"the pipeline ended {description['status']} without a recorded outcome: "
            f"{description.get('error')}: {description.get('cause')}"
        )
    if record["status"] == "needs_review" and review is not None:
        decide(engine, query.query_id, review)
        review_arn = engine.execution_arn(REVIEW, query.query_id)
        engine.wait(review_arn, on_state=on_state)
        traces += engine.trace(review_arn)
        record = store.get(query.query_id) or record
    # This run's invocations (ask runs one question at a time on its engine).
    invocations = engine.invocations[first_invocation:]
    return {**document(query, record, traces, time.perf_counter() - started, invocations, engine), **turn}


def document(
    query: QueryInput,
    record: dict[str, Any],
    traces: list[StateTrace],
    seconds: float,
    invocations: list[Invocation] | None = None,
    engine: LocalEngine | None = None,
) -> dict[str, Any]:
    # What was too large for a workflow state or a DynamoDB item is read back from S3.
    result = resolve_all(record.get("result") or {})
    synthesis = result.get("document") or result.get("synthesis") or {}
    usage = _usage_totals(synthesis.get("usage", []))
    return {
        "query_id": query.query_id,
        "question": query.question,
        "dataset": query.dataset,
        "status": record["status"],
        "route": record["route"],
        "reason": record.get("reason"),
        "provider": synthesis.get("provider", query.provider),
        "confidence": synthesis.get("confidence"),
        "confidence_reasons": synthesis.get("confidence_reasons", []),
        "answer": synthesis.get("answer"),
        "markdown": result.get("markdown"),
        "table": synthesis.get("table", []),
        "sql": synthesis.get("sql"),
        "weighting": synthesis.get("weighting"),
        "trace": _trace_rows(traces, invocations or [], engine),
        # Lambda invocations of this run by the instance that served them (provisioned
        # concurrency on the alias at the engine's clock, else on demand; cold starts on demand).
        "invocations": LocalEngine.served(invocations or []),
        "usage": usage,
        "cost_usd": _cost(usage),
        "elapsed_ms": round(seconds * 1000, 1),
    }
