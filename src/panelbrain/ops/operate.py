"""What an operator runs when an alarm fires: the commands behind ``panelbrain ops``.

Every operation takes a :class:`Target`: the physical names of the stack's queues, tables and
bucket, a client per service, the review sweeper's settings, and an :class:`Intake` switch. The
same functions act on a deployed stack (:func:`stack_target`: names from CloudFormation, boto3
clients, the poller's SQS event source mapping as the switch) and on the local engine
(:func:`engine_target`: names from the template, the emulator's clients, the local server's
poller thread as the switch); ``panelbrain serve`` runs them in its own process, where the
emulator's state lives (``POST /local/ops/{command}``).

Each returns one JSON-ready document; the CLI renders it (``panelbrain.cli.ops``).

Decisions (see docs/runbooks/README.md):
- Redrive moves messages itself (receive, send to the source queue, delete), not with SQS's
  ``StartMessageMoveTask``: moto 5.2.5 does not implement that action, and one code path is the
  one the tests prove. Sending before deleting may deliver a message twice if the move stops
  half-way; the poller's conditional start runs a query once whatever the deliveries.
- Replay asks the question again as a NEW query (new id, the old id named in ``replay_of``):
  a terminal status is final (the first terminal write wins, ADR 0010), the Express execution
  name and the review execution name are the query id, and the asker of the old id must never
  see its status flip. A query that went to the dead-letter queue is redriven, not replayed,
  unless ``force``: its message would start it as well.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from panelbrain.errors import BadInputError, PanelbrainError

# The store's statuses: what is still under way, and what is final.
UNFINISHED = ("queued", "started", "needs_review")
FINISHED = ("answered", "rejected", "failed")
# SQS ReceiveMessage takes at most 10 messages a call
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html).
SQS_BATCH = 10
# A message received for a move stays hidden this long: past it, an interrupted move leaves the
# message in the dead-letter queue to move again, never lost.
MOVE_VISIBILITY_S = 60
# The logical ids the operations need, as template.yaml names them.
LOGICAL_IDS = {
    "query_queue": "QueryQueue",
    "dead_letter_queue": "QueryDeadLetterQueue",
    "queries_table": "QueriesTable",
    "reviews_table": "ReviewsTable",
    "payload_bucket": "PayloadBucket",
    "poller_function": "PollerFunction",
    "sweeper_function": "ReviewSweeperFunction",
}


class StackNotFoundError(BadInputError):
    """The stack named with ``--stack`` does not exist, or lacks a resource the commands need."""


class IntakeError(PanelbrainError):
    """The poller's event source mapping could not be found or switched."""


class Intake(Protocol):
    """The switch between the query queue and the poller: off, messages wait in the queue."""

    def state(self) -> str:
        """``Enabled``, ``Disabled`` or a transition (``Enabling``, ``Disabling``, ...)."""

    def set_enabled(self, enabled: bool) -> str:
        """Switch; the state right after (AWS may report a transition for a few seconds)."""


@dataclass(frozen=True)
class Resources:
    """Physical names: queue URLs, table names, bucket and function names."""

    query_queue: str
    dead_letter_queue: str
    queries_table: str
    reviews_table: str
    payload_bucket: str
    poller_function: str
    sweeper_function: str


@dataclass
class Target:
    """Where the operations act, and how they reach it."""

    where: str  # said in every answer: which engine or stack was acted on
    resources: Resources
    sqs: Any
    dynamodb: Any
    s3: Any
    intake: Intake
    # The review sweeper's environment: the deadlines it closes queries at.
    sweeper_settings: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    def queries(self) -> Any:
        from panelbrain.aws.store import DynamoQueryStore

        return DynamoQueryStore(self.resources.queries_table, self.dynamodb, clock=self.clock)


# -- dead letters ------------------------------------------------------------------------------


def _depth(target: Target, url: str) -> dict[str, int]:
    attributes = target.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {
        "visible": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    }


def _query_of(message: dict[str, Any]) -> str | None:
    attribute = (message.get("MessageAttributes") or {}).get("query_id") or {}
    if attribute.get("StringValue"):
        return str(attribute["StringValue"])
    try:
        return str(json.loads(message.get("Body") or "")["query_id"])
    except (ValueError, KeyError, TypeError):
        return None


