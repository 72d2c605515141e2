"""The review table: one item per review, its task token beside it, decisions written once.

The review's content (question, answer, table, ...) is written once as a JSON document; what
changes (status, decision, heartbeats, reminder) lives in attributes of its own, each changed by
a conditional update, so two reviewers clicking at once cannot both decide. A decision is first
a claim (status ``deciding``, attributes ``claim``, ``claim_expires_at``, ``claim_gone_at``), and
becomes the review's ``decision`` once the waiting task was told (see ReviewService.decide).
Indexes: ``by_status`` (status, created_at) lists open reviews and history without a scan;
``by_query`` (query_id, level) finds a query's reviews.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from panelbrain.aws import batch_get, clients, conditional_write
from panelbrain.review.models import Decision, Review
from panelbrain.review.ports import Claim

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputPaginateTypeDef

CLOSED = ("approved", "rejected", "timed_out")
# A claim's attributes: gone with the claim, whichever way it ends.
_CLAIM_ATTRIBUTES = "claim, claim_expires_at, claim_gone_at"


class DynamoReviewStore:
    """The DynamoDB implementation of :class:`panelbrain.review.ports.ReviewStore`; table name
    from ``REVIEWS_TABLE`` and the client from the builder unless given."""

    def __init__(self, table_name: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name or os.environ["REVIEWS_TABLE"]
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return clients.client("dynamodb") if self._client is None else self._client

    def open(self, review: Review, token: str, attempt: int = 0) -> Review:
        content = review.model_dump(
            mode="json", exclude={"status", "decision", "heartbeats", "last_heartbeat_at", "reminded_at"}
        )
        created = conditional_write(
            lambda: self.client.put_item(
                TableName=self.table_name,
                Item={
                    "review_id": {"S": review.review_id},
                    "query_id": {"S": review.query_id},
                    "level": {"N": str(review.level)},
                    "status": {"S": "open"},
                    "created_at": {"N": repr(review.created_at)},
                    "doc": {"S": json.dumps(content)},
                    "task_token": {"S": token},
                    "task_attempt": {"N": str(attempt)},
                    "heartbeats": {"N": "0"},
                },
                ConditionExpression="attribute_not_exists(review_id)",
            )
        )
        if not created:
            # A retried notifier: its task waits on the new token, so the review takes it
            # whether open or being decided (a decider holding the old token tries the new one),
            # unless a later attempt's is stored already: a timed-out attempt's write can land
            # after its retry's (it was sent before Lambda stopped it). A decided or closed
            # review is returned as it stands.
            conditional_write(
                lambda: self.client.update_item(
                    TableName=self.table_name,
                    Key={"review_id": {"S": review.review_id}},
                    UpdateExpression="SET task_token = :token, task_attempt = :attempt, doc = :doc",
                    ConditionExpression=(
                        "#s IN (:open, :deciding) AND "
                        "(attribute_not_exists(task_attempt) OR task_attempt < :attempt)"
                    ),
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":token": {"S": token},
                        ":attempt": {"N": str(attempt)},
                        ":doc": {"S": json.dumps(content)},
                        ":open": {"S": "open"},
                        ":deciding": {"S": "deciding"},
                    },
                )
            )
        stored = self.get(review.review_id)
        assert stored is not None  # written above, or decided before: present either way
        return stored

    def _item(self, review_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name, Key={"review_id": {"S": review_id}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def get(self, review_id: str) -> Review | None:
        item = self._item(review_id)
        return _review(item) if item else None

    def token(self, review_id: str) -> str | None:
        item = self._item(review_id)
        return str(item["task_token"]["S"]) if item and "task_token" in item else None

    def _update(self, review_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        """A conditional update; False (nothing changed) when the condition does not hold."""
        return conditional_write(
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key={"review_id": {"S": review_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        )

    def close(self, review_id: str, decision: Decision, *, deciding_too: bool = False) -> bool:
        values = {
            ":status": {"S": decision.decision},
            ":decision": {"S": decision.model_dump_json()},
            ":at": {"N": repr(decision.at)},
            ":open": {"S": "open"},
        }
        condition = "#s = :open"
        if deciding_too:
            condition = "#s IN (:open, :deciding)"
            values[":deciding"] = {"S": "deciding"}
        return self._update(
            review_id,
            f"SET #s = :status, decision = :decision, decided_at = :at REMOVE {_CLAIM_ATTRIBUTES}",
            condition,
            values,
        )

    def claim(self, claim: Claim) -> bool:
        return self._update(
            claim.review_id,
            "SET #s = :deciding, claim = :claim, claim_expires_at = :expires",
            "#s = :open",
            {
                ":deciding": {"S": "deciding"},
                ":claim": {"S": claim.decision.model_dump_json()},
                ":expires": {"N": repr(claim.expires_at)},
                ":open": {"S": "open"},
            },
        )

    # A claim is matched by its pending decision (who, what, when): a claim that was released
    # and taken again by someone else is another claim.
    _HELD = "#s = :deciding AND claim = :claim"

    def _held(self, claim: Claim) -> dict[str, Any]:
        return {":deciding": {"S": "deciding"}, ":claim": {"S": claim.decision.model_dump_json()}}

    def settle(self, claim: Claim, decision: Decision) -> bool:
        return self._update(
            claim.review_id,
            f"SET #s = :status, decision = :decision, decided_at = :at REMOVE {_CLAIM_ATTRIBUTES}",
            self._HELD,
            {
                **self._held(claim),
                ":status": {"S": decision.decision},
                ":decision": {"S": decision.model_dump_json()},
                ":at": {"N": repr(decision.at)},
            },
        )

    def release(self, claim: Claim) -> bool:
        return self._update(
            claim.review_id,
            f"SET #s = :open REMOVE {_CLAIM_ATTRIBUTES}",
            self._HELD,
            {**self._held(claim), ":open": {"S": "open"}},
        )

    def mark_gone(self, claim: Claim, at: float) -> bool:
        return self._update(
            claim.review_id,
            "SET claim_gone_at = :at",
            f"{self._HELD} AND attribute_not_exists(claim_gone_at)",
            {**self._held(claim), ":at": {"N": repr(at)}},
        )

    def claims(self) -> list[Claim]:
        ids = self._query("by_status", "#s = :s", {":s": {"S": "deciding"}}, None, {"#s": "status"})
        found = []
        for item in map(self._item, ids):
            if item is not None and item["status"]["S"] == "deciding" and "claim" in item:
                found.append(
                    Claim(
                        review_id=item["review_id"]["S"],
                        decision=Decision.model_validate_json(item["claim"]["S"]),
                        expires_at=float(item["claim_expires_at"]["N"]),
                        gone_at=float(item["claim_gone_at"]["N"]) if "claim_gone_at" in item else None,
                    )
                )
        return found

    def heartbeat(self, review_id: str, at: float) -> None:
        self._update(
            review_id,
            "ADD heartbeats :one SET last_heartbeat_at = :at",
            "#s = :open",
            {":one": {"N": "1"}, ":at": {"N": repr(at)}, ":open": {"S": "open"}},
        )

    def mark_reminded(self, review_id: str, at: float) -> bool:
        return self._update(
            review_id,
            "SET reminded_at = :at",
            "attribute_not_exists(reminded_at) AND #s = :open",
            {":at": {"N": repr(at)}, ":open": {"S": "open"}},
        )

    def _query(
        self,
        index: str,
        condition: str,
        values: dict[str, Any],
        limit: int | None,
        names: dict[str, str],
        *,
        forward: bool = True,
    ) -> list[str]:
        """Review ids from an index (the indexes project keys only), in its sort key's order
        (``forward``) or the reverse, every page of them unless ``limit`` stops earlier.

        A Query returns at most 1 MB a call and says where to go on (LastEvaluatedKey); the
        paginator follows it (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html).
        ScanIndexForward false reads the sort key descending
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Query.html).
        """
        ids: list[str] = []
        request: QueryInputPaginateTypeDef = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        if limit is not None:
            request["PaginationConfig"] = {"MaxItems": limit}
        if names:
            request["ExpressionAttributeNames"] = names
        for page in self.client.get_paginator("query").paginate(**request):
            ids.extend(item["review_id"]["S"] for item in page["Items"])
        return ids

    def with_status(
        self, status: str, limit: int | None = 100, *, newest_first: bool = False
    ) -> list[Review]:
        # Read each review whole, consistently (the index lags a write).
        ids = self._query(
            "by_status", "#s = :s", {":s": {"S": status}}, limit, {"#s": "status"}, forward=not newest_first
        )
        return [r for r in self._reviews(ids) if r.status == status]

    def of_query(self, query_id: str) -> list[Review]:
        ids = self._query("by_query", "query_id = :q", {":q": {"S": query_id}}, 10, {})
        return self._reviews(ids)

    def _reviews(self, ids: list[str]) -> list[Review]:
        """The reviews ``ids`` names, in that order, read whole and consistently."""
        found = batch_get(self.client, self.table_name, "review_id", ids, consistent=True)
        return [_review(found[i]) for i in ids if i in found]


def _review(item: dict[str, Any]) -> Review:
    document = json.loads(item["doc"]["S"])
    # A deciding review shows its pending decision: who decides it, since when.
    decision = item.get("decision", item.get("claim", {})).get("S")
    return Review(
        **document,
        status=item["status"]["S"],
        decision=Decision.model_validate_json(decision) if decision else None,
        heartbeats=int(item.get("heartbeats", {}).get("N", "0")),
        last_heartbeat_at=float(item["last_heartbeat_at"]["N"]) if "last_heartbeat_at" in item else None,
        reminded_at=float(item["reminded_at"]["N"]) if "reminded_at" in item else None,
    )
