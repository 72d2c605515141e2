"""AWS adapters: each an interface with a boto3 implementation; clients injected or taken from
the one builder, :mod:`panelbrain.aws.clients`."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoTable:
    """What a DynamoDB adapter starts from: its table (named, or the one the template's
    environment variable ``table_env`` names), its client (given, or the builder's on first
    use) and its clock (tests move it instead of sleeping)."""

    table_env: ClassVar[str]

    def __init__(
        self,
        table_name: str | None = None,
        client: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name or os.environ[self.table_env]
        self._client = client
        self.clock = clock

    @property
    def client(self) -> DynamoDBClient:
        from panelbrain.aws import clients

        return clients.client("dynamodb") if self._client is None else self._client


def conditional_write(write: Callable[[], object]) -> bool:
    """Run a conditional DynamoDB write: True if it was made, False if its condition failed."""
    from botocore.exceptions import ClientError

    try:
        write()
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def batch_get(
    client: Any, table: str, key: str, ids: list[str], *, consistent: bool = False
) -> dict[str, dict[str, Any]]:
    """The items of ``table`` whose string key ``key`` is one of ``ids`` (those that exist), by
    id. BatchGetItem takes up to 100 keys a call and may hand some back unprocessed, to ask for
    again after a back-off
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html)."""
    found: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 100):
        keys: list[dict[str, Any]] = [{key: {"S": i}} for i in unique[start : start + 100]]
        for attempt in itertools.count():
            request: dict[str, Any] = {"Keys": keys, **({"ConsistentRead": True} if consistent else {})}
            response = client.batch_get_item(RequestItems={table: request})
            for item in response.get("Responses", {}).get(table, []):
                found[item[key]["S"]] = item
            keys = list(response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
            if not keys:
                break
            time.sleep(min(1.0, 0.05 * 2**attempt))  # the table is at capacity: back off
    return found