def dlq(target: Target, *, peek: int = 5, redrive: bool = False, limit: int = 1000) -> dict[str, Any]:
    """The dead-letter queue's depth and its first ``peek`` messages (with each query's recorded
    reason); with ``redrive``, move up to ``limit`` messages back to the query queue."""
    if not 0 <= peek <= SQS_BATCH:
        raise BadInputError(f"--peek must be between 0 and {SQS_BATCH}, got {peek}")
    if limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    r = target.resources
    before = _depth(target, r.dead_letter_queue)
    document: dict[str, Any] = {"where": target.where, "dead_letter_queue": before, "messages": []}
    if peek and not redrive:
        # VisibilityTimeout 0: the peeked messages are visible again at once (a receive only
        # counts toward a redrive policy's maxReceiveCount on the source queue, and the
        # dead-letter queue has none).
        received = target.sqs.receive_message(
            QueueUrl=r.dead_letter_queue,
            MaxNumberOfMessages=peek,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        store = target.queries()
        for message in received:
            query_id = _query_of(message)
            record = (store.get(query_id) if query_id else None) or {}
            sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
            document["messages"].append(
                {
                    "query_id": query_id,
                    "status": record.get("status"),
                    "route": record.get("route"),
                    "reason": record.get("reason"),
                    "age_s": round(max(0.0, target.clock() - sent), 1) if sent else None,
                }
            )
    if redrive:
        document["redriven"] = _move(target, r.dead_letter_queue, r.query_queue, limit)
        document["dead_letter_queue_after"] = _depth(target, r.dead_letter_queue)
    return document


def _move(target: Target, source: str, destination: str, limit: int) -> list[str]:
    """Move messages (body and attributes) until ``source`` has none visible or ``limit``."""
    moved: list[str] = []
    while len(moved) < limit:
        received = target.sqs.receive_message(
            QueueUrl=source,
            MaxNumberOfMessages=min(SQS_BATCH, limit - len(moved)),
            VisibilityTimeout=MOVE_VISIBILITY_S,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            attributes = {
                name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
                for name, value in (message.get("MessageAttributes") or {}).items()
            }
            target.sqs.send_message(
                QueueUrl=destination,
                MessageBody=message["Body"],
                **({"MessageAttributes": attributes} if attributes else {}),
            )
            # Deleted only once sent: a move cut short here leaves a duplicate, never a loss.
            target.sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved.append(_query_of(message) or message["MessageId"])
    return moved


# -- queries past their deadline ---------------------------------------------------------------


def _records(target: Target, status: str, after: float, before: float, limit: int) -> list[dict[str, Any]]:
    """Queries in ``status`` whose status last changed in (after, before), oldest first: the
    ``by_status`` index (status, updated_at) finds them without a scan, every page of them
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html);
    each is then read whole (the index holds keys only), a hundred a request."""
    pages = target.dynamodb.get_paginator("query").paginate(
        TableName=target.resources.queries_table,
        IndexName="by_status",
        KeyConditionExpression="#s = :status AND updated_at BETWEEN :after AND :before",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":status": {"S": status},
            ":after": {"N": repr(after)},
            ":before": {"N": repr(before)},
        },
        PaginationConfig={"MaxItems": limit},
    )
    ids = [item["query_id"]["S"] for page in pages for item in page["Items"]]
    records: list[dict[str, Any]] = target.queries().get_many(ids)
    return records


def _summary(record: dict[str, Any], now: float) -> dict[str, Any]:
    try:
        request = json.loads(record.get("request") or "{}")
    except ValueError:
        request = {}
    updated = float(record.get("updated_at") or 0)
    created = float(record.get("created_at") or updated)
    return {
        "query_id": record["query_id"],
        "status": record.get("status"),
        "route": record.get("route"),
        "question": request.get("question"),
        "age_s": round(now - created, 1),
        "in_status_s": round(now - updated, 1),
        "reason": record.get("reason"),
        "execution_arn": record.get("execution_arn"),
    }


def stuck(target: Target, *, limit: int = 100, closed_within_s: float = 86_400.0) -> dict[str, Any]:
    """Queries still unfinished past the deadline the review sweeper closes them at (the same
    deadlines: :func:`panelbrain.functions.review_sweeper.deadlines`, read from the sweeper's
    own settings), and those it closed as past their deadline in the last ``closed_within_s``."""
    from panelbrain.functions.review_sweeper import deadlines

    if limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    now = target.clock()
    unfinished = []
    for deadline in deadlines(target.sweeper_settings):
        for record in _records(target, deadline.status, 0.0, now - deadline.seconds, limit):
            unfinished.append({**_summary(record, now), "deadline_s": deadline.seconds, "why": deadline.why})
    closed = [
        _summary(record, now)
        for record in _records(target, "failed", now - closed_within_s, now, limit)
        if record.get("route") == "deadline"
    ]
    return {
        "where": target.where,
        "deadlines_s": {d.status: d.seconds for d in deadlines(target.sweeper_settings)},
        "past_deadline": unfinished,
        "closed_by_sweeper": closed,
        "closed_within_s": closed_within_s,
    }


# -- replay ------------------------------------------------------------------------------------


def replay(target: Target, query_id: str, *, force: bool = False) -> dict[str, Any]:
    """Ask a failed or stuck query's question again, as a new query through the queue.

    Replayed without ``force``: a query that failed (except by the dead-letter route: redrive
    it), and one still unfinished past its deadline. With ``force``: also a rejected one, a
    dead-lettered one, and one unfinished within its deadline. Never an answered one."""
    from panelbrain.aws.queue import SqsQueryQueue
    from panelbrain.functions.review_sweeper import deadlines
    from panelbrain.models import QueryMessage

    store = target.queries()
    record = store.get(query_id, consistent=True)
    if record is None:
        raise BadInputError(f"no query {query_id!r} in {target.resources.queries_table} ({target.where})")
    status, route, now = record.get("status"), record.get("route"), target.clock()
    deadline = {d.status: d.seconds for d in deadlines(target.sweeper_settings)}
    in_status_s = now - float(record.get("updated_at") or now)
    refusal = None
    if status == "answered":
        refusal = f"query {query_id} is answered: nothing to replay (ask again for a fresh answer)"
    elif force:
        pass
    elif status == "failed" and route == "dead_letter":
        refusal = (
            f"query {query_id} failed to start and its message is in the dead-letter queue: "
            "`panelbrain ops dlq --redrive` starts it under its own id (--force replays it anyway, "
            "and a later redrive would then run it a second time)"
        )
    elif status == "rejected":
        refusal = f"query {query_id} was rejected ({route}): a decision, not a fault (--force to ask again)"
    elif status in deadline and in_status_s < deadline[status]:
        refusal = (
            f"query {query_id} is {status} for {in_status_s:.0f} s, within its {deadline[status]:g} s "
            "deadline: it may still finish (--force to ask again now)"
        )
    if refusal:
        raise BadInputError(refusal)
    request = json.loads(record.get("request") or "{}")
    if not request.get("question"):
        raise BadInputError(f"query {query_id} recorded no question to replay")
    new_id = "q-" + uuid.uuid4().hex[:16]
    fields = {k: request[k] for k in ("question", "dataset", "provider") if k in request}
    store.create_query(new_id, {**fields, "replay_of": query_id})
    SqsQueryQueue(target.resources.query_queue, target.sqs).send(QueryMessage(query_id=new_id, **fields))
    return {
        "where": target.where,
        "replayed": query_id,
        "was": {"status": status, "route": route, "reason": record.get("reason")},
        "query_id": new_id,
        "status": "queued",
        "status_url": f"/queries/{new_id}",
    }


# -- reviews -----------------------------------------------------------------------------------


def reviews(target: Target, *, limit: int = 100) -> dict[str, Any]:
    """Open reviews (and those a reviewer is deciding), oldest first, with the time each has
    waited and has left before its timeout."""
    from panelbrain.aws.reviews import DynamoReviewStore

    if limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    store = DynamoReviewStore(target.resources.reviews_table, target.dynamodb)
    now = target.clock()
    found = [r for status in ("open", "deciding") for r in store.with_status(status, limit)]
    found.sort(key=lambda r: r.created_at)
    rows = [
        {
            "review_id": r.review_id,
            "query_id": r.query_id,
            "status": r.status,
            "level": r.level,
            "waited_s": round(now - r.created_at, 1),
            "left_s": round(r.expires_at - now, 1),
            "heartbeats": r.heartbeats,
            "reminded": r.reminded_at is not None,
            "confidence": r.confidence,
            "question": r.question,
            "reasons": r.review_reasons,
        }
        for r in found[:limit]
    ]
    return {
        "where": target.where,
        "open": len(rows),
        "oldest_waited_s": rows[0]["waited_s"] if rows else 0.0,
        "reviews": rows,
    }


# -- intake ------------------------------------------------------------------------------------


def intake(target: Target, enabled: bool | None = None) -> dict[str, Any]:
    """The intake switch's state; switched first when ``enabled`` is given. Off, the queue keeps
    every question (retention 14 days) and the poller starts none."""
    before = target.intake.state()
    after = target.intake.set_enabled(enabled) if enabled is not None else before
    return {
        "where": target.where,
        "intake": after,
        "was": before,
        "query_queue": _depth(target, target.resources.query_queue),
    }


class EventSourceMappingIntake:
    """The poller's SQS event source mapping, switched with UpdateEventSourceMapping ``Enabled``.
    Disabled, Lambda stops polling: the messages wait in the queue (until its retention period)
    and no receive counts toward the redrive policy; enabled again, Lambda polls again
    (https://docs.aws.amazon.com/lambda/latest/api/API_UpdateEventSourceMapping.html)."""

    def __init__(self, lambda_client: Any, function_name: str, queue_arn: str) -> None:
        self.client, self.function_name, self.queue_arn = lambda_client, function_name, queue_arn

    def _mapping(self) -> dict[str, Any]:
        # SAM maps the queue to the function's alias (<name>:live): list by the queue, then keep
        # the mappings of this function, whatever qualifier.
        pages = self.client.get_paginator("list_event_source_mappings").paginate(
            EventSourceArn=self.queue_arn
        )
        mappings: list[dict[str, Any]] = [
            m
            for page in pages
            for m in page["EventSourceMappings"]
            if m["FunctionArn"].split(":function:")[-1].split(":")[0] == self.function_name
        ]
        if len(mappings) != 1:
            raise IntakeError(
                f"expected one event source mapping from {self.queue_arn} to {self.function_name}, "
                f"found {len(mappings)}"
            )
        return mappings[0]

    def state(self) -> str:
        return str(self._mapping()["State"])

    def set_enabled(self, enabled: bool) -> str:
        mapping = self._mapping()
        updated = self.client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)
        return str(updated["State"])


