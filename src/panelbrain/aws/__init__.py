"""AWS adapters: each an interface with a boto3 implementation; clients injected or built late."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar


class LazyClient:
    """A boto3 client given at construction (tests) or built on first use (Lambda), once."""

    service: ClassVar[str]
    _client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client(self.service)
        return self._client


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


def boto3_client(service: str) -> Callable[[], Any]:
    """A getter for one boto3 client, built on first use and kept for the container's life
    (``.cache_clear()`` forgets it: tests then substitute the getter itself)."""

    @functools.cache
    def client() -> Any:
        import boto3

        return boto3.client(service)

    return client
