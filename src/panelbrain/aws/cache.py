"""The result cache: an answered question, kept for its dataset's freshness window.

Key: a hash of the normalised question, the dataset and its data version, so a new data
version never serves an old answer. Deployed (and on the local engine) the data version is the
published dataset's content hash, and an answer is keyed by the version its plan read
(docs/adr/0025-datasets-in-s3.md). TTL: 1 h for real-time data, 24 h for historical. DynamoDB
deletes expired items late (hours to days after their TTL), so expiry is checked on every read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from panelbrain.aws import clients

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL_SECONDS = {"real_time": 3_600, "historical": 86_400}


def normalise(question: str) -> str:
    """Case, spacing and trailing punctuation do not change the question."""
    return re.sub(r"\s+", " ", question.strip().lower()).strip(" ?!.")


def cache_key(question: str, dataset: str, data_version: str) -> str:
    text = "\x1f".join((normalise(question), dataset, data_version))
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache(ABC):
    @abstractmethod
    def get(self, key: str) -> dict[str, Any] | None:
        """The cached result, or None if absent or past its expiry."""

    @abstractmethod
    def put(self, key: str, result: dict[str, Any], ttl_s: int) -> None: ...


class DynamoResultCache(ResultCache):
    """DynamoDB implementation; table from ``RESULT_CACHE_TABLE`` and the client from the
    builder unless given; TTL attribute ``expires_at``."""

    def __init__(
        self, table_name: str | None = None, client: DynamoDBClient | None = None, clock: Any = time.time
    ) -> None:
        self.table_name = table_name or os.environ["RESULT_CACHE_TABLE"]
        self._client = client
        self._clock = clock

    @property
    def client(self) -> DynamoDBClient:
        return clients.client("dynamodb") if self._client is None else self._client

    def get(self, key: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table_name, Key={"cache_key": {"S": key}}).get("Item")
        if item is None or float(item["expires_at"]["N"]) <= self._clock():
            return None
        result: dict[str, Any] = json.loads(item["result"]["S"])
        return result

    def put(self, key: str, result: dict[str, Any], ttl_s: int) -> None:
        self.client.put_item(
            TableName=self.table_name,
            Item={
                "cache_key": {"S": key},
                "result": {"S": json.dumps(result)},
                "expires_at": {"N": str(int(self._clock() + ttl_s))},
            },
        )