# -- cost --------------------------------------------------------------------------------------


def cost_today(target: Target, *, limit: int = 10_000) -> dict[str, Any]:
    """Model spend of the queries finished today (UTC): the token usage each answer recorded,
    priced with the dated price table (:func:`panelbrain.pricing.cost_usd`).

    A query's record keeps the token usage of its calls with its answer (the synthesis), so
    queries that ended rejected or failed are counted but not priced: their calls are missing
    from the figure, and the answer says how many there were."""
    from panelbrain.aws.blobs import S3BlobStore, resolve_all
    from panelbrain.models import Usage
    from panelbrain.pricing import cost_usd

    now = target.clock()
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    blobs = S3BlobStore(target.resources.payload_bucket, target.s3)
    models: dict[str, dict[str, Any]] = {}
    finished = {status: 0 for status in FINISHED}
    unpriced = 0
    cached = 0
    for status in FINISHED:
        for record in _records(target, status, midnight.timestamp(), now, limit):
            finished[status] += 1
            if record.get("route") == "cache":
                cached += 1  # answered from the result cache: no model call
                continue
            result = resolve_all(record.get("result") or {}, blobs)
            synthesis = result.get("document") if isinstance(result, dict) else None
            if not isinstance(synthesis, dict) or "usage" not in synthesis:
                unpriced += 1
                continue
            for raw in synthesis["usage"]:
                usage = Usage.model_validate(raw)
                slot = models.setdefault(
                    usage.model_id,
                    {
                        "calls": 0,
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cache_read_tokens": 0,
                        "cache_write_tokens": 0,
                    },
                )
                slot["calls"] += 1
                for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
                    slot[key] += getattr(usage, key)
    for model, slot in models.items():
        slot["usd"] = round(
            cost_usd(
                model,
                slot["input_tokens"],
                slot["output_tokens"],
                slot["cache_read_tokens"],
                slot["cache_write_tokens"],
            ),
            6,
        )
    return {
        "where": target.where,
        "day": midnight.date().isoformat(),
        "finished": finished,
        "from_cache": cached,
        "not_priced": unpriced,
        "models": models,
        "usd": round(sum(slot["usd"] for slot in models.values()), 6),
    }


