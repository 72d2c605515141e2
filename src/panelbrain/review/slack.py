"""Slack interactivity: verify that a request comes from Slack, then read the button pressed.

Slack signs each request with the app's signing secret: ``v0=`` + HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{raw body}``. A timestamp more than five minutes from now is
refused, so a captured request cannot be replayed later.

Who pressed is the signed payload's user id within its team id, nothing else: a username or
display name is chosen by its owner and could equal someone's e-mail entry on the allow-list.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from panelbrain.errors import RefusedError
from panelbrain.review.models import ACTIONS, Action, Principal

MAX_AGE_S = 300
# Slack's ids: users U... or W... (Enterprise Grid), workspaces T... (E... for a Grid org).
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_TEAM_ID = re.compile(r"[TE][A-Z0-9]{2,20}")
# Slack sends a response_url on hooks.slack.com ("https://hooks.slack.com/actions/T.../..."):
# https://docs.slack.dev/reference/interaction-payloads/block_actions-payload and
# https://docs.slack.dev/interactivity/handling-user-interaction (responding with response_url).
SLACK_HOOKS_HOST = "hooks.slack.com"


class SlackRequestError(RefusedError):
    """A request to the Slack endpoint that is not a valid, fresh, signed Slack request."""


@dataclass(frozen=True)
class SlackAction:
    review_id: str
    action: Action
    user_id: str
    team_id: str
    response_url: str | None

    def principal(self) -> Principal:
        """Who pressed: ``slack:<team id>/<user id>`` from the signed payload, nothing else.
        The allow-list names Slack reviewers in this form; a user id alone would let a user of
        another workspace the app is installed in decide."""
        return Principal(identity=f"slack:{self.team_id}/{self.user_id}", source="slack")


def signature(signing_secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify(headers: Mapping[str, str], body: str, signing_secret: str, *, now: float) -> None:
    """Raise :class:`SlackRequestError` unless the request is signed by Slack and recent."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-slack-request-timestamp", "")
    given = lower.get("x-slack-signature", "")
    if not timestamp or not given:
        raise SlackRequestError("missing X-Slack-Signature or X-Slack-Request-Timestamp", 401)
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        raise SlackRequestError(
            f"X-Slack-Request-Timestamp is not a number: {timestamp[:20]!r}", 401
        ) from None
    # Signature first: an unsigned caller learns nothing about the clock.
    if not hmac.compare_digest(signature(signing_secret, timestamp, body).encode(), given.encode()):
        raise SlackRequestError("X-Slack-Signature does not match the request", 401)
    if age > MAX_AGE_S:
        raise SlackRequestError(
            f"the request is {age:.0f} s old (more than {MAX_AGE_S} s): refused as a replay", 401
        )


def parse_action(body: str) -> SlackAction:
    """The button pressed in a ``block_actions`` payload (form field ``payload``, JSON)."""
    try:
        payload = json.loads(parse_qs(body, strict_parsing=False).get("payload", [""])[0])
        action = payload["actions"][0]
        verb, _, review_id = str(action["value"]).partition(":")
        user = payload["user"]
        user_id = user["id"]
        team_id = (payload.get("team") or {}).get("id") or user.get("team_id")
    except (ValueError, RecursionError, KeyError, IndexError, TypeError, AttributeError):
        raise SlackRequestError("not a Slack block_actions payload with a review button", 400) from None
    if verb not in ACTIONS or not review_id:
        raise SlackRequestError(f"unknown review action {action.get('value')!r}", 400)
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        raise SlackRequestError(f"the payload's user.id is not a Slack user id: {str(user_id)[:40]!r}", 400)
    if not isinstance(team_id, str) or not _TEAM_ID.fullmatch(team_id):
        raise SlackRequestError(f"the payload's team.id is not a Slack team id: {str(team_id)[:40]!r}", 400)
    response_url = payload.get("response_url")
    return SlackAction(
        review_id=review_id,
        action=verb,
        user_id=user_id,
        team_id=team_id,
        response_url=response_url if isinstance(response_url, str) else None,
    )


def response_url_allowed(url: str, also: Collection[str] = ()) -> bool:
    """Whether the decided message may be posted to ``url``: https on Slack's hooks host, or
    the origin (``scheme://host[:port]``) of a webhook the operator configured (``also``).

    The payload is signed, but the URL in it is still only posted to where Slack's would be:
    the endpoint must never become a way to make this function send requests elsewhere."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https" and parts.hostname == SLACK_HOOKS_HOST and port in (None, 443):
        return True
    return f"{parts.scheme}://{parts.netloc}".lower() in {_origin(o) for o in also}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
