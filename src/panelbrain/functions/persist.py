"""Persist function: write a query's status, idempotently (the first terminal write wins)."""

import functools
from collections.abc import Callable
from typing import Any

from panelbrain.aws.blobs import fit
from panelbrain.aws.budgets import RESULT_INLINE_BYTES
from panelbrain.aws.cache import TTL_SECONDS, DynamoResultCache, ResultCache, reading_key
from panelbrain.aws.conversations import ConversationStore, DynamoConversationStore
from panelbrain.aws.failures import aws_errors
from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import Conversation, Reading, TerminalRecord
from panelbrain.observe import logged, logger

store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)
cache: Callable[[], ResultCache] = functools.cache(DynamoResultCache)
conversations: Callable[[], ConversationStore] = functools.cache(DynamoConversationStore)


@logged()
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record = TerminalRecord.model_validate(event)
    # An answer BrainPlan found in the cache carries the earlier question's plan; this query's
    # own plan (its conversation turn) travels beside the key.
    own_plan = record.result.get("plan") if record.cache_key is not None else None
    if record.cache_key is not None:
        record = _from_cache(record, record.cache_key)
    # A DynamoDB item holds at most 400 KB: a larger result goes to S3, field by field, and the
    # query item (and the cache item) keep the claim checks; readers resolve them.
    result = fit(record.result, RESULT_INLINE_BYTES, what=f"query {record.query_id}'s result")
    written = store().put_record(record.model_copy(update={"result": result}))
    synthesis = record.result.get("document") or record.result.get("synthesis")
    document = synthesis if record.status == "answered" else None
    if written and document and record.route != "cache" and isinstance(document.get("plan"), dict):
        # Answers (confident or approved) serve every question that resolves to their reading
        # until they expire. Keyed by the version the answer was computed on (the plan pinned
        # it), not the one current now: a republish while the query ran must not file old
        # numbers under new data.
        spec = load_dictionary(document["dataset"], document["plan"].get("data_version"))
        key = reading_key(document["plan"], spec)
        cache().put(key, {**result, "route": record.route}, TTL_SECONDS[spec.freshness])
    plan = own_plan if record.route == "cache" else (synthesis or {}).get("plan")
    if written and isinstance(plan, dict):
        _keep_reading(plan)
    logger.info(
        "status written" if written else "status already final",
        extra={"status": record.status, "route": record.route, "written": written},
    )
    # The reply stays in the workflow state beside the result it wrote: say what, not it again.
    return {"query_id": record.query_id, "status": record.status, "route": record.route, "written": written}


def _from_cache(record: TerminalRecord, key: str) -> TerminalRecord:
    """The answer BrainPlan found for the query's reading (stored fitted, claim checks and all)."""
    cached = cache().get(key)
    if cached is None:  # expired in the moments since BrainPlan found it
        return record.model_copy(
            update={
                "status": "failed",
                "route": "cache_expired",
                "reason": "the cached answer to this reading expired while the question ran: ask again",
            }
        )
    return record.model_copy(update={"result": cached})


def _keep_reading(plan: dict[str, Any]) -> None:
    """The planner's reading of a conversation's turn, kept with the turn (a Bedrock turn has
    none until now; an offline one gets the same reading the API resolved)."""
    if not plan.get("conversation"):
        return
    where = Conversation.model_validate(plan["conversation"])
    conversations().record_reading(
        where.conversation_id, where.turn, Reading.of(plan), plan.get("read_as", "question")
    )
