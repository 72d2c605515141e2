"""ReviewApi function: the reviewer's side of the API. Every decision has an authenticated
principal, and the route says which channel proved it.

- ``GET /reviews``: the reviewer page, for a signed-in reviewer (else off to sign in);
- ``POST /reviews/{review_id}``: decide, either from the reviewer page (a signed-in session and
  the session's CSRF token) or from an e-mail link's confirmation page (the link's signature,
  bound to its recipient: it decides as that recipient, whoever holds it);
- ``GET /reviews/{review_id}?action=&expires=&to=&sig=``: a signed e-mail link opens a
  confirmation page. GET never decides, so mail scanners that follow links decide nothing;
- ``GET /auth/callback``: managed login's redirect (authorization code + PKCE) sets the session;
- ``POST /auth/signout``: ends the session;
- ``POST /slack/interactions``: Slack's button presses, verified with the signing secret; the
  principal is the signed payload's team and user id.

Sign-in settings come from the API stage's variables (``reviewerPoolId``, ``reviewerClientId``,
``reviewerLoginDomain``, ``reviewerCallbackUrl``; ``reviewerLocalLogin`` on ``panelbrain serve``):
the user pool client names the API in its callback URL, so the function (which the API names)
cannot name the client in its environment without a cycle. API Gateway passes stage variables to
a Lambda proxy integration in ``stageVariables``:
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html

Light imports only (Powertools, pydantic, boto3; joserfc and jinja2 on first use).
"""

from __future__ import annotations

import functools
import os
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from panelbrain.aws.notify import post_json
from panelbrain.errors import BadInputError
from panelbrain.functions.review_common import secrets, service
from panelbrain.observe import PATH_REVIEW_ID, correlate, logged, logger
from panelbrain.review import auth, links, render, slack
from panelbrain.review.models import ACTIONS, Action, Channel, Principal, Review

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
_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Already decided",
    410: "No longer open",
}


def _html(
    status: int, body: str, *, headers: dict[str, str] | None = None, cookies: list[Cookie] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={**_HEADERS, **(headers or {})},
        cookies=cookies,
    )


def _error_page(exc: BadInputError, *, next_url: str | None = None, next_label: str = "") -> Response[str]:
    status = int(exc.detail.get("status", 400))
    page = render.result_page(
        _TITLES.get(status, "Refused"), exc.message, ok=False, next_url=next_url, next_label=next_label
    )
    return _html(status, page)


def _form() -> dict[str, str]:
    body = app.current_event.decoded_body or ""
    if len(body) > MAX_FORM_BYTES:
        raise BadInputError(f"the form is larger than {MAX_FORM_BYTES:,} bytes", status=413)
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _received(review_id: str, action: str, channel: str) -> None:
    """Say a decision arrived, under its query, before deciding tells the workflow (whose next
    states then log after it, in the order they happened)."""
    known = service().store.get(review_id)
    correlate(query_id=known.query_id if known else None, review_id=review_id)
    logger.info("review decision received", extra={"action": action, "channel": channel})


def _observe(review: Review) -> None:
    correlate(query_id=review.query_id, review_id=review.review_id)
    if review.decision is not None:
        # Who decided is in the review table's audit record; the log says what and how.
        logger.info(
            "review decided",
            extra={
                "decision": review.decision.decision,
                "channel": review.decision.channel,
                "review_level": review.level,
            },
        )
        metrics.add_metric(
            name="ReviewLatency", unit=MetricUnit.Seconds, value=review.decision.at - review.created_at
        )
        metrics.add_metric(name="ReviewDecisions", unit=MetricUnit.Count, value=1)


