"""Persist function: write a query's status, idempotently (the first terminal write wins)."""

import functools
from collections.abc import Callable
from typing import Any

from panelbrain.aws.blobs import fit
from panelbrain.aws.budgets import RESULT_INLINE_BYTES
from panelbrain.aws.cache import TTL_SECONDS, DynamoResultCache, ResultCache, cache_key
from panelbrain.aws.failures import aws_errors
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import TerminalRecord
from panelbrain.observe import logged, logger

store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)
cache: Callable[[], ResultCache] = functools.cache(DynamoResultCache)


@logged()
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record = TerminalRecord.model_validate(event)
    # A DynamoDB item holds at most 400 KB: a larger result goes to S3, field by field, and the
    # query item (and the cache item) keep the claim checks; readers resolve them.
    result = fit(record.result, RESULT_INLINE_BYTES, what=f"query {record.query_id}'s result")
    written = store().put_record(record.model_copy(update={"result": result}))
    document = record.result.get("document") if record.status == "answered" else None
    if written and document:
        # Answers (confident or approved) serve repeats of the question until they expire.
        # Keyed by the version the answer was computed on (the plan pinned it), not the one
        # current now: a republish while the query ran must not file old numbers under new data.
        version = (document.get("plan") or {}).get("data_version")
        spec = load_dictionary(document["dataset"], version)
        key = cache_key(document["question"], spec.name, spec.data_version)
        cache().put(key, {**result, "route": record.route}, TTL_SECONDS[spec.freshness])
    logger.info(
        "status written" if written else "status already final",
        extra={"status": record.status, "route": record.route, "written": written},
    )
    # The reply stays in the workflow state beside the result it wrote: say what, not it again.
    return {"query_id": record.query_id, "status": record.status, "route": record.route, "written": written}
