"""ReviewSweeper function (on a schedule): heartbeat waiting review tasks, remind, measure.

Runs well inside the review task's heartbeat interval, so a review that is still open never
fails on a missed heartbeat; publishes ReviewBacklog and OldestOpenReviewAge for the alarm.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from panelbrain.functions.review_common import service

warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
metrics = Metrics(namespace=os.environ.get("PANELBRAIN_METRICS_NAMESPACE", "panelbrain"), service="review")


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = service().sweep()
    metrics.add_metric(name="ReviewBacklog", unit=MetricUnit.Count, value=report.open)
    metrics.add_metric(name="OldestOpenReviewAge", unit=MetricUnit.Seconds, value=report.oldest_age_s)
    if report.reminders:
        metrics.add_metric(name="ReviewReminders", unit=MetricUnit.Count, value=report.reminders)
    return {
        "open": report.open,
        "oldest_age_s": report.oldest_age_s,
        "heartbeats": report.heartbeats,
        "reminders": report.reminders,
        "closed": report.closed,
    }
