"""BrainPlan function: QueryInput -> Plan."""

from typing import Any

from panelbrain.agents import plan
from panelbrain.aws.budgets import PLAN_BYTES, ensure_within
from panelbrain.aws.failures import aws_errors
from panelbrain.models import QueryInput
from panelbrain.observe import logged, logger
from panelbrain.tracing import traced


@logged()
@traced
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    made = plan.run(QueryInput.model_validate(event))
    result = made.model_dump(mode="json")
    logger.info(
        "plan made",
        extra={
            "intent": made.intent,
            "workers": sorted(w for w, needed in made.needs.items() if needed),
            "provider": made.provider,
            "confidence": made.confidence,
        },
    )
    # The plan travels in every state up to the synthesis (and inside it): held to its budget.
    ensure_within(result, PLAN_BYTES, "the plan")
    return result
