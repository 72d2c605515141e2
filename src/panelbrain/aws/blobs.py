"""Claim checks: payloads too big for a state (256 KB in Step Functions) go to S3.

A payload whose JSON exceeds ``THRESHOLD_BYTES`` is stored under a key named for its content
hash and replaced by ``{"claim_check": "s3://bucket/key", "bytes": n}``; readers call
:func:`resolve` and get the original back, byte for byte. Small payloads pass through untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from panelbrain.aws import clients

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

THRESHOLD_BYTES = 200 * 1024
CLAIM = "claim_check"


class BlobStore(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Store ``data``; return its URI."""

    @abstractmethod
    def get(self, uri: str) -> bytes: ...


class S3BlobStore(BlobStore):
    """S3 implementation; bucket from ``PAYLOAD_BUCKET`` and the client from the builder unless
    given."""

    def __init__(self, bucket: str | None = None, client: S3Client | None = None) -> None:
        self.bucket = bucket or os.environ["PAYLOAD_BUCKET"]
        self._client = client

    @property
    def client(self) -> S3Client:
        return clients.client("s3") if self._client is None else self._client

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
        return f"s3://{self.bucket}/{key}"

    def get(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data


def offload(
    payload: dict[str, Any], store: BlobStore | None = None, prefix: str = "payloads"
) -> dict[str, Any]:
    """``payload`` itself if small, else a claim check for it."""
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    if len(data) <= THRESHOLD_BYTES:
        return payload
    key = f"{prefix}/{hashlib.sha256(data).hexdigest()}.json"
    uri = (store or S3BlobStore()).put(key, data)
    return {CLAIM: uri, "bytes": len(data)}


def resolve(payload: dict[str, Any], store: BlobStore | None = None) -> dict[str, Any]:
    """The original payload behind a claim check (or ``payload`` when it is not one)."""
    if set(payload) != {CLAIM, "bytes"}:
        return payload
    resolved: dict[str, Any] = json.loads((store or S3BlobStore()).get(str(payload[CLAIM])))
    return resolved
