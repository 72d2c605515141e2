"""AWS adapters: each an interface with a boto3 implementation; clients injected or built late."""

from __future__ import annotations

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
