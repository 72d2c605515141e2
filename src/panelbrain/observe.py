"""Structured logs for every function: one Powertools Logger, keyed by the query it works on.

Every line is one JSON object on stdout (Lambda sends stdout to CloudWatch Logs, in the
function's log group) carrying ``query_id`` (and ``review_id`` where there is one), so one
query's journey reads back across functions: ``docs/runbooks/trace-a-query.md``.

- ``@logged(...)`` wraps a handler in Powertools' ``inject_lambda_context`` (function name,
  request id, cold start) and takes the correlation ids from the event by JMESPath (the
  expression Powertools' ``correlation_id_path`` takes), before the handler runs.
- The ids are *thread-safe* keys (a context variable per thread,
  https://docs.aws.amazon.com/powertools/python/latest/core/logger/#working-with-thread-safe-keys):
  in Lambda one invocation runs at a time, but the local engine runs many handlers of one
  process side by side, each in its own thread, and a global key would label one query's lines
  with another's id. For the same reason the function's name and request id are repeated as
  thread-safe keys (they win over the global ones Powertools sets).
- Level: ``POWERTOOLS_LOG_LEVEL`` (template.yaml sets it per stage). It is read again at every
  invocation, so an engine started with another stage in the same process applies its own.
- What a user asked and what they were answered is logged at DEBUG only: never at INFO or
  above, where the deployed stages log.

Light at import: the Logger and JMESPath only (no X-Ray SDK), for the API and poller.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import jmespath_utils

F = TypeVar("F", bound=Callable[..., Any])

# Where a pipeline or review state's payload carries its query (template ASL files): at the top
# (plan, persist, error handler, review tasks), in the plan (workers, synthesis), or in the
# synthesis (formatter, start review). JMESPath's ``||`` takes the first that is there.
STATE_QUERY_ID = "query_id || plan.query_id || synthesis.query_id"
# API Gateway's proxy event: GET /queries/{query_id} and POST /reviews/{review_id}.
PATH_QUERY_ID = "pathParameters.query_id"
PATH_REVIEW_ID = "pathParameters.review_id"


class _Stdout:
    """sys.stdout as it is when a line is written, not when the Logger was built: the local
    engine gives each invocation its own stdout (see panelbrain.local.engine), as Lambda gives
    each function its own log stream."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


logger = Logger(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "panelbrain"),
    stream=_Stdout(),  # type: ignore[arg-type]  # a writable text stream is all it needs
    utc=True,
)


def _level() -> str:
    return (os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO").upper()


def correlate(**ids: object) -> None:
    """Label this invocation's later lines (thread-safe keys); ``None`` values are skipped."""
    given = {key: value for key, value in ids.items() if value}
    if given:
        logger.thread_safe_append_keys(**given)


def logged(*, query_id: str | None = STATE_QUERY_ID, review_id: str | None = None) -> Callable[[F], F]:
    """A handler decorator: Lambda context keys, and ``query_id`` / ``review_id`` taken from the
    event by the JMESPath expressions given (a handler that learns them later calls
    :func:`correlate`). An unhandled error is logged, by its type only at ERROR (its message
    may quote the input), before it leaves for Lambda's error contract."""

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            # Lambda reuses the thread between invocations: nothing of the last one carries over.
            logger.thread_safe_clear_keys()
            logger.setLevel(_level())
            found = {
                name: _search(path, event)
                for name, path in (("query_id", query_id), ("review_id", review_id))
                if path
            }
            correlate(
                function_name=getattr(context, "function_name", None),
                function_request_id=getattr(context, "aws_request_id", None),
                function_arn=getattr(context, "invoked_function_arn", None),
                **found,
            )
            try:
                return handler(event, context)
            except Exception as exc:
                logger.error("invocation failed", extra={"error_type": type(exc).__name__})
                logger.debug("invocation failed", extra={"error": str(exc)[:2000]})
                raise

        injected = logger.inject_lambda_context(run)

        @functools.wraps(handler)
        def entry(event: Any, context: Any) -> Any:
            # Lambda always passes a context; a test calling the handler directly may pass None.
            return (injected if context is not None else run)(event, context)

        return entry  # type: ignore[return-value]

    return wrap


def _search(path: str, event: Any) -> Any:
    if not isinstance(event, dict):
        return None
    value = jmespath_utils.query(data=event, envelope=path)
    return value if isinstance(value, str) else None
