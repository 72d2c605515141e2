"""The query store: each query's status, terminal result and audit trail.

Writes are conditional so that a repeated delivery (Express workflows run at least once) can
never overwrite a terminal state: the first terminal write wins, later ones are no-ops.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from panelbrain.aws import DynamoTable, batch_get, conditional_write
from panelbrain.models import TerminalRecord

if TYPE_CHECKING:
    pass

TERMINAL = ("answered", "rejected", "failed")


class QueryStore(ABC):
    # The time leases and deadlines are measured by (epoch seconds).
    clock: Callable[[], float]

    @abstractmethod
    def put_record(self, record: TerminalRecord) -> bool:
        """Write a status; False when a terminal status was already there (nothing changed)."""

    @abstractmethod
    def get(self, query_id: str, *, consistent: bool = False) -> dict[str, Any] | None:
        """The query's item; ``consistent`` reads what the last write wrote (a claim that just
        failed must be explained by the write that won it, not by an older copy)."""

    @abstractmethod
    def create_query(self, query_id: str, request: dict[str, Any]) -> None: ...

    def get_many(self, query_ids: list[str]) -> list[dict[str, Any]]:
        """The records of ``query_ids`` that exist, in that order."""
        return [r for i in query_ids if (r := self.get(i)) is not None]

    @abstractmethod
    def claim_start(self, query_id: str, lease_s: float) -> bool:
        """Move a query from queued to started under a lease of ``lease_s`` seconds; False if
        another delivery holds an unexpired lease or an execution was already recorded."""

    @abstractmethod
    def mark_started(self, query_id: str, execution_arn: str) -> None:
        """Record that the query's execution started: no later delivery may start another."""

    @abstractmethod
    def release_start(self, query_id: str) -> None:
        """Undo a claim whose StartExecution failed, so the next delivery can try again."""

    @abstractmethod
    def past_deadline(self, status: str, before: float, limit: int) -> list[str]:
        """Up to ``limit`` queries in ``status`` whose status last changed before ``before``."""

    @abstractmethod
    def close_past_deadline(self, query_id: str, status: str, before: float, reason: str) -> bool:
        """Fail a query still in ``status`` unchanged since before ``before``; False if it moved."""


def _event(status: str, **detail: Any) -> dict[str, Any]:
    """One audit-trail entry, appended to the query's history on every change of status."""
    return {"L": [{"S": json.dumps({"status": status, "at": time.time(), **detail})}]}


