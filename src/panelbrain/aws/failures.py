"""AWS failures under names the state machines' Retry rules match.

Lambda reports an exception's class name as the error type Step Functions matches Retry and
Catch on. botocore raises a throttle as ``ClientError`` (or a class named after the service's
own code: ``ProvisionedThroughputExceededException``, ``ThrottledException``, ...), names that no
Retry lists, so a throttle that outlasted botocore's own retries failed the query at once.
:func:`aws_errors` wraps a handler so that such a failure leaves it as :class:`TransientError`,
which every Task's Retry names, and a model's refusal of the state's input (pydantic's
``ValidationError``) as :class:`MalformedStateError`, which no Retry repeats and every Catch
records as a system failure; anything else passes through unchanged.

botocore is imported only when a handler has already failed: importing a handler stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from panelbrain.errors import MalformedStateError, TransientError

P = ParamSpec("P")
R = TypeVar("R")

# The codes the AWS SDKs' standard retry mode treats as throttling or transient
# (https://docs.aws.amazon.com/boto3/latest/guide/retries.html): worth another try later.
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "InternalServerError", "ServiceUnavailable"}
)
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


def as_transient(exc: BaseException) -> TransientError | None:
    """``exc`` as a TransientError if it is an AWS throttle, a 5xx or a connection failure."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        operation = exc.operation_name
        if code in THROTTLE_CODES:
            return TransientError(
                f"AWS throttled {operation} ({code}) after the SDK's retries; the workflow retries "
                "with backoff (raise the service quota if this persists)",
                operation=operation,
                code=code,
                throttled=True,
            )
        if code in TRANSIENT_CODES or status in TRANSIENT_STATUS:
            return TransientError(
                f"AWS failed {operation} ({code or status}: {error.get('Message', '')}); "
                "the workflow retries",
                operation=operation,
                code=code,
                throttled=False,
            )
        return None
    if isinstance(exc, ConnectionError | ReadTimeoutError) or (
        isinstance(exc, BotoCoreError) and "timeout" in type(exc).__name__.lower()
    ):
        return TransientError(f"AWS could not be reached ({type(exc).__name__}: {exc}); the workflow retries")
    return None


def _handler_name(handler: Callable[..., object]) -> str:
    return str(getattr(handler, "__module__", "handler")).rsplit(".", 1)[-1]


def aws_errors(handler: Callable[P, R]) -> Callable[P, R]:
    """Run ``handler``; an AWS throttle or transient failure leaves it as TransientError."""

    @functools.wraps(handler)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith("botocore"):
                transient = as_transient(exc)
                if transient is not None:
                    raise transient from exc
            if type(exc).__module__.startswith("pydantic"):
                # A model refused the state's input: the step before produced something malformed.
                raise MalformedStateError(f"{_handler_name(handler)}: its input is malformed: {exc}") from exc
            raise

    return wrapped
