"""Persist function: write a query's status, idempotently (the first terminal write wins)."""

import functools
from collections.abc import Callable
from typing import Any

from panelbrain.aws.cache import TTL_SECONDS, DynamoResultCache, ResultCache, cache_key
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import TerminalRecord

store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)
cache: Callable[[], ResultCache] = functools.cache(DynamoResultCache)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record = TerminalRecord.model_validate(event)
    written = store().put_record(record)
    document = record.result.get("document") if record.status == "answered" else None
    if written and document:
        # Answers (confident or approved) serve repeats of the question until they expire.
        spec = load_dictionary(document["dataset"])
        key = cache_key(document["question"], spec.name, spec.data_version)
        cache().put(key, {**record.result, "route": record.route}, TTL_SECONDS[spec.freshness])
    return {**record.model_dump(mode="json"), "written": written}
