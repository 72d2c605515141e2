"""The query store: each query's status, terminal result and audit trail.

Writes are conditional so that a repeated delivery (Express workflows run at least once) can
never overwrite a terminal state: the first terminal write wins, later ones are no-ops.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from panelbrain.aws import clients, conditional_write
from panelbrain.models import TerminalRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TERMINAL = ("answered", "rejected", "failed")


class QueryStore(ABC):
    @abstractmethod
    def put_record(self, record: TerminalRecord) -> bool:
        """Write a status; False when a terminal status was already there (nothing changed)."""

    @abstractmethod
    def get(self, query_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def create_query(self, query_id: str, request: dict[str, Any]) -> None: ...

    @abstractmethod
    def claim_start(self, query_id: str) -> bool:
        """Move a query from queued to started; False if another delivery already did."""

    @abstractmethod
    def release_start(self, query_id: str) -> None:
        """Undo a claim whose StartExecution failed, so the next delivery can try again."""


def _event(status: str, **detail: Any) -> dict[str, Any]:
    """One audit-trail entry, appended to the query's history on every change of status."""
    return {"L": [{"S": json.dumps({"status": status, "at": time.time(), **detail})}]}


class DynamoQueryStore(QueryStore):
    """DynamoDB implementation; table name from ``QUERIES_TABLE`` and the client from the
    builder unless given."""

    def __init__(self, table_name: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name or os.environ["QUERIES_TABLE"]
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return clients.client("dynamodb") if self._client is None else self._client

    def put_record(self, record: TerminalRecord) -> bool:

        values: dict[str, Any] = {
            ":status": {"S": record.status},
            ":route": {"S": record.route},
            ":result": {"S": json.dumps(record.result)},
            ":now": {"N": str(time.time())},
            ":a": {"S": "answered"},
            ":r": {"S": "rejected"},
            ":f": {"S": "failed"},
            ":event": _event(record.status, route=record.route, reason=record.reason),
            ":empty": {"L": []},
        }
        update = (
            "SET #s = :status, route = :route, #r = :result, updated_at = :now, "
            "history = list_append(if_not_exists(history, :empty), :event)"
        )
        if record.reason is not None:
            update += ", reason = :reason"
            values[":reason"] = {"S": record.reason}
        return conditional_write(
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key={"query_id": {"S": record.query_id}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#s) OR NOT #s IN (:a, :r, :f)",
                ExpressionAttributeNames={"#s": "status", "#r": "result"},
                ExpressionAttributeValues=values,
            )
        )

    def create_query(self, query_id: str, request: dict[str, Any]) -> None:
        self.client.put_item(
            TableName=self.table_name,
            Item={
                "query_id": {"S": query_id},
                "status": {"S": "queued"},
                "request": {"S": json.dumps(request)},
                "history": _event("queued"),
                "created_at": {"N": str(time.time())},
            },
            ConditionExpression="attribute_not_exists(query_id)",
        )

    def _conditional_update(self, query_id: str, after: str, condition: str, values: dict[str, Any]) -> bool:
        """Set the status to ``after`` if ``condition`` holds; False (no change) if it does not."""
        return conditional_write(
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key={"query_id": {"S": query_id}},
                UpdateExpression=(
                    "SET #s = :after, updated_at = :now, "
                    "history = list_append(if_not_exists(history, :empty), :event)"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":after": {"S": after},
                    ":now": {"N": str(time.time())},
                    ":event": _event(after),
                    ":empty": {"L": []},
                    **values,
                },
            )
        )

    def claim_start(self, query_id: str) -> bool:
        # Asynchronous Express workflows do not deduplicate execution names in AWS (moto
        # does): this conditional write is what keeps a second delivery from a second run.
        # A query that went to the dead-letter queue may start again when it is redriven.
        return self._conditional_update(
            query_id,
            "started",
            "#s = :queued OR (#s = :failed AND route = :dead)",
            {":queued": {"S": "queued"}, ":failed": {"S": "failed"}, ":dead": {"S": "dead_letter"}},
        )

    def release_start(self, query_id: str) -> None:
        self._conditional_update(query_id, "queued", "#s = :started", {":started": {"S": "started"}})

    def get(self, query_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table_name, Key={"query_id": {"S": query_id}}).get("Item")
        if item is None:
            return None
        record: dict[str, Any] = {k: v.get("S", v.get("N")) for k, v in item.items() if k != "history"}
        record["result"] = json.loads(record.get("result") or "{}")
        record["history"] = [json.loads(entry["S"]) for entry in item.get("history", {}).get("L", [])]
        return record
