"""X-Ray segments, for the functions whose calls are worth one: the Bedrock calls (plan, SQL
writer, synthesis) and the DuckDB query (SQL writer).

Only those functions import this module, and template.yaml gives exactly them ``Tracing:
Active``; every other function is ``PassThrough`` (Lambda passes the trace header on and records
no segment of its own). Building the Tracer imports the X-Ray SDK: 0.09 s of its own on this
machine, 0.4 s with what it pulls in where nothing has loaded botocore yet, which the API and
poller functions must not pay.

- ``@traced`` records the handler as a subsegment (Powertools' ``capture_lambda_handler``, with
  its cold-start annotation) annotated with the query id, so X-Ray finds a query's traces with
  ``annotation.query_id = "q-..."``; the response is not recorded: it holds questions and
  answers, which stay out of traces as out of INFO logs.
- botocore is patched: each Bedrock, DynamoDB and S3 call is a subsegment.
https://docs.aws.amazon.com/powertools/python/latest/core/tracer/
Outside Lambda (the local engine, tests) Powertools disables the Tracer: nothing is sent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Tracer

from panelbrain.observe import logger

F = TypeVar("F", bound=Callable[..., Any])

tracer = Tracer(patch_modules=["botocore"])


def traced(handler: F) -> F:
    """The handler as an X-Ray subsegment, annotated with its query id (set by ``@logged``)."""

    @functools.wraps(handler)
    def annotated(event: Any, context: Any) -> Any:
        query_id = logger.thread_safe_get_current_keys().get("query_id")
        if query_id:
            tracer.put_annotation(key="query_id", value=str(query_id))
        return handler(event, context)

    return tracer.capture_lambda_handler(annotated, capture_response=False)  # type: ignore[return-value]
