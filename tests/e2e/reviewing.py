"""What the review tests share: a local server with reviewers, and captures of what reviewers get.

E-mail: an SQS queue subscribed to each review topic receives what SNS sends subscribers.
Slack: a small HTTP server stands in for the incoming webhook and keeps every message posted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from panelbrain.local.engine import LocalEngine
from panelbrain.local.server import LocalServer

AMBIGUOUS = "What share of people in QC strongly support a ban"  # "strongly" is unplaced: review (0.75)
# Slack reviewers by team and user id: U0ALICE and U0BOB of workspace T0TEAM.
REVIEWERS = "alice@example.com,bob@example.com,slack:T0TEAM/U0ALICE,slack:T0TEAM/U0BOB"
SLACK_SECRET = "panelbrain/slack"
SLACK_SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackHttp:
    """``handler`` served on a free loopback port on a daemon thread, until ``close``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SlackHook:
    """An incoming-webhook stand-in on localhost."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        hook = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hook.messages.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = LoopbackHttp(Handler)

    @property
    def url(self) -> str:
        return f"{self.server.base}/hook"

    def close(self) -> None:
        self.server.close()


@dataclass
class Reviewing:
    engine: LocalEngine
    server: LocalServer
    slack: SlackHook
    inbox_urls: dict[str, str]  # topic logical id -> capture queue URL
    mail: list[dict[str, Any]] = field(default_factory=list)

    def emails(self, topic: str = "ReviewTopic") -> list[dict[str, Any]]:
        """Every e-mail published to ``topic`` so far: {"subject", "body", "attributes"}."""
        sqs = self.engine.clients["sqs"]
        while True:
            got = sqs.receive_message(QueueUrl=self.inbox_urls[topic], MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not got:
                break
            for message in got:
                envelope = json.loads(message["Body"])
                self.mail.append(
                    {
                        "topic": topic,
                        "subject": envelope.get("Subject"),
                        "body": envelope["Message"],
                        "attributes": {
                            k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()
                        },
                    }
                )
                sqs.delete_message(QueueUrl=self.inbox_urls[topic], ReceiptHandle=message["ReceiptHandle"])
        return [m for m in self.mail if m["topic"] == topic]

    def email_for(
        self,
        query_id: str,
        topic: str = "ReviewTopic",
        *,
        recipient: str = "alice@example.com",
        timeout_s: float = 20,
    ) -> dict[str, Any]:
        """The (first, not a reminder) e-mail about ``query_id`` addressed to ``recipient``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for mail in self.emails(topic):
                attributes = mail["attributes"]
                if (
                    attributes.get("query_id") == query_id
                    and attributes.get("recipient") == recipient
                    and not mail["subject"].startswith("Reminder")
                ):
                    return mail
            time.sleep(0.05)
        raise AssertionError(f"no e-mail for {query_id} on {topic}")

    def session(self, who: str) -> dict[str, str]:
        """The Cookie header of a browser signed in as ``who`` on the local /login page."""
        sign_in = self.server.sign_in
        return {"Cookie": f"pb_session={sign_in.sign_in(who, sign_in.passwords[who])}"}

    def slack_for(self, review_id: str, *, timeout_s: float = 10) -> dict[str, Any]:
        """The first Slack message about ``review_id`` (it is posted just after the e-mail)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in list(self.slack.messages):
                if review_id in json.dumps(message):
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no Slack message for {review_id}")


REVIEW_TIMINGS = {"ReviewTimeoutSeconds", "ReviewHeartbeatSeconds", "ReviewReminderSeconds"}


@contextlib.contextmanager
def reviewing(
    parameters: dict[str, str], schedule_s: float = 0.3, log_file: Path | None = None
) -> Iterator[Reviewing]:
    slack = SlackHook()
    with LocalEngine.running(
        parameters={"Reviewers": REVIEWERS, "SlackSecretName": SLACK_SECRET, **parameters},
        # Review timings of seconds, not minutes: the sweeper runs every schedule_s to match.
        bent_limits=REVIEW_TIMINGS & set(parameters),
        log_file=log_file,
    ) as engine:
        engine.clients["secretsmanager"].create_secret(
            Name=SLACK_SECRET,
            SecretString=json.dumps({"webhook_url": slack.url, "signing_secret": SLACK_SIGNING}),
        )
        inbox_urls = {}
        for topic in ("ReviewTopic", "EscalationTopic"):
            url = engine.clients["sqs"].create_queue(QueueName=f"inbox-{topic}")["QueueUrl"]
            arn = engine.clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            engine.clients["sns"].subscribe(
                TopicArn=engine.template.resolve({"Ref": topic}), Protocol="sqs", Endpoint=arn
            )
            inbox_urls[topic] = url
        server = LocalServer(engine, port=0, poll_s=0.02, schedule_s=schedule_s).start()
        try:
            yield Reviewing(engine, server, slack, inbox_urls)
        finally:
            server.stop()
            # Reviews left open would time out after the emulator is gone: stop them first.
            sfn = engine.clients["stepfunctions"]
            running = sfn.list_executions(
                stateMachineArn=engine.state_machine_arn("HumanReviewStateMachine"), statusFilter="RUNNING"
            )["executions"]
            for execution in running:
                sfn.stop_execution(executionArn=execution["executionArn"], cause="test finished")
            engine.settle("HumanReviewStateMachine", timeout_s=5)
            slack.close()


def http(
    base: str,
    method: str,
    path: str,
    *,
    form: dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    data = urlencode(form).encode() if form is not None else body
    request = urllib.request.Request(base + path if path.startswith("/") else path, data=data, method=method)
    if form is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def links_in(email_body: str) -> dict[str, str]:
    """The approve and reject links in an e-mail body, by their action."""
    found = {}
    for url in re.findall(r"https?://\S+/reviews/\S+", email_body):
        action = re.search(r"[?&]action=(\w+)", url)
        if action:
            found[action.group(1)] = url
    return found


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "fields": {}})
        elif tag == "input" and self.forms and a.get("type") == "hidden":
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def forms_in(page: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def slack_request(
    review_id: str,
    action: str,
    user_id: str,
    *,
    age_s: float = 0,
    secret: str = SLACK_SIGNING,
    response_url: str = "https://hooks.slack.invalid/actions/1",
    team_id: str = "T0TEAM",
    username: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A block_actions request as Slack sends it, signed with ``secret``, ``age_s`` old; the
    decided message is posted back to ``response_url``."""
    payload = {
        "type": "block_actions",
        "team": {"id": team_id, "domain": "example"},
        "user": {"id": user_id, "username": username or user_id.lower(), "team_id": team_id},
        "actions": [{"action_id": f"review_{action}", "value": f"{action}:{review_id}"}],
        "response_url": response_url,
    }
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time() - age_s))
    signature = (
        "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return body.encode(), headers


def wait_status(r: Reviewing, query_id: str, statuses: set[str], timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, text = http(r.server.url, "GET", f"/queries/{query_id}")
        if status == 200 and json.loads(text)["status"] in statuses:
            return dict(json.loads(text))
        time.sleep(0.05)
    raise AssertionError(f"{query_id} never reached {statuses}")


def wait_review(r: Reviewing, query_id: str, timeout_s: float = 30) -> dict[str, Any]:
    """Wait for the query's review execution to end. StartReview records ``needs_review``
    before it starts the review (ADR 0017), so the execution may not exist yet at first."""
    arn = r.engine.execution_arn("HumanReviewStateMachine", query_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = r.engine.clients["stepfunctions"].list_executions(
            stateMachineArn=r.engine.state_machine_arn("HumanReviewStateMachine")
        )["executions"]
        if any(e["executionArn"] == arn for e in listed):
            return r.engine.wait(arn, timeout_s=max(0.0, deadline - time.monotonic()))
        time.sleep(0.05)
    raise AssertionError(f"no review execution started for {query_id} within {timeout_s:g} s")


def submit(r: Reviewing, question: str = AMBIGUOUS) -> str:
    status, text = http(
        r.server.url,
        "POST",
        "/queries",
        body=json.dumps({"question": question}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 202, text
    query_id: str = json.loads(text)["query_id"]
    return query_id
