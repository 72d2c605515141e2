"""Claim checks: payloads too big to travel inline go to S3, and a small reference travels.

:func:`offload` stores a payload whose JSON exceeds a budget (:mod:`panelbrain.aws.budgets`)
under a key named for its content hash and returns ``{"claim_check": "s3://bucket/key",
"bytes": n}`` (a table's claim check also carries its row count and first rows); :func:`resolve`
gives the original back, byte for byte, and :func:`resolve_all` every claim check inside a
document. Small payloads pass through untouched.

Two prefixes, two lifetimes: ``payloads/`` holds what one execution hands from a state to the
next (worker outputs; the bucket expires them), ``results/`` what a stored query or review
refers to (tables, markdown, persisted results), kept as long as the query item is.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from panelbrain.aws import clients
from panelbrain.aws.budgets import json_bytes
from panelbrain.errors import PayloadTooLargeError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CLAIM = "claim_check"
TRANSIENT = "payloads"  # read within the execution that wrote it; expired by the bucket
KEPT = "results"  # referred to by stored queries and reviews


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


def is_claim_check(value: Any) -> bool:
    return isinstance(value, dict) and CLAIM in value and "bytes" in value


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def offload(
    payload: Any,
    store: BlobStore | None = None,
    *,
    budget: int,
    prefix: str = TRANSIENT,
    **describe: Any,
) -> Any:
    """``payload`` itself if its JSON fits ``budget`` bytes, else a claim check for it (with
    ``describe`` beside the reference, e.g. a table's row count)."""
    data = _encode(payload)
    if len(data) <= budget:
        return payload
    key = f"{prefix}/{hashlib.sha256(data).hexdigest()}.json"
    uri = (store or S3BlobStore()).put(key, data)
    return {CLAIM: uri, "bytes": len(data), **describe}


def resolve(payload: Any, store: BlobStore | None = None) -> Any:
    """The original payload behind a claim check (or ``payload`` when it is not one)."""
    if not is_claim_check(payload):
        return payload
    return json.loads((store or S3BlobStore()).get(str(payload[CLAIM])))


def resolve_all(value: Any, store: BlobStore | None = None) -> Any:
    """``value`` with every claim check in it, at any depth, replaced by what it stands for."""
    if is_claim_check(value):
        return resolve_all(resolve(value, store), store)  # a result stored whole may hold more
    if isinstance(value, dict):
        return {k: resolve_all(v, store) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_all(v, store) for v in value]
    return value


def head(rows: list[Any], budget: int) -> list[Any]:
    """The first of ``rows`` whose JSON together fits ``budget`` bytes."""
    taken: list[Any] = []
    used = 2
    for row in rows:
        used += json_bytes(row) + 1
        if used > budget:
            break
        taken.append(row)
    return taken


def fit(
    document: dict[str, Any],
    budget: int,
    *,
    what: str,
    fields: Iterable[str] | None = None,
    store: BlobStore | None = None,
    prefix: str = KEPT,
) -> dict[str, Any]:
    """``document`` with its largest fields (of ``fields``, default all) offloaded one by one
    until its JSON fits ``budget``; PayloadTooLargeError (catchable) if it still does not."""
    if json_bytes(document) <= budget:
        return document
    fitted = dict(document)
    names = [n for n in (fields if fields is not None else document) if n in fitted]
    for name in sorted(names, key=lambda n: json_bytes(fitted[n]), reverse=True):
        if fitted[name] is None or is_claim_check(fitted[name]):
            continue
        fitted[name] = offload(fitted[name], store, budget=0, prefix=prefix)
        if json_bytes(fitted) <= budget:
            return fitted
    raise PayloadTooLargeError(
        f"{what} is {json_bytes(fitted):,} bytes of JSON even with "
        f"{', '.join(names) or 'nothing'} in S3; at most {budget:,} may travel inline "
        "(see panelbrain.aws.budgets)",
        budget=budget,
    )
