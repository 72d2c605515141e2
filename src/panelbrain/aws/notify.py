"""Review notifications on AWS: e-mail through SNS, Slack through an incoming webhook.

E-mail goes one message per reviewer: each carries decision links signed for its recipient
(:func:`panelbrain.review.links.sign_for`), and a ``recipient`` message attribute. Every
subscription to the review topics must filter on that attribute (``{"recipient": ["<its
address>"]}``): SNS delivers a message to every subscription without a filter policy, and
to a filtered one only when its attributes match:
https://docs.aws.amazon.com/sns/latest/dg/message-filtering.html

Secrets (the link-signing key, the Slack webhook URL and signing secret) come from Secrets
Manager once per container and are never logged or rendered.
"""

from __future__ import annotations

import json
import os
import unicodedata
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from panelbrain.aws import clients
from panelbrain.observe import logger
from panelbrain.review import links, render
from panelbrain.review.models import Review

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef, PublishBatchRequestEntryTypeDef


@dataclass(frozen=True)
class SlackConfig:
    webhook_url: str
    signing_secret: str


class Secrets:
    """The review secrets, each read once; the client from the builder unless given."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self._client = client
        self._key: bytes | None = None
        self._slack: SlackConfig | None = None

    @property
    def client(self) -> SecretsManagerClient:
        return clients.client("secretsmanager") if self._client is None else self._client

    def signing_key(self) -> bytes:
        if self._key is None:
            arn = os.environ["REVIEW_SIGNING_SECRET_ARN"]
            self._key = self.client.get_secret_value(SecretId=arn)["SecretString"].encode()
        return self._key

    def slack(self) -> SlackConfig | None:
        """The Slack app's webhook and signing secret, or None when Slack is not configured."""
        name = os.environ.get("SLACK_SECRET_NAME", "")
        if not name:
            return None
        if self._slack is None:
            value = json.loads(self.client.get_secret_value(SecretId=name)["SecretString"])
            self._slack = SlackConfig(
                webhook_url=value["webhook_url"], signing_secret=value["signing_secret"]
            )
        return self._slack


def sns_subject(text: str) -> str:
    """SNS subjects must be ASCII, one line, under 100 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(ascii_text.split())[:99] or "panelbrain review"


def email_reviewers() -> list[str]:
    """The e-mail addresses on the reviewer allow-list (``REVIEWERS``), each once, in order."""
    seen: dict[str, None] = {}
    for entry in os.environ.get("REVIEWERS", "").split(","):
        address = entry.strip().lower()
        if "@" in address and not address.startswith("slack:"):
            seen.setdefault(address, None)
    return list(seen)


SNS_BATCH = 10  # PublishBatch takes at most ten entries


class AwsNotifier:
    """E-mail through SNS (the client from the builder unless given), Slack through its webhook."""

    def __init__(self, secrets: Secrets, client: SNSClient | None = None) -> None:
        self._client = client
        self.secrets = secrets

    @property
    def client(self) -> SNSClient:
        return clients.client("sns") if self._client is None else self._client

    def notify(
        self,
        review: Review,
        approve: str,
        reject: str,
        page: str,
        *,
        reminder: bool = False,
        minutes_left: int | None = None,
    ) -> None:
        """E-mail every reviewer on the allow-list their own links, then post to Slack.

        ``approve`` and ``reject`` are not sent: a link for everyone decides as anyone who holds
        it. Each reviewer's links are signed here for that reviewer; with no e-mail address on
        the allow-list, one message without links points to the reviewer page (sign-in)."""
        del approve, reject
        # A second-level review goes to the escalation topic, when one is configured.
        topic = os.environ.get("ESCALATION_TOPIC_ARN") if review.level > 1 else None
        subject = sns_subject(render.email_subject(review, reminder=reminder))
        base = page.rsplit("/reviews", 1)[0]
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "review_id": {"DataType": "String", "StringValue": review.review_id},
            "query_id": {"DataType": "String", "StringValue": review.query_id},
        }
        entries: list[PublishBatchRequestEntryTypeDef] = []
        key = self.secrets.signing_key() if email_reviewers() else b""
        for n, recipient in enumerate(email_reviewers()):
            signed = [
                links.url(
                    base, links.sign_for(key, review.review_id, action, int(review.expires_at), recipient)
                )
                for action in ("approve", "reject")
            ]
            body = render.email_body(
                review,
                approve_url=signed[0],
                reject_url=signed[1],
                page_url=page,
                reminder=reminder,
                minutes_left=minutes_left,
                recipient=recipient,
            )
            recipient_attribute: dict[str, MessageAttributeValueTypeDef] = {
                "recipient": {"DataType": "String", "StringValue": recipient}
            }
            entries.append(
                {
                    "Id": f"r{n}",
                    "Subject": subject,
                    "Message": body,
                    "MessageAttributes": {**attributes, **recipient_attribute},
                }
            )
        if not entries:
            body = render.email_body(
                review,
                approve_url="",
                reject_url="",
                page_url=page,
                reminder=reminder,
                minutes_left=minutes_left,
            )
            entries.append(
                {"Id": "page", "Subject": subject, "Message": body, "MessageAttributes": attributes}
            )
        for start in range(0, len(entries), SNS_BATCH):
            answer = self.client.publish_batch(
                TopicArn=topic or os.environ["REVIEW_TOPIC_ARN"],
                PublishBatchRequestEntries=entries[start : start + SNS_BATCH],
            )
            failed = answer.get("Failed") or []
            if failed:
                # Raised, so the notifying task fails and is retried: a reviewer must not go unasked.
                raise RuntimeError(
                    "SNS refused review e-mails for "
                    + ", ".join(f"{f['Id']} ({f.get('Code')}: {f.get('Message', '')})" for f in failed)
                )
        slack = self.secrets.slack()
        if slack is not None:
            message = render.slack_message(review, page_url=page, reminder=reminder)
            try:
                post_json(slack.webhook_url, message)
            except OSError as exc:
                # E-mail went out; a Slack outage must not fail (and so repeat) the notification.
                logger.error("Slack webhook failed", extra={"error": str(exc), "review_id": review.review_id})


def post_json(url: str, document: dict[str, Any], timeout_s: float = 5.0) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(document).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()
