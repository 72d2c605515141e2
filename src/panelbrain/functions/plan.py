"""BrainPlan function: QueryInput -> Plan.

A reading only the brain could resolve surely was not looked up in the result cache by the API
(it keys on the offline planner's reading): it is looked up here, once planned, and a hit ends
the workflow with that answer (docs/adr/0027-conversations.md).
"""

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from panelbrain.agents import plan
from panelbrain.aws.budgets import PLAN_BYTES, ensure_within
from panelbrain.aws.cache import DynamoResultCache, ResultCache, reading_key
from panelbrain.aws.failures import aws_errors
from panelbrain.data.dictionary import load_dictionary
from panelbrain.models import Plan, QueryInput
from panelbrain.observe import logged, logger
from panelbrain.tracing import traced

cache: Callable[[], ResultCache] = functools.cache(DynamoResultCache)


def answered_before(made: Plan) -> Plan:
    """The plan, with the cache key of an earlier answer to its reading if there is one. Only
    the brain's sure readings: an offline reading is the one the API already looked up."""
    threshold = float(os.environ.get("ANSWER_CONFIDENCE_THRESHOLD", "0.8"))
    if made.provider != "bedrock" or made.confidence < threshold:
        return made
    key = reading_key(made.model_dump(mode="json"), load_dictionary(made.dataset))
    hit = cache().get(key) is not None
    with single_metric(
        name="ResultCacheHit" if hit else "ResultCacheMiss",
        unit=MetricUnit.Count,
        value=1,
        namespace=os.environ.get("PANELBRAIN_METRICS_NAMESPACE", "panelbrain"),
        default_dimensions={"service": "pipeline"},
    ) as metric:
        metric.add_dimension(name="route", value="BrainPlan")
    return made.model_copy(update={"cache_key": key}) if hit else made


@logged()
@traced
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    made = answered_before(plan.run(QueryInput.model_validate(event)))
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
