"""CloseReview function: the review task timed out; close the review so its links stop working."""

from typing import Any

from panelbrain.aws.failures import aws_errors
from panelbrain.functions.review_common import service
from panelbrain.observe import correlate, logged, logger


@logged()
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    level = int(event.get("level", 1))
    review = service().close(
        event["query_id"], level, f"no decision before the level-{level} review timed out"
    )
    correlate(review_id=review.review_id if review else None)
    logger.info(
        "review closed on timeout", extra={"review_level": level, "status": review.status if review else None}
    )
    return {
        "review_id": review.review_id if review else None,
        "status": review.status if review else None,
        "level": level,
    }
