"""BrainPlan function: QueryInput -> Plan."""

from typing import Any

from panelbrain.agents import plan
from panelbrain.models import QueryInput


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return plan.run(QueryInput.model_validate(event)).model_dump(mode="json")
