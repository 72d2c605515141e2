"""Signed decision links: a review id, an action and an expiry, bound by an HMAC-SHA256.

A link never carries the Step Functions task token: the token stays in the review table and the
link only names the review. The signature covers the id, the action and the expiry, so a link
for "approve" cannot be edited into "reject", nor its life extended, without the key.

The signature also binds where the link was issued (an e-mail, or the reviewer page), so the
decision's audit channel is the issuer's, never a field the client may edit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal
from urllib.parse import urlencode

from panelbrain.errors import RefusedError
from panelbrain.review.models import ACTIONS, Action, ReviewLink


class LinkError(RefusedError):
    """A decision link that cannot be honoured; ``status`` is the HTTP status to answer with."""


LinkChannel = Literal["email", "web"]
CHANNELS: tuple[LinkChannel, ...] = ("email", "web")


def _mac(key: bytes, review_id: str, action: str, expires: int, channel: LinkChannel = "email") -> str:
    # E-mail links keep the message they were first signed with: links already sent stay valid.
    suffix = "" if channel == "email" else f"\n{channel}"
    message = f"panelbrain-review\n{review_id}\n{action}\n{expires}{suffix}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(
    key: bytes, review_id: str, action: Action, expires: int, channel: LinkChannel = "email"
) -> ReviewLink:
    return ReviewLink(
        review_id=review_id,
        action=action,
        expires=expires,
        signature=_mac(key, review_id, action, expires, channel),
        channel=channel,
    )


def url(base_url: str, link: ReviewLink) -> str:
    """The link a reviewer clicks: it opens a confirmation page (GET never decides)."""
    query = urlencode({"action": link.action, "expires": link.expires, "sig": link.signature})
    return f"{base_url.rstrip('/')}/reviews/{link.review_id}?{query}"


def verify(
    key: bytes, review_id: str, action: str | None, expires: str | None, signature: str | None, *, now: float
) -> ReviewLink:
    """The link's parts if the signature holds and the link is live; :class:`LinkError` if not.

    The signature is checked before the expiry, so a forged link is told it is forged whatever
    expiry it claims; both checks come before anything reads or changes the review.
    """
    if action not in ACTIONS:
        raise LinkError(f"the link's action must be approve or reject, got {action!r}", 400)
    try:
        expiry = int(expires or "")
    except ValueError:
        raise LinkError(
            f"the link's expiry must be a whole number of seconds, got {expires!r}", 400
        ) from None
    issued = [
        channel
        for channel in CHANNELS
        if signature
        and hmac.compare_digest(_mac(key, review_id, action, expiry, channel).encode(), signature.encode())
    ]
    if not signature or not issued:
        raise LinkError(
            "the link's signature does not match: it was altered or not issued by panelbrain", 403
        )
    if now > expiry:
        raise LinkError("the link has expired; open the reviewer page for a fresh one", 410)
    return ReviewLink(
        review_id=review_id, action=action, expires=expiry, signature=signature, channel=issued[0]
    )
