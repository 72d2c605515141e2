"""Formatter function: Synthesis -> FormattedAnswer."""

from typing import Any

from panelbrain.agents import formatter
from panelbrain.models import Synthesis


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    synthesis = Synthesis.model_validate(event["synthesis"])
    return formatter.run(synthesis, float(event.get("latency_scale", 0.0))).model_dump(mode="json")
