"""ReviewSweeper function (on a schedule): heartbeat waiting review tasks, remind, measure, and
close queries past their deadline.

Runs well inside the review task's heartbeat interval, so a review that is still open never
fails on a missed heartbeat; publishes ReviewBacklog and OldestOpenReviewAge for the alarm. It
finishes the decisions a reviewer's request claimed but did not live to record
(ReviewService.settle_claims), so the review table ends saying what the workflow was told.

Every minute it also closes, as failed with the reason, any query left unfinished past its
deadline, whatever path left it there (a start lost between claim and StartExecution, an Express
execution that timed out or failed where no Catch runs, a review that never closed), and counts
them in QueriesPastDeadline, which alarms.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from panelbrain.aws.store import DynamoQueryStore, QueryStore
from panelbrain.functions.review_common import service
from panelbrain.observe import logged, logger

warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
metrics = Metrics(namespace=os.environ.get("PANELBRAIN_METRICS_NAMESPACE", "panelbrain"), service="review")
store: Callable[[], QueryStore] = functools.cache(DynamoQueryStore)

# Closed per status per sweep: bounds the sweep's time (Timeout 50 s); the rest wait a minute.
SWEEP_LIMIT = 100
# After a review and its escalation have both timed out, the review workflow has written its
# terminal state long before this margin runs out.
REVIEW_MARGIN_S = 600


@dataclass(frozen=True)
class Deadline:
    status: str
    seconds: float
    why: str


def deadlines(environment: Mapping[str, str] | None = None) -> list[Deadline]:
    """How long a query may stay in each unfinished status (from the template's settings).

    ``environment`` is this function's environment (default: the process's); ``panelbrain ops
    stuck`` passes a deployed sweeper's, so it finds what the sweeper will close."""
    env = os.environ if environment is None else environment
    query_s = float(env.get("QUERY_DEADLINE_S", "1800"))
    margin = float(env.get("REVIEW_DEADLINE_MARGIN_S", REVIEW_MARGIN_S))
    review_s = 2 * float(env.get("REVIEW_TIMEOUT_S", "3600")) + margin
    return [
        Deadline("queued", query_s, "never started"),
        Deadline("started", query_s, "started but its pipeline never recorded an outcome"),
        Deadline("needs_review", review_s, "its review never recorded a decision or a timeout"),
    ]


def close_past_deadline(queries: QueryStore, now: float) -> list[str]:
    """Fail every query past its deadline (up to SWEEP_LIMIT per status); the ids closed."""
    closed: list[str] = []
    for deadline in deadlines():
        before = now - deadline.seconds
        for query_id in queries.past_deadline(deadline.status, before, SWEEP_LIMIT):
            reason = (
                f"deadline: {deadline.why} within {deadline.seconds:g} s "
                f"(closed by the sweeper; runbook docs/runbooks/queries-past-deadline.md)"
            )
            if queries.close_past_deadline(query_id, deadline.status, before, reason):
                closed.append(query_id)
                logger.warning(
                    "query closed past its deadline",
                    extra={"query_id": query_id, "was": deadline.status, "deadline_s": deadline.seconds},
                )
    return closed


@logged(query_id=None)  # a sweep spans queries: each line names its own
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    queries = store()
    # Deadlines first: a failing review sweep must not keep stuck queries from being closed.
    closed = close_past_deadline(queries, queries.clock())
    metrics.add_metric(name="QueriesPastDeadline", unit=MetricUnit.Count, value=len(closed))
    report = service().sweep()
    metrics.add_metric(name="ReviewBacklog", unit=MetricUnit.Count, value=report.open)
    metrics.add_metric(name="OldestOpenReviewAge", unit=MetricUnit.Seconds, value=report.oldest_age_s)
    if report.reminders:
        metrics.add_metric(name="ReviewReminders", unit=MetricUnit.Count, value=report.reminders)
    if report.settled:
        metrics.add_metric(name="ReviewClaimsSettled", unit=MetricUnit.Count, value=len(report.settled))
    if report.errors:
        # Step Functions refused or missed a heartbeat or a decision; the next sweep tries again.
        metrics.add_metric(name="ReviewCallbackErrors", unit=MetricUnit.Count, value=len(report.errors))
    logger.info(
        "sweep done",
        extra={
            "open": report.open,
            "heartbeats": report.heartbeats,
            "reminders": report.reminders,
            "closed": len(report.closed),
            "errors": len(report.errors),
            "past_deadline": len(closed),
        },
    )
    return {
        "open": report.open,
        "oldest_age_s": report.oldest_age_s,
        "heartbeats": report.heartbeats,
        "reminders": report.reminders,
        "closed": report.closed,
        "settled": report.settled,
        "errors": report.errors,
        "past_deadline": closed,
    }
