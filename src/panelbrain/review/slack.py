"""Slack interactivity: verify that a request comes from Slack, then read the button pressed.

Slack signs each request with the app's signing secret: ``v0=`` + HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{raw body}``. A timestamp more than five minutes from now is
refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from panelbrain.errors import RefusedError
from panelbrain.review.models import ACTIONS, Action

MAX_AGE_S = 300


class SlackRequestError(RefusedError):
    """A request to the Slack endpoint that is not a valid, fresh, signed Slack request."""


@dataclass(frozen=True)
class SlackAction:
    review_id: str
    action: Action
    user_id: str
    user_name: str
    response_url: str | None


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
    except (ValueError, KeyError, IndexError, TypeError):
        raise SlackRequestError("not a Slack block_actions payload with a review button", 400) from None
    if verb not in ACTIONS or not review_id:
        raise SlackRequestError(f"unknown review action {action.get('value')!r}", 400)
    return SlackAction(
        review_id=review_id,
        action=verb,
        user_id=str(user.get("id", "")),
        user_name=str(user.get("username") or user.get("name") or ""),
        response_url=payload.get("response_url"),
    )