# -- targets -----------------------------------------------------------------------------------


def physical_ids(cloudformation: Any, stack: str) -> dict[str, str]:
    """The physical id of each of the stack's resources, by logical id ("" while not created).
    ListStackResources, not DescribeStackResources: the latter returns only the first 100
    resources, and this stack has more once SAM has transformed it
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStackResources.html)."""
    from botocore.exceptions import ClientError

    physical: dict[str, str] = {}
    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
            for summary in page["StackResourceSummaries"]:
                physical[summary["LogicalResourceId"]] = summary.get("PhysicalResourceId", "")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ValidationError":
            raise StackNotFoundError(
                f"--stack {stack}: {exc.response['Error'].get('Message', 'not found')}"
            ) from None
        raise
    return physical


def stack_resources(cloudformation: Any, stack: str) -> Resources:
    """The physical ids of the stack's resources the commands need."""
    physical = physical_ids(cloudformation, stack)
    # Two regions (docs/multi-region.md): the primary's query store is QueriesGlobalTable, and a
    # secondary stack declares none (it uses the global table's replica): its functions'
    # QUERIES_TABLE names it, which stack_target reads.
    physical["QueriesTable"] = physical.get("QueriesTable") or physical.get("QueriesGlobalTable", "")
    missing = [
        logical
        for field_, logical in LOGICAL_IDS.items()
        if field_ != "queries_table" and not physical.get(logical)
    ]
    if missing:
        raise StackNotFoundError(
            f"stack {stack} has no {', '.join(missing)}: is it a panelbrain stack, fully created?"
        )
    return Resources(**{field_: physical[logical] for field_, logical in LOGICAL_IDS.items()})


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def stack_target(stack: str, region: str | None = None, profile: str | None = None) -> Target:
    """The deployed stack ``stack``: its resources from CloudFormation, clients from the one
    builder (:mod:`panelbrain.aws.clients`: ``region`` and ``profile``, else the environment's),
    the poller's event source mapping as the intake switch."""
    from botocore.exceptions import NoRegionError

    from panelbrain.aws import clients

    try:
        cloudformation = clients.client("cloudformation", region=region, profile=profile)
    except NoRegionError:
        raise BadInputError("no AWS region for --stack: pass --region or set AWS_REGION") from None
    resources = stack_resources(cloudformation, stack)
    sqs = clients.client("sqs", region=region, profile=profile)
    lambda_ = clients.client("lambda", region=region, profile=profile)
    sweeper = lambda_.get_function_configuration(FunctionName=resources.sweeper_function)
    settings = dict(sweeper.get("Environment", {}).get("Variables", {}))
    # The table the functions use, in every FailoverRole.
    resources = replace(resources, queries_table=settings.get("QUERIES_TABLE") or resources.queries_table)
    if not resources.queries_table:
        raise StackNotFoundError(
            f"stack {stack} has no QueriesTable or QueriesGlobalTable, and its sweeper names no QUERIES_TABLE"
        )
    return Target(
        where=f"stack {stack} ({cloudformation.meta.region_name})",
        resources=resources,
        sqs=sqs,
        dynamodb=clients.client("dynamodb", region=region, profile=profile),
        s3=clients.client("s3", region=region, profile=profile),
        intake=EventSourceMappingIntake(
            lambda_, resources.poller_function, _queue_arn(sqs, resources.query_queue)
        ),
        sweeper_settings=settings,
    )


