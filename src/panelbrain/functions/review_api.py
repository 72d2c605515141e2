"""ReviewApi function: the reviewer's side of the API.

- ``GET /reviews``: the reviewer page (pending reviews with approve/reject forms, history);
- ``GET /reviews/{review_id}?action=&expires=&sig=``: a signed e-mail link opens a
  confirmation page. GET never decides, so mail scanners that follow links decide nothing;
- ``POST /reviews/{review_id}``: a form from that page or the reviewer page decides;
- ``POST /slack/interactions``: Slack's button presses, verified with the signing secret.

Light imports only (Powertools, pydantic, boto3), like the query API.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit

from panelbrain.aws.notify import post_json
from panelbrain.errors import BadInputError
from panelbrain.functions.review_common import secrets, service
from panelbrain.review import links, render, slack
from panelbrain.review.models import Review, ReviewLink

warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
REVIEW_ID = re.compile(r"rv_[A-Za-z0-9_-]{20}")
MAX_FORM_BYTES = 16 * 1024
app = APIGatewayRestResolver()
metrics = Metrics(namespace=os.environ.get("PANELBRAIN_METRICS_NAMESPACE", "panelbrain"), service="review")

_HEADERS = {
    # Pages carry answers under review: never cached, never framed, no referrer leaks.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def _html(status: int, body: str) -> Response[str]:
    return Response(status_code=status, content_type="text/html; charset=utf-8", body=body, headers=_HEADERS)


def _error_page(exc: BadInputError) -> Response[str]:
    status = int(exc.detail.get("status", 400))
    titles = {
        400: "Bad request",
        401: "Not signed",
        403: "Not allowed",
        404: "Not found",
        409: "Already decided",
        410: "No longer open",
    }
    return _html(status, render.result_page(titles.get(status, "Refused"), exc.message, ok=False))


def _form() -> dict[str, str]:
    body = app.current_event.decoded_body or ""
    if len(body) > MAX_FORM_BYTES:
        raise BadInputError(f"the form is larger than {MAX_FORM_BYTES:,} bytes", status=413)
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _observe(review: Review) -> None:
    if review.decision is not None:
        metrics.add_metric(
            name="ReviewLatency", unit=MetricUnit.Seconds, value=review.decision.at - review.created_at
        )
        metrics.add_metric(name="ReviewDecisions", unit=MetricUnit.Count, value=1)


@app.get("/reviews")
def reviewer_page() -> Response[str]:
    reviews = service()
    key = reviews.signing_key()

    def issued_here(link: ReviewLink) -> ReviewLink:
        # Signed for the page: a decision taken with it is recorded as "web".
        return links.sign(key, link.review_id, link.action, link.expires, channel="web")

    pending = [(r, issued_here(a), issued_here(b)) for r, a, b in reviews.pending()]
    # Relative form actions: right behind API Gateway's stage prefix and on localhost alike.
    page = render.reviewer_page(
        pending, reviews.history(), action_url_for=lambda rid: f"reviews/{rid}", now=time.time()
    )
    return _html(200, page)


@app.get("/reviews/<review_id>")
def confirm(review_id: str) -> Response[str]:
    reviews = service()
    event = app.current_event
    try:
        link = links.verify(
            reviews.signing_key(),
            review_id,
            event.get_query_string_value("action"),
            event.get_query_string_value("expires"),
            event.get_query_string_value("sig"),
            now=time.time(),
        )
        review = reviews.waiting(review_id)
    except BadInputError as exc:
        return _error_page(exc)
    return _html(200, render.confirm_page(review, link, action_url=review_id))


@app.post("/reviews/<review_id>")
def decide(review_id: str) -> Response[str]:
    try:
        form = _form()
        if not REVIEW_ID.fullmatch(review_id):
            raise BadInputError(f"no review {review_id!r}", status=404)
        reviews = service()
        link = links.verify(
            reviews.signing_key(),
            review_id,
            form.get("action"),
            form.get("expires"),
            form.get("sig"),
            now=time.time(),
        )
        # The audit channel is where the signed link was issued, never a field of the form.
        review = reviews.decide(
            review_id,
            link.action,
            approver=form.get("approver", ""),
            comment=form.get("comment", ""),
            channel=link.channel,
        )
    except BadInputError as exc:
        return _error_page(exc)
    _observe(review)
    assert review.decision is not None
    verdict = review.decision.decision.capitalize()
    return _html(
        200, render.result_page(verdict, f"{verdict} by {review.decision.approver}. Thank you.", ok=True)
    )


@app.post("/slack/interactions")
def slack_interaction() -> Response[dict[str, Any]]:
    event = app.current_event
    body = event.decoded_body or ""
    try:
        config = secrets().slack()
        if config is None:
            raise BadInputError("Slack is not configured for reviews", status=404)
        slack.verify(dict(event.headers or {}), body, config.signing_secret, now=time.time())
        pressed = slack.parse_action(body)
        reviews = service()
        review = reviews.decide(
            pressed.review_id,
            pressed.action,
            approver=pressed.approver(reviews.settings.allow_list),
            comment="",
            channel="slack",
        )
    except BadInputError as exc:
        # A replayed or second press is refused as on every channel: 409 says who decided.
        return Response(int(exc.detail.get("status", 400)), "application/json", {"error": exc.message})
    _observe(review)
    if pressed.response_url:
        _replace_slack_message(pressed.response_url, review, webhook_url=config.webhook_url)
    return Response(
        200,
        "application/json",
        {"ok": True, "decision": review.decision.decision if review.decision else None},
    )


def _log(level: str, message: str, **detail: Any) -> None:
    # One JSON line on stdout: CloudWatch Logs keeps it with the function's other lines.
    print(json.dumps({"level": level, "message": message, **detail}))


def _replace_slack_message(response_url: str, review: Review, *, webhook_url: str) -> None:
    """Slack ignores the body of a block_actions response: the message is replaced through the
    payload's response_url. The decision is already taken and stands whatever happens here, so
    nothing raised here may reach the caller (it would answer 502 for a decision that holds)."""
    if not slack.response_url_allowed(response_url, also=(webhook_url,)):
        _log(
            "WARNING",
            "Slack response_url refused: not on hooks.slack.com nor the configured webhook's origin",
            review_id=review.review_id,
            response_url=response_url[:200],
        )
        return
    try:
        post_json(response_url, {"replace_original": True, **render.slack_decided_message(review)})
    except Exception as exc:
        _log(
            "ERROR",
            "Slack response_url failed; the decision stands",
            review_id=review.review_id,
            error=f"{type(exc).__name__}: {exc}",
        )


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
