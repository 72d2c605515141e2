"""Signed decision links, each bound to the one reviewer it was sent to.

A link names a review, an action, an expiry and its recipient's address, bound by an
HMAC-SHA256. It never carries the Step Functions task token (the token stays in the review
table). The signature covers all four, so a link cannot be edited into another action, given a
longer life, or made to decide as someone else without the key: a forwarded link still decides
as the reviewer it was sent to, and the audit record names that reviewer and the e-mail channel.

Links are only ever sent by e-mail, one message per reviewer (:mod:`panelbrain.aws.notify`).
The reviewer page carries no signed link: deciding there takes a signed-in session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from panelbrain.errors import RefusedError
from panelbrain.review.models import ACTIONS, Action, Principal, ReviewLink

# One address, no whitespace or control characters: the recipient is a line of the signed
# message, so it must not be able to end that line.
_RECIPIENT = re.compile(r"[^\s@]{1,64}@[^\s@]{1,255}")


class LinkError(RefusedError):
    """A decision link that cannot be honoured; ``status`` is the HTTP status to answer with."""


@dataclass(frozen=True)
class RecipientLink:
    """A decision link signed for one recipient."""

    review_id: str
    action: Action
    expires: int
    recipient: str
    signature: str

    def principal(self) -> Principal:
        """Who decides with this link: its recipient, whoever holds it."""
        return Principal(identity=self.recipient, source="email_link")


def _mac(key: bytes, review_id: str, action: str, expires: int, recipient: str) -> str:
    # "v2": a message shape of its own, so no signature made for the old recipient-less links
    # (which anyone holding one could use as anyone) verifies as one of these.
    message = f"panelbrain-review-v2\n{review_id}\n{action}\n{expires}\n{recipient}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_for(key: bytes, review_id: str, action: Action, expires: int, recipient: str) -> RecipientLink:
    """A link that decides as ``recipient`` (an e-mail address, compared lower case)."""
    who = recipient.strip().lower()
    if not _RECIPIENT.fullmatch(who):
        raise ValueError(f"a decision link is signed for one e-mail address, got {recipient!r}")
    return RecipientLink(review_id, action, expires, who, _mac(key, review_id, action, expires, who))


def sign(key: bytes, review_id: str, action: Action, expires: int) -> ReviewLink:
    """A recipient-less link, as the review service still asks for one to hand the notifier.

    :func:`verify` refuses every such link; the notifier signs one per reviewer instead
    (:func:`sign_for`). Its signature is a random-looking value bound to nothing useful."""
    mac = hmac.new(key, f"panelbrain-unbound\n{review_id}\n{action}\n{expires}".encode(), hashlib.sha256)
    return ReviewLink(
        review_id=review_id,
        action=action,
        expires=expires,
        signature=base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode(),
    )


def url(base_url: str, link: RecipientLink | ReviewLink) -> str:
    """The link a reviewer clicks: it opens a confirmation page (GET never decides)."""
    fields: dict[str, str | int] = {"action": link.action, "expires": link.expires}
    if isinstance(link, RecipientLink):
        fields["to"] = link.recipient
    fields["sig"] = link.signature
    return f"{base_url.rstrip('/')}/reviews/{link.review_id}?{urlencode(fields)}"


def verify(
    key: bytes,
    review_id: str,
    action: str | None,
    expires: str | None,
    recipient: str | None,
    signature: str | None,
    *,
    now: float,
) -> RecipientLink:
    """The link's parts if its signature holds for its recipient and it is live; else
    :class:`LinkError`.

    The signature is checked before the expiry, so a forged link is told it is forged whatever
    expiry it claims; both checks come before anything reads or changes the review."""
    if action not in ACTIONS:
        raise LinkError(f"the link's action must be approve or reject, got {action!r}", 400)
    try:
        expiry = int(expires or "")
    except ValueError:
        raise LinkError(
            f"the link's expiry must be a whole number of seconds, got {expires!r}", 400
        ) from None
    who = (recipient or "").strip().lower()
    if not who:
        raise LinkError(
            "the link names no recipient: it was issued before links were bound to their "
            "reviewer. Sign in to the reviewer page to decide",
            403,
        )
    if (
        not signature
        or not _RECIPIENT.fullmatch(who)
        or not hmac.compare_digest(_mac(key, review_id, action, expiry, who).encode(), signature.encode())
    ):
        raise LinkError(
            "the link's signature does not match: it was altered, or not issued by panelbrain "
            "to this recipient",
            403,
        )
    if now > expiry:
        raise LinkError("the link has expired; sign in to the reviewer page to decide", 410)
    return RecipientLink(review_id, action, expiry, who, signature)
