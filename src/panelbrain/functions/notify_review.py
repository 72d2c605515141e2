"""NotifyReview function (waitForTaskToken): keep the token server-side, tell the reviewers.

The token goes into the review table under a review id; e-mail and Slack carry only links
signed with that id, an expiry and an HMAC.
"""

from typing import Any

from panelbrain.aws.failures import aws_errors
from panelbrain.functions.review_common import service
from panelbrain.observe import correlate, logged, logger


@logged()
@aws_errors  # a throttle leaves as TransientError, which the workflow's Retry names
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    review = service().open(
        query_id=event["query_id"],
        level=int(event.get("level", 1)),
        token=event["token"],
        synthesis=event["synthesis"],
        timeout_s=int(event["timeout_s"]),
        # The Task's retry count ($$.State.RetryCount): a later attempt's token wins, whatever
        # order the attempts' writes land in.
        attempt=int(event.get("attempt", 0)),
    )
    correlate(review_id=review.review_id)
    logger.info("reviewers notified", extra={"review_level": review.level, "status": review.status})
    return {"notified": review.status == "open", "review_id": review.review_id, "status": review.status}
