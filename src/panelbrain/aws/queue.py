"""The query queue: the API puts accepted questions on it; the poller takes them off."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from panelbrain.aws import clients
from panelbrain.models import QueryMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class QueryQueue(ABC):
    @abstractmethod
    def send(self, message: QueryMessage) -> None: ...


class SqsQueryQueue(QueryQueue):
    """SQS implementation; queue URL from ``QUERY_QUEUE_URL`` and the client from the builder
    unless given."""

    def __init__(self, queue_url: str | None = None, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url or os.environ["QUERY_QUEUE_URL"]
        self._client = client

    @property
    def client(self) -> SQSClient:
        return clients.client("sqs") if self._client is None else self._client

    def send(self, message: QueryMessage) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            # A question outside a conversation keeps the message it always had (no null field).
            MessageBody=message.model_dump_json(exclude_none=True),
            MessageAttributes={"query_id": {"DataType": "String", "StringValue": message.query_id}},
        )