# -- sign-in -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignInSettings:
    pool_id: str
    client_id: str
    login_domain: str  # managed login, https://<prefix>.auth.<region>.amazoncognito.com
    callback_url: str  # this API's /auth/callback, as the app client lists it
    local_login: str  # panelbrain serve's own sign-in page, instead of managed login

    @classmethod
    def from_stage(cls) -> SignInSettings:
        given = app.current_event.stage_variables or {}
        settings = cls(
            pool_id=given.get("reviewerPoolId", ""),
            client_id=given.get("reviewerClientId", ""),
            login_domain=given.get("reviewerLoginDomain", ""),
            callback_url=given.get("reviewerCallbackUrl", ""),
            local_login=given.get("reviewerLocalLogin", ""),
        )
        if not settings.pool_id or not settings.client_id:
            raise auth.AuthError(
                "reviewer sign-in is not configured: the API stage has no reviewerPoolId and "
                "reviewerClientId variables (template.yaml sets them on QueryApi)",
                503,
            )
        return settings


@functools.cache
def _verifier(pool_id: str, client_id: str) -> auth.TokenVerifier:
    """One per container and pool: its keys are fetched once and kept."""
    return auth.TokenVerifier.for_pool(
        pool_id, client_id, jwks_url=os.environ.get("REVIEWER_JWKS_URL") or None
    )


def _secure() -> bool:
    # API Gateway always sets X-Forwarded-Proto (https); the local server says http.
    return (app.current_event.headers.get("x-forwarded-proto") or "https").lower() == "https"


def _cookie(name: str, value: str, max_age: int) -> Cookie:
    return Cookie(
        name=name,
        value=value,
        path="/",
        secure=_secure(),
        http_only=True,
        max_age=max_age,
        same_site=SameSite.LAX_MODE,
    )


def _session(settings: SignInSettings) -> tuple[str, Principal]:
    """The session's token and who it proves; :class:`auth.AuthError` (401) if there is none."""
    token = auth.cookies(app.current_event.headers.get("cookie")).get(auth.SESSION_COOKIE)
    if not token:
        raise auth.AuthError("sign in to review: this request carries no session", 401)
    claims = _verifier(settings.pool_id, settings.client_id).verify(token)
    return token, auth.principal(claims)


def _to_sign_in(settings: SignInSettings, reason: str) -> Response[str]:
    """Off to sign in: managed login (with a fresh state and PKCE verifier in a short-lived
    cookie), or the local sign-in page."""
    if settings.local_login:
        page = render.result_page(
            "Sign in to review", reason, ok=False, next_url=settings.local_login, next_label="Sign in"
        )
        return _html(303, page, headers={"Location": settings.local_login})
    if not settings.login_domain or not settings.callback_url:
        raise auth.AuthError("reviewer sign-in has no managed login domain or callback URL configured", 503)
    sign_in = auth.SignIn.new()
    target = auth.authorize_url(settings.login_domain, settings.client_id, settings.callback_url, sign_in)
    page = render.result_page("Sign in to review", reason, ok=False, next_url=target, next_label="Sign in")
    return _html(
        302,
        page,
        headers={"Location": target},
        cookies=[_cookie(auth.SIGNIN_COOKIE, sign_in.cookie_value(), auth.SIGNIN_COOKIE_MAX_AGE_S)],
    )


@app.get("/auth/callback")
def sign_in_callback() -> Response[str]:
    event = app.current_event
    try:
        settings = SignInSettings.from_stage()
        sign_in = auth.SignIn.from_cookie(auth.cookies(event.headers.get("cookie")).get(auth.SIGNIN_COOKIE))
        state, code = event.get_query_string_value("state"), event.get_query_string_value("code")
        # The state ties this callback to a sign-in this browser started (login CSRF).
        if sign_in is None or not state or not code or state != sign_in.state:
            raise auth.AuthError("this sign-in was not started here, or took too long: sign in again", 401)
        token = auth.exchange_code(
            settings.login_domain, settings.client_id, code, settings.callback_url, sign_in
        )
        claims = _verifier(settings.pool_id, settings.client_id).verify(token)
        who = auth.principal(claims)
    except BadInputError as exc:
        return _error_page(exc, next_url="../reviews", next_label="Back to the reviewer page")
    max_age = max(0, int(float(claims["exp"]) - time.time()))
    page = render.result_page(
        "Signed in", f"Signed in as {who.identity}.", ok=True, next_url="../reviews", next_label="Reviews"
    )
    return _html(
        303,
        page,
        headers={"Location": "../reviews"},
        cookies=[_cookie(auth.SESSION_COOKIE, token, max_age), _cookie(auth.SIGNIN_COOKIE, "", 0)],
    )


