"""Persist function: write a query's status, idempotently (the first terminal write wins)."""

from typing import Any

from panelbrain.aws.cache import TTL_SECONDS, DynamoResultCache, ResultCache, cache_key
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import TerminalRecord

_store: QueryStore | None = None
_cache: ResultCache | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _store, _cache
    _store = _store or DynamoQueryStore()
    record = TerminalRecord.model_validate(event)
    written = _store.put_record(record)
    document = record.result.get("document") if record.status == "answered" else None
    if written and document:
        # Answers (confident or approved) serve repeats of the question until they expire.
        _cache = _cache or DynamoResultCache()
        spec = load_dictionary(document["dataset"])
        key = cache_key(document["question"], spec.name, spec.data_version)
        _cache.put(key, {**record.result, "route": record.route}, TTL_SECONDS[spec.freshness])
    return {**record.model_dump(mode="json"), "written": written}
