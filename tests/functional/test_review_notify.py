"""Review e-mail goes one message per reviewer, each with links only its recipient's decide as,
and a subscription filtered on its recipient receives only its own (SNS on moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from panelbrain.aws.notify import AwsNotifier, Secrets, SlackConfig
from panelbrain.review import links
from panelbrain.review.models import Review
from tests.unit.review_fakes import a_review

KEY = b"k" * 32
NOW = 1_800_000_000.0


class FixedSecrets(Secrets):
    def signing_key(self) -> bytes:
        return KEY

    def slack(self) -> SlackConfig | None:
        return None


def review() -> Review:
    return a_review("rv_AAAAAAAAAAAAAAAAAAAA", at=NOW)


@pytest.fixture
def sns(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="ReviewTopic")["TopicArn"]
        monkeypatch.setenv("REVIEW_TOPIC_ARN", topic)
        yield sns, sqs, topic


def inbox(sns: Any, sqs: Any, topic: str, name: str, filter_policy: dict[str, Any] | None) -> str:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return str(url)


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def test_each_reviewer_receives_only_links_signed_for_them(
    sns: tuple[Any, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, sqs, topic = sns
    monkeypatch.setenv(
        "REVIEWERS", "Alice@Example.com, bob@example.com, slack:T0TEAM/U0ALICE, alice@example.com"
    )
    # As template.yaml subscribes ReviewEmail: a filter on its own address, any case. (moto 5.2.5
    # lower-cases only the message's value under equals-ignore-case, AWS both: the policy here
    # is lower case so the emulator agrees.)
    alice = inbox(client, sqs, topic, "alice", {"recipient": [{"equals-ignore-case": "alice@example.com"}]})
    bob = inbox(client, sqs, topic, "bob", {"recipient": ["bob@example.com"]})

    AwsNotifier(FixedSecrets(), client=client).notify(
        review(), "unbound-approve", "unbound-reject", "https://api.example.com/dev/reviews"
    )

    for url, who in ((alice, "alice@example.com"), (bob, "bob@example.com")):
        (message,) = received(sqs, url)  # one e-mail each, its own, though alice is listed twice
        assert message["MessageAttributes"]["recipient"]["Value"] == who
        body = message["Message"]
        assert "unbound-" not in body  # the recipient-less links the service offers are not sent
        found = [
            line for line in body.splitlines() if line.startswith("https://api.example.com/dev/reviews/")
        ]
        assert len(found) == 2
        for line in found:
            query = {k: v[0] for k, v in parse_qs(urlsplit(line).query).items()}
            assert query["to"] == who
            link = links.verify(
                KEY,
                "rv_AAAAAAAAAAAAAAAAAAAA",
                query["action"],
                query["expires"],
                query["to"],
                query["sig"],
                now=NOW,
            )
            assert link.principal().identity == who


def test_without_an_e_mail_reviewer_one_message_points_to_the_page(
    sns: tuple[Any, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, sqs, topic = sns
    monkeypatch.setenv("REVIEWERS", "slack:T0TEAM/U0ALICE")
    everything = inbox(client, sqs, topic, "all", None)
    AwsNotifier(FixedSecrets(), client=client).notify(
        review(), "a", "b", "https://api.example.com/dev/reviews"
    )
    (message,) = received(sqs, everything)
    assert "recipient" not in message.get("MessageAttributes", {})
    assert (
        "sig=" not in message["Message"] and "Sign in to the reviewer page to decide." in message["Message"]
    )