class Switch:
    """An intake switch held in memory: the local server's poller thread reads it."""

    def __init__(self) -> None:
        self.enabled = True

    def state(self) -> str:
        return "Enabled" if self.enabled else "Disabled"

    def set_enabled(self, enabled: bool) -> str:
        self.enabled = enabled
        return self.state()


def engine_target(engine: Any, intake: Intake, where: str = "local engine") -> Target:
    """The local engine's resources (named as the template names them) and emulator clients;
    ``intake`` is the switch its server's poller obeys. The sweeper's settings are the process's
    environment, where the engine put every function's."""
    import os

    t = engine.template
    named = {field_: logical for field_, logical in LOGICAL_IDS.items() if field_ != "queries_table"}
    resources = Resources(
        **{field_: t.resolve({"Ref": logical}) for field_, logical in named.items()},
        # The name the engine gave every function (QueriesTable, or a two-region stack's global
        # table or replica: docs/multi-region.md).
        queries_table=os.environ["QUERIES_TABLE"],
    )
    return Target(
        where=where,
        resources=resources,
        sqs=engine.clients["sqs"],
        dynamodb=engine.clients["dynamodb"],
        s3=engine.clients["s3"],
        intake=intake,
        sweeper_settings=dict(os.environ),
    )


COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {
    "dlq": dlq,
    "stuck": stuck,
    "replay": replay,
    "reviews": reviews,
    "intake": intake,
    "cost-today": cost_today,
}


def run(target: Target, command: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """One operation by name, with its keyword arguments (what ``POST /local/ops/{command}``
    receives); unknown names and arguments are refused with what exists."""
    import inspect

    operation = COMMANDS.get(command)
    if operation is None:
        raise BadInputError(f"no ops command {command!r}; there are {', '.join(COMMANDS)}")
    try:
        inspect.signature(operation).bind(target, **arguments)
    except TypeError as exc:
        raise BadInputError(f"ops {command}: {exc}") from None
    return operation(target, **arguments)