class DynamoQueryStore(QueryStore, DynamoTable):
    """DynamoDB implementation; table name from ``QUERIES_TABLE`` and the client from the
    builder unless given. Leases and deadlines compare against its clock."""

    table_env = "QUERIES_TABLE"

    def put_record(self, record: TerminalRecord) -> bool:
        values: dict[str, Any] = {
            ":route": {"S": record.route},
            ":result": {"S": json.dumps(record.result)},
            ":a": {"S": "answered"},
            ":r": {"S": "rejected"},
            ":f": {"S": "failed"},
            ":event": _event(record.status, route=record.route, reason=record.reason),
        }
        also_set = "route = :route, #r = :result, "
        if record.reason is not None:
            also_set += "reason = :reason, "
            values[":reason"] = {"S": record.reason}
        condition = "attribute_not_exists(#s) OR NOT #s IN (:a, :r, :f)"
        if record.status != "needs_review" and not record.route.startswith("review_"):
            # Once StartReview has handed the query to a review, only the review's outcomes (or
            # the deadline sweeper) end it: a pipeline failure recorded after the hand-over (a
            # StartReview that ran on past its timeout) must not end a query a reviewer decides.
            condition = f"({condition}) AND NOT #s = :needs_review"
            values[":needs_review"] = {"S": "needs_review"}
        return self._conditional_update(
            record.query_id,
            record.status,
            condition,
            values,
            also_set=also_set,
            names={"#r": "result"},
        )

    def create_query(self, query_id: str, request: dict[str, Any]) -> None:
        now = self.clock()
        self.client.put_item(
            TableName=self.table_name,
            Item={
                "query_id": {"S": query_id},
                "status": {"S": "queued"},
                "request": {"S": json.dumps(request)},
                "history": _event("queued"),
                "created_at": {"N": str(now)},
                # The deadline sweeper finds stale queries by status and this time (index by_status).
                "updated_at": {"N": str(now)},
            },
            ConditionExpression="attribute_not_exists(query_id)",
        )

    def _conditional_update(
        self,
        query_id: str,
        after: str,
        condition: str,
        values: dict[str, Any],
        *,
        also_set: str = "",
        remove: str = "",
        names: dict[str, str] | None = None,
    ) -> bool:
        """Set the status to ``after``, append it to the history (and ``also_set``, e.g.
        ``"lease_until = :until, "``; ``remove`` attributes) if ``condition`` holds; False (no
        change) if it does not. ``values`` may override ``:now`` and ``:event``."""
        return conditional_write(
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key={"query_id": {"S": query_id}},
                UpdateExpression=(
                    f"SET #s = :after, {also_set}updated_at = :now, "
                    "history = list_append(if_not_exists(history, :empty), :event)"
                    + (f" REMOVE {remove}" if remove else "")
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status", **(names or {})},
                ExpressionAttributeValues={
                    ":after": {"S": after},
                    ":now": {"N": str(self.clock())},
                    ":event": _event(after),
                    ":empty": {"L": []},
                    **values,
                },
            )
        )

    def claim_start(self, query_id: str, lease_s: float) -> bool:
        # Asynchronous Express workflows do not deduplicate execution names in AWS (moto
        # does): this conditional write is what keeps a second delivery from a second run.
        # The claim is a lease: a poller stopped between this write and StartExecution (its
        # timeout, a crash) never releases it, so a redelivery may retake a claim whose lease
        # has run out, but only while no execution is recorded (mark_started). An Express
        # execution cannot be looked up by name (DescribeExecution does not support them:
        # https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html),
        # so the record is the only evidence. A query that went to the dead-letter queue may
        # start again when it is redriven.
        now = self.clock()
        return self._conditional_update(
            query_id,
            "started",
            "#s = :queued OR (#s = :failed AND route = :dead) OR "
            "(#s = :after AND lease_until < :now AND attribute_not_exists(execution_arn))",
            {
                ":queued": {"S": "queued"},
                ":failed": {"S": "failed"},
                ":dead": {"S": "dead_letter"},
                ":until": {"N": str(now + lease_s)},
                ":now": {"N": str(now)},  # one instant for the lease test and the write
                ":event": _event("started", lease_s=lease_s),
            },
            also_set="lease_until = :until, ",
        )

    def mark_started(self, query_id: str, execution_arn: str) -> None:
        # Whatever the status: a fast pipeline may already have written its terminal state.
        self.client.update_item(
            TableName=self.table_name,
            Key={"query_id": {"S": query_id}},
            UpdateExpression="SET execution_arn = :arn REMOVE lease_until",
            ExpressionAttributeValues={":arn": {"S": execution_arn}},
        )

    def release_start(self, query_id: str) -> None:
        self._conditional_update(
            query_id,
            "queued",
            "#s = :started AND attribute_not_exists(execution_arn)",
            {":started": {"S": "started"}},
        )

    def past_deadline(self, status: str, before: float, limit: int) -> list[str]:
        # The by_status index (status, updated_at) finds them without scanning the table. It is
        # keys-only and eventually consistent: close_past_deadline re-checks under its condition.
        response = self.client.query(
            TableName=self.table_name,
            IndexName="by_status",
            KeyConditionExpression="#s = :status AND updated_at < :before",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":status": {"S": status}, ":before": {"N": str(before)}},
            Limit=limit,
        )
        return [item["query_id"]["S"] for item in response.get("Items", [])]

    def close_past_deadline(self, query_id: str, status: str, before: float, reason: str) -> bool:
        # Conditional on the status the sweeper saw, unchanged since: a query that moved on (a
        # review started, an answer written) in the meantime is left to its workflow. Once
        # written, "failed" is terminal and the first terminal write wins: a late pipeline's
        # Persist is a no-op, so the query never flips from failed to answered (ADR 0010).
        return self._conditional_update(
            query_id,
            "failed",
            "#s = :seen AND updated_at < :before",
            {
                ":route": {"S": "deadline"},
                ":reason": {"S": reason},
                ":seen": {"S": status},
                ":before": {"N": str(before)},
                ":event": _event("failed", route="deadline", reason=reason),
            },
            also_set="route = :route, reason = :reason, ",
            remove="lease_until",
        )

    def get(self, query_id: str, *, consistent: bool = False) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table_name, Key={"query_id": {"S": query_id}}, ConsistentRead=consistent
        ).get("Item")
        return None if item is None else _record(item)

    def get_many(self, query_ids: list[str]) -> list[dict[str, Any]]:
        """The records of ``query_ids`` that exist, in that order (``panelbrain ops`` reads a
        day's queries), a hundred a request."""
        found = batch_get(self.client, self.table_name, "query_id", query_ids)
        return [_record(found[i]) for i in query_ids if i in found]


def _record(item: dict[str, Any]) -> dict[str, Any]:
    """A query item as callers read it: plain values, the result and history parsed."""
    record: dict[str, Any] = {k: v.get("S", v.get("N")) for k, v in item.items() if k != "history"}
    record["result"] = json.loads(record.get("result") or "{}")
    record["history"] = [json.loads(entry["S"]) for entry in item.get("history", {}).get("L", [])]
    return record
