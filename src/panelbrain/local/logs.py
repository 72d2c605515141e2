"""One query's journey, read back from the local engine's logs.

The engine keeps what CloudWatch Logs would hold (:attr:`LocalEngine.logs`): every function's
JSON lines (log group ``/aws/lambda/<function>``) and every logging state machine's execution
events, and appends them to a session file, one JSON record a line. ``panelbrain ask`` and
``panelbrain serve`` write to :func:`session_log_file`; ``panelbrain logs QUERY_ID`` reads it,
from another terminal while ``serve`` runs, or after.

A record belongs to a query when a function's line carries its ``query_id`` (Powertools
Logger, :mod:`panelbrain.observe`) or a state machine event belongs to the execution named by
it (both workflows name executions by query id). The same filter, on AWS, is the CloudWatch
Logs Insights query in ``docs/runbooks/trace-a-query.md``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError

QUERY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Keys every Powertools line carries: left out of the one-line summary (``--json`` has them).
_STANDARD_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "sampling_rate",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "query_id",
    }
)


def session_log_file() -> Path:
    """Where this folder's local session logs go: ``$PANELBRAIN_STATE_DIR/logs.jsonl``, by
    default under ``.panelbrain/`` (beside ``.aws-sam/``, the other local build state)."""
    return Path(os.environ.get("PANELBRAIN_STATE_DIR") or ".panelbrain") / "logs.jsonl"


def belongs_to(record: dict[str, Any], query_id: str) -> bool:
    message = record.get("message")
    if isinstance(message, dict) and message.get("query_id") == query_id:
        return True
    return str(record.get("execution_arn", "")).endswith(f":{query_id}")


def journey(records: Iterable[dict[str, Any]], query_id: str) -> list[dict[str, Any]]:
    """The records of ``query_id`` in the order they happened (the order written breaks ties)."""
    mine = [(str(r.get("timestamp", "")), n, r) for n, r in enumerate(records) if belongs_to(r, query_id)]
    return [r for _, _, r in sorted(mine, key=lambda item: (item[0], item[1]))]


def read_journey(path: Path, query_id: str) -> list[dict[str, Any]]:
    """``query_id``'s records in the session file at ``path``; :class:`BadInputError` naming the
    file when it does not exist or holds nothing of the query."""
    if not QUERY_ID.fullmatch(query_id):
        raise BadInputError(f"QUERY_ID must be a query id such as q-0123456789abcdef, got {query_id[:80]!r}")
    if not path.is_file():
        raise BadInputError(
            f"no local logs at {path}: ask a question with `panelbrain ask` or `panelbrain serve` "
            "from this folder first (or set PANELBRAIN_STATE_DIR to where they ran)"
        )
    with path.open(encoding="utf-8") as lines:
        found = journey(_records(lines), query_id)
    if not found:
        raise BadInputError(f"no log lines for query {query_id} in {path}")
    return found


def _records(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a session that was killed mid-write
        if isinstance(record, dict):
            yield record


# Execution events worth a line of their own; the rest (scheduled, started, exited...) are in
# ``--json``.
_SHOWN_EVENTS = re.compile(r"^Execution|StateEntered$|Failed$|TimedOut$|Aborted$")


def summary(record: dict[str, Any]) -> str | None:
    """One line for a person, or None for an execution event the summary leaves out."""
    stamp = str(record.get("timestamp", ""))[11:23]
    source = str(record.get("source", "?"))
    message = record.get("message")
    if "execution_arn" in record:
        event = str((message or {}).get("type", "?")) if isinstance(message, dict) else "?"
        if not _SHOWN_EVENTS.search(event):
            return None
        details = (message or {}).get("details") or {}
        what = " ".join(
            str(details[key])
            for key in ("name", "error", "cause")
            if isinstance(details, dict) and details.get(key)
        )
        return f"{stamp}  {source:<26}  {event:<24}  {what}".rstrip()
    if not isinstance(message, dict):
        return f"{stamp}  {source:<26}  {'':<24}  {str(message)[:200]}"
    extra = " ".join(f"{k}={_short(v)}" for k, v in message.items() if k not in _STANDARD_KEYS)
    level = str(message.get("level", ""))
    return f"{stamp}  {source:<26}  {level:<24}  {message.get('message', '')}  {extra}".rstrip()


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
