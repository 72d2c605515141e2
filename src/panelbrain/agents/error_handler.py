"""ErrorHandler: a failed or unconvincing run -> a terminal record that says why."""

from __future__ import annotations

import json
from typing import Any

from panelbrain.models import TerminalRecord


def _cause(error: dict[str, Any]) -> str:
    """Step Functions hands over {Error, Cause}; Cause is the Lambda error JSON, or text."""
    kind = str(error.get("Error", "Error"))
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause) if isinstance(cause, str) and cause.startswith("{") else None
    except json.JSONDecodeError:
        parsed = None
    message = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
    return f"{kind}: {message}" if message else kind


def run(
    query_id: str, error: dict[str, Any] | None = None, synthesis: dict[str, Any] | None = None
) -> TerminalRecord:
    if error is not None:
        return TerminalRecord(query_id=query_id, status="failed", route="error", reason=_cause(error))
    assert synthesis is not None
    reasons = "; ".join(synthesis.get("confidence_reasons", []))
    return TerminalRecord(
        query_id=query_id,
        status="failed",
        route="low_confidence",
        result={"synthesis": synthesis},
        reason=f"confidence {synthesis.get('confidence', 0):.2f} is below the review threshold: {reasons}",
    )
