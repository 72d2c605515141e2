"""The query queue: the API puts accepted questions on it; the poller takes them off."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

from panelbrain.aws import LazyClient
from panelbrain.models import QueryMessage


class QueryQueue(ABC):
    @abstractmethod
    def send(self, message: QueryMessage) -> None: ...


class SqsQueryQueue(LazyClient, QueryQueue):
    service = "sqs"

    """SQS implementation; queue URL from ``QUERY_QUEUE_URL`` unless given."""

    def __init__(self, queue_url: str | None = None, client: Any = None) -> None:
        self.queue_url = queue_url or os.environ["QUERY_QUEUE_URL"]
        self._client = client

    def send(self, message: QueryMessage) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=message.model_dump_json(),
            MessageAttributes={"query_id": {"DataType": "String", "StringValue": message.query_id}},
        )
