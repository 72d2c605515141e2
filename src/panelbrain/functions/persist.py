"""Persist function: write a query's status, idempotently (the first terminal write wins)."""

from typing import Any

from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.models import TerminalRecord

_store: QueryStore | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _store
    _store = _store or DynamoQueryStore()
    record = TerminalRecord.model_validate(event)
    written = _store.put_record(record)
    return {**record.model_dump(mode="json"), "written": written}