@app.post("/auth/signout")
def sign_out() -> Response[str]:
    try:
        settings = SignInSettings.from_stage()
        token, _ = _session(settings)
        auth.check_csrf(service().signing_key(), token, _form().get("csrf"))
    except BadInputError as exc:
        return _error_page(exc)
    page = render.result_page(
        "Signed out",
        "You are signed out of the reviewer page.",
        ok=True,
        next_url="../reviews",
        next_label="Sign in again",
    )
    return _html(200, page, cookies=[_cookie(auth.SESSION_COOKIE, "", 0)])


# -- the reviewer page and decisions ------------------------------------------------------------


@app.get("/reviews")
def reviewer_page() -> Response[str]:
    try:
        settings = SignInSettings.from_stage()
        try:
            token, who = _session(settings)
        except auth.AuthError as exc:
            if exc.status != 401:
                raise
            return _to_sign_in(settings, exc.message)
        reviews = service()
        page = render.reviewer_page(
            [review for review, _, _ in reviews.pending()],
            reviews.history(),
            # Relative form actions: right behind API Gateway's stage prefix and on localhost alike.
            action_url_for=lambda rid: f"reviews/{rid}",
            csrf=auth.csrf_token(reviews.signing_key(), token),
            signed_in_as=who.identity,
            signout_url="auth/signout",
            now=time.time(),
        )
    except BadInputError as exc:
        return _error_page(exc)
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
            event.get_query_string_value("to"),
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
        if "sig" in form:
            # From an e-mail link's confirmation page: the link decides as its recipient.
            link = links.verify(
                reviews.signing_key(),
                review_id,
                form.get("action"),
                form.get("expires"),
                form.get("to"),
                form.get("sig"),
                now=time.time(),
            )
            action: Action = link.action
            principal = link.principal()
            channel: Channel = "email"
        else:
            # From the reviewer page: the signed-in reviewer, and this session's form token.
            token, principal = _session(SignInSettings.from_stage())
            auth.check_csrf(reviews.signing_key(), token, form.get("csrf"))
            given = form.get("action", "")
            if given not in ACTIONS:
                raise BadInputError(
                    f"the form's action must be approve or reject, got {given[:20]!r}", status=400
                )
            action, channel = given, "web"
        _received(review_id, action, channel)
        # The audit channel is the route's, never a field of the form.
        review = reviews.decide(
            review_id,
            action,
            principal=principal,
            comment=form.get("comment", ""),
            channel=channel,
        )
    except BadInputError as exc:
        return _error_page(exc)
    _observe(review)
    assert review.decision is not None
    verdict = review.decision.decision.capitalize()
    how = " (the reviewer this e-mail link was sent to)" if principal.source == "email_link" else ""
    return _html(
        200,
        render.result_page(verdict, f"{verdict} as {review.decision.approver}{how}. Thank you.", ok=True),
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
        _received(pressed.review_id, pressed.action, "slack")
        review = reviews.decide(
            pressed.review_id,
            pressed.action,
            principal=pressed.principal(),
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


def _replace_slack_message(response_url: str, review: Review, *, webhook_url: str) -> None:
    """Slack ignores the body of a block_actions response: the message is replaced through the
    payload's response_url. The decision is already taken and stands whatever happens here, so
    nothing raised here may reach the caller (it would answer 502 for a decision that holds)."""
    if not slack.response_url_allowed(response_url, also=(webhook_url,)):
        logger.warning(
            "Slack response_url refused: not on hooks.slack.com nor the configured webhook's origin",
            extra={"review_id": review.review_id, "response_url": response_url[:200]},
        )
        return
    try:
        post_json(response_url, {"replace_original": True, **render.slack_decided_message(review)})
    except Exception as exc:
        logger.error(
            "Slack response_url failed; the decision stands",
            extra={"review_id": review.review_id, "error": f"{type(exc).__name__}: {exc}"},
        )


@logged(query_id=None, review_id=PATH_REVIEW_ID)  # the query: once the review is read
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
