"""ErrorHandler: a failed or unconvincing run -> a terminal record that says why."""

from __future__ import annotations

import json
from typing import Any

from panelbrain.models import Synthesis, TerminalRecord


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
    # A verdict on the data only from a whole synthesis: a malformed one raises (pydantic), and
    # the workflow records a system failure instead of "confidence 0.00".
    checked = Synthesis.model_validate(synthesis)
    reasons = "; ".join(checked.confidence_reasons)
    return TerminalRecord(
        query_id=query_id,
        status="failed",
        route="low_confidence",
        result={"synthesis": synthesis},
        reason=f"confidence {checked.confidence:.2f} is below the review threshold: {reasons}",
    )
