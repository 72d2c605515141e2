"""The one way panelbrain builds AWS clients, and the one place tests substitute them.

:func:`client` builds a boto3 client per (service, region, profile, botocore Config options) on
first use and keeps it for the life of the process. Lambda reuses a container's process across
invocations, so a warm invocation pays for no client, and per-client state (the adaptive retry
rate limiter botocore keeps on each client) carries over from one invocation to the next
(https://docs.aws.amazon.com/lambda/latest/dg/best-practices.html: "Initialize SDK clients ...
outside of the function handler").

:func:`override` substitutes a client for a service (tests; a fake or a Stubber-wrapped client),
:func:`reset` forgets every built client (the local engine calls it when a new emulator starts:
a new emulator is a new account).

boto3 is imported by the first build, never at import: the API and poller functions import this
module and must stay fast to import.

Examples
--------
>>> from panelbrain.aws import clients
>>> with clients.override("sqs", fake_sqs):  # doctest: +SKIP
...     queue.send(message)  # every adapter and handler asking for "sqs" gets fake_sqs
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, overload

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient

__all__ = ["Service", "client", "override", "reset"]

# The services panelbrain calls; each has a typed overload below (and a stub package in dev).
# cloudformation and lambda: `panelbrain ops --stack` resolves a stack and switches its poller's
# event source mapping; codedeploy: the pre-traffic hook reports its verdict; ssm: the health
# check reads which state machines to check (no stub package for these: typed Any).
Service = Literal[
    "bedrock-runtime",
    "cloudformation",
    "codedeploy",
    "dynamodb",
    "lambda",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "stepfunctions",
]
SERVICES: tuple[str, ...] = get_args(Service)
T = TypeVar("T")

_lock = threading.Lock()
_built: dict[tuple[str, str | None, str | None, str], Any] = {}
_sessions: dict[str | None, Any] = {}
_overrides: dict[str, Any] = {}


@overload
def client(
    service: Literal["bedrock-runtime"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> BedrockRuntimeClient: ...
@overload
def client(
    service: Literal["cloudformation", "lambda", "ssm"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Any: ...
@overload
def client(
    service: Literal["dynamodb"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> DynamoDBClient: ...
@overload
def client(
    service: Literal["s3"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> S3Client: ...
@overload
def client(
    service: Literal["secretsmanager"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> SecretsManagerClient: ...
@overload
def client(
    service: Literal["sns"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> SNSClient: ...
@overload
def client(
    service: Literal["sqs"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> SQSClient: ...
@overload
def client(
    service: Literal["codedeploy"],  # the pre-traffic hook's; no stub package in dev
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Any: ...
@overload
def client(
    service: Literal["stepfunctions"],
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> SFNClient: ...
def client(
    service: Service,
    *,
    region: str | None = None,
    profile: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """The client for ``service``: the substitute if one is in place, else the one built for
    these arguments (built now if this is the first call).

    ``region`` and ``profile`` default to the environment's (``AWS_REGION`` /
    ``AWS_DEFAULT_REGION`` and the default credential chain); ``config`` holds keyword
    arguments for ``botocore.config.Config``, e.g. ``{"retries": {"mode": "adaptive"}}``.
    Options rather than a ``Config`` object, because equal options must find the same client and
    a ``Config`` compares by identity.
    """
    substitute = _overrides.get(service)
    if substitute is not None:
        return substitute
    key = (service, region, profile, json.dumps(config or {}, sort_keys=True, default=repr))
    built = _built.get(key)
    if built is None:
        # boto3 sessions are not thread safe, and the local server calls handlers from several
        # threads: one build at a time (https://docs.aws.amazon.com/boto3/latest/guide/session.html).
        with _lock:
            built = _built.get(key)
            if built is None:
                built = _built[key] = _build(service, region, profile, config)
    return built


def _build(service: str, region: str | None, profile: str | None, config: Mapping[str, Any] | None) -> Any:
    import boto3
    from botocore.config import Config

    # One session per profile: clients of one session share its loaded service models and
    # credential resolution, which a cold start would otherwise repeat per client.
    session = _sessions.get(profile)
    if session is None:
        session = _sessions[profile] = boto3.Session(profile_name=profile)
    return session.client(service, region_name=region, config=Config(**config) if config else None)


@contextmanager
def override(service: Service, substitute: T) -> Iterator[T]:
    """Every caller asking for ``service`` gets ``substitute`` until the block ends, whatever
    region, profile or config it asks with; the previous substitute (if any) comes back after."""
    if service not in SERVICES:
        raise ValueError(
            f"clients.override: unknown service {service!r}; the builder knows {', '.join(SERVICES)} "
            "(add a new service to clients.Service and its overloads first)"
        )
    with _lock:
        previous = _overrides.get(service)
        _overrides[service] = substitute
    try:
        yield substitute
    finally:
        with _lock:
            if previous is None:
                _overrides.pop(service, None)
            else:
                _overrides[service] = previous


def reset() -> None:
    """Forget every built client and session: the next call builds anew (from the environment
    as it is then). Substitutes stay in place; their ``override`` blocks own them."""
    with _lock:
        _built.clear()
        _sessions.clear()
