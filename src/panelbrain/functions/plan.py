"""BrainPlan function: QueryInput -> Plan."""

from typing import Any

from panelbrain.agents import plan
from panelbrain.aws.budgets import PLAN_BYTES, ensure_within
from panelbrain.aws.failures import aws_errors
from panelbrain.models import QueryInput


@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = plan.run(QueryInput.model_validate(event)).model_dump(mode="json")
    # The plan travels in every state up to the synthesis (and inside it): held to its budget.
    ensure_within(result, PLAN_BYTES, "the plan")
    return result
