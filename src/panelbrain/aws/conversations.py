"""The conversation store: one small item per turn, gone with its conversation's TTL.

A turn keeps what a follow-up needs and what ``GET /conversations/{id}`` lists: the question, the
resolved reading (a plan without its question text or table, a few hundred bytes) and the query it
started (a pointer: the answer, its table and its SQL stay in the query store and S3). So a turn's
item stays the same size however long the conversation grows, and a follow-up reads only the last
few turns (one Query, newest first, ``Limit``), never the whole conversation.

Table: partition key ``conversation_id`` (S), sort key ``turn`` (N); TTL attribute
``expires_at`` (epoch seconds), the same on every turn: a conversation lives
``CONVERSATION_TTL_HOURS`` from its first question. DynamoDB deletes expired items only
eventually ("typically within a few days",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html) and still
returns them to reads until then, so every read checks ``expires_at`` itself ("Items that have
expired and not been deleted will still show up in reads, queries, and scans",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ttl-expired-items.html).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from panelbrain.aws import DynamoTable
from panelbrain.errors import BadInputError
from panelbrain.models import ReadAs, Reading

if TYPE_CHECKING:
    pass

DEFAULT_TTL_HOURS = 24.0


class TurnTakenError(BadInputError):
    """Two follow-ups to one conversation arrived together: the later one must be sent again."""


class Turn(BaseModel):
    """One question of a conversation, as stored."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    turn: int
    query_id: str
    question: str
    dataset: str
    provider: str
    reading: Reading | None = None  # None until the planner has resolved it (Bedrock)
    read_as: ReadAs = "question"
    created_at: float
    expires_at: float


def new_conversation_id() -> str:
    return "c-" + uuid.uuid4().hex[:16]


def ttl_seconds() -> float:
    """How long a conversation lives from its first question (the template's
    ``ConversationTtlHours``)."""
    return float(os.environ.get("CONVERSATION_TTL_HOURS", DEFAULT_TTL_HOURS)) * 3600


class ConversationStore(ABC):
    clock: Callable[[], float]

    @abstractmethod
    def last_turns(self, conversation_id: str, count: int) -> list[Turn] | None:
        """The conversation's last ``count`` turns, oldest first; None if it does not exist or
        has expired."""

    @abstractmethod
    def turns(self, conversation_id: str) -> list[Turn] | None:
        """Every turn, oldest first; None if the conversation does not exist or has expired."""

    @abstractmethod
    def add_turn(self, turn: Turn) -> None:
        """Store a new turn; :class:`TurnTakenError` if its number is already taken."""

    @abstractmethod
    def record_reading(self, conversation_id: str, turn: int, reading: Reading, read_as: ReadAs) -> None:
        """The reading the pipeline's planner resolved for a turn (kept only while the turn is)."""


class DynamoConversationStore(ConversationStore, DynamoTable):
    """DynamoDB implementation; table from ``CONVERSATIONS_TABLE``, client from the builder
    unless given."""

    table_env = "CONVERSATIONS_TABLE"

    def last_turns(self, conversation_id: str, count: int) -> list[Turn] | None:
        # Strongly consistent: the next turn's number comes from the last one.
        items = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="conversation_id = :c",
            ExpressionAttributeValues={":c": {"S": conversation_id}},
            ScanIndexForward=False,
            Limit=count,
            ConsistentRead=True,
        )["Items"]
        return self._alive([_turn(i) for i in reversed(items)])

    def turns(self, conversation_id: str) -> list[Turn] | None:
        found: list[Turn] = []
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="conversation_id = :c",
            ExpressionAttributeValues={":c": {"S": conversation_id}},
        )
        for page in pages:
            found += [_turn(i) for i in page["Items"]]
        return self._alive(found)

    def _alive(self, turns: list[Turn]) -> list[Turn] | None:
        if not turns or turns[-1].expires_at <= self.clock():
            return None
        return turns

    def add_turn(self, turn: Turn) -> None:
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=_item(turn),
                ConditionExpression="attribute_not_exists(turn)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise TurnTakenError(
                f"conversation {turn.conversation_id}: turn {turn.turn} was taken by a question sent at "
                "the same time; send this one again"
            ) from None

    def record_reading(self, conversation_id: str, turn: int, reading: Reading, read_as: ReadAs) -> None:
        # The conversation may have expired while the question ran: then there is nothing to keep.
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key={"conversation_id": {"S": conversation_id}, "turn": {"N": str(turn)}},
                UpdateExpression="SET reading = :r, read_as = :a",
                # Never recreate a turn the TTL has removed: a bare key would outlive it.
                ConditionExpression="attribute_exists(conversation_id)",
                ExpressionAttributeValues={
                    ":r": {"S": _compact(reading.model_dump(mode="json", exclude_defaults=True))},
                    ":a": {"S": read_as},
                },
            )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _item(turn: Turn) -> dict[str, Any]:
    item: dict[str, Any] = {
        "conversation_id": {"S": turn.conversation_id},
        "turn": {"N": str(turn.turn)},
        "query_id": {"S": turn.query_id},
        "question": {"S": turn.question},
        "dataset": {"S": turn.dataset},
        "provider": {"S": turn.provider},
        "read_as": {"S": turn.read_as},
        "created_at": {"N": str(round(turn.created_at, 3))},
        "expires_at": {"N": str(int(turn.expires_at))},
    }
    if turn.reading is not None:
        item["reading"] = {"S": _compact(turn.reading.model_dump(mode="json", exclude_defaults=True))}
    return item


def _turn(item: dict[str, Any]) -> Turn:
    reading = item.get("reading")
    return Turn(
        conversation_id=item["conversation_id"]["S"],
        turn=int(item["turn"]["N"]),
        query_id=item["query_id"]["S"],
        question=item["question"]["S"],
        dataset=item["dataset"]["S"],
        provider=item["provider"]["S"],
        reading=Reading.model_validate_json(reading["S"]) if reading else None,
        read_as=item["read_as"]["S"],
        created_at=float(item["created_at"]["N"]),
        expires_at=float(item["expires_at"]["N"]),
    )
