"""Human review end to end on the local engine, over HTTP, as reviewers meet it.

A mid-confidence question opens a review; the e-mail (captured from SNS) carries signed links;
GET on a link shows a confirmation page and decides nothing; POST decides once. Forged, expired,
replayed, unsigned and off-allow-list decisions are refused with a 4xx and change nothing.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from panelbrain.functions.review_common import service
from panelbrain.local.ask import REVIEW
from panelbrain.review import links
from panelbrain.review.models import Review
from tests.e2e.reviewing import (
    Reviewing,
    SlackHook,
    forms_in,
    http,
    links_in,
    reviewing,
    slack_request,
    submit,
    wait_status,
)


@pytest.fixture(scope="module")
def r() -> Iterator[Reviewing]:
    # Reviews wait long enough for every test; the sweeper heartbeats them every 0.3 s.
    with reviewing({"ReviewTimeoutSeconds": "120", "ReviewHeartbeatSeconds": "2"}) as running:
        yield running


@pytest.fixture(autouse=True)
def cold_cache(r: Reviewing) -> None:
    r.engine.clear_table("ResultCacheTable")  # the same question must reach review every time


def open_review(r: Reviewing) -> tuple[str, Review, dict[str, str]]:
    query_id = submit(r)
    wait_status(r, query_id, {"needs_review"})
    mail = r.email_for(query_id)
    review = service().store.get(mail["attributes"]["review_id"])
    assert review is not None and review.status == "open"
    return query_id, review, links_in(mail["body"])


def execution_status(r: Reviewing, query_id: str) -> str:
    return str(r.engine.describe(r.engine.execution_arn(REVIEW, query_id))["status"])


def unchanged(r: Reviewing, query_id: str, review: Review) -> None:
    """Nothing was decided: the review is open, the task still waits, the query still waits."""
    stored = service().store.get(review.review_id)
    assert stored is not None and stored.status == "open" and stored.decision is None
    assert execution_status(r, query_id) == "RUNNING"
    assert wait_status(r, query_id, {"needs_review"}, timeout_s=1)["status"] == "needs_review"


def confirm_form(r: Reviewing, url: str) -> dict[str, str]:
    status, page = http(r.server.url, "GET", url)
    assert status == 200, page
    (form,) = forms_in(page)
    assert form["method"] == "post"
    return dict(form["fields"])


def test_email_carries_signed_links_never_the_token(r: Reviewing) -> None:
    query_id, review, found = open_review(r)
    mail = r.email_for(query_id)
    token = service().store.token(review.review_id)
    assert token and token not in mail["body"]
    assert set(found) == {"approve", "reject"}
    for action, url in found.items():
        parts = parse_qs(urlsplit(url).query)
        assert urlsplit(url).path == f"/reviews/{review.review_id}"
        assert set(parts) == {"action", "expires", "sig"} and parts["action"] == [action]
    for text in (review.question, review.answer, review.sql or "", review.confidence_reasons[0]):
        assert text.splitlines()[0][:40] in mail["body"]
    # Slack got the same review with buttons, and no token either.
    posted = r.slack_for(review.review_id)
    assert token not in json.dumps(posted)
    buttons = [
        e for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"] if e.get("action_id")
    ]
    assert {b["action_id"] for b in buttons} >= {"review_approve", "review_reject"}


def test_approved_through_the_signed_link_is_answered(r: Reviewing) -> None:
    query_id, review, found = open_review(r)
    fields = confirm_form(r, found["approve"])
    unchanged(r, query_id, review)  # GET showed a page and decided nothing
    status, page = http(
        r.server.url,
        "POST",
        f"/reviews/{review.review_id}",
        # A channel field is the client's word: the audit records the link's issuer instead.
        form={**fields, "approver": "Alice@Example.com", "comment": "checked the bases", "channel": "web"},
    )
    assert status == 200, page
    record = wait_status(r, query_id, {"answered"})
    assert record["route"] == "review_approved"
    decided = service().store.get(review.review_id)
    assert decided is not None and decided.decision is not None
    audit = decided.decision
    assert (audit.decision, audit.approver, audit.channel, audit.comment) == (
        "approved",
        "alice@example.com",
        "email",
        "checked the bases",
    )
    assert any('"ReviewLatency"' in line for line in r.engine.metric_lines)
    # The same form again: refused, saying who decided; the answer stands.
    status, page = http(
        r.server.url, "POST", f"/reviews/{review.review_id}", form={**fields, "approver": "bob@example.com"}
    )
    assert status == 409 and "already approved by alice@example.com" in page
    assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"


def test_rejected_through_the_signed_link_is_rejected(r: Reviewing) -> None:
    query_id, review, found = open_review(r)
    fields = confirm_form(r, found["reject"])
    status, _ = http(
        r.server.url, "POST", f"/reviews/{review.review_id}", form={**fields, "approver": "bob@example.com"}
    )
    assert status == 200
    record = wait_status(r, query_id, {"rejected"})
    assert (record["route"], record["reason"]) == ("review_rejected", "rejected by a reviewer")
    # Its links now open an explanation, not a form.
    status, page = http(r.server.url, "GET", found["approve"])
    assert status == 409 and "already rejected by bob@example.com" in page and "<form" not in page


def test_the_reviewer_page_records_web_whatever_the_form_says(r: Reviewing) -> None:
    query_id, review, _ = open_review(r)
    status, page = http(r.server.url, "GET", "/reviews")
    assert status == 200
    (form,) = [
        f
        for f in forms_in(page)
        if f["action"] == f"reviews/{review.review_id}" and f["fields"]["action"] == "reject"
    ]
    assert "channel" not in form["fields"]
    status, page = http(
        r.server.url,
        "POST",
        f"/reviews/{review.review_id}",
        form={**form["fields"], "approver": "bob@example.com", "channel": "email"},
    )
    assert status == 200, page
    assert wait_status(r, query_id, {"rejected"})["route"] == "review_rejected"
    decided = service().store.get(review.review_id)
    assert decided is not None and decided.decision is not None
    assert (decided.decision.approver, decided.decision.channel) == ("bob@example.com", "web")


def test_refused_decisions_change_nothing(r: Reviewing) -> None:
    query_id, review, found = open_review(r)
    fields = confirm_form(r, found["approve"])
    path = f"/reviews/{review.review_id}"
    key = service().signing_key()
    past = links.sign(key, review.review_id, "approve", int(time.time()) - 1)
    cases = {
        "forged signature": (
            {**fields, "sig": fields["sig"][:-2] + "AA", "approver": "alice@example.com"},
            403,
        ),
        "action edited": ({**fields, "action": "reject", "approver": "alice@example.com"}, 403),
        "expiry extended": (
            {**fields, "expires": str(int(fields["expires"]) + 3600), "approver": "alice@example.com"},
            403,
        ),
        "expired link": (
            {
                "action": "approve",
                "expires": str(past.expires),
                "sig": past.signature,
                "approver": "alice@example.com",
            },
            410,
        ),
        "approver off the allow-list": ({**fields, "approver": "mallory@example.com"}, 403),
        "no approver": ({**fields, "approver": ""}, 400),
    }
    for name, (form, expected) in cases.items():
        status, page = http(r.server.url, "POST", path, form=form)
        assert status == expected, (name, status, page)
        unchanged(r, query_id, review)
    # The same refusals on GET: the link page is not shown for a forged or expired link.
    assert http(r.server.url, "GET", found["approve"].replace("sig=", "sig=x"))[0] == 403
    # Slack: a bad signature, an old timestamp, and a user off the allow-list.
    for name, (body, headers), expected in [
        (
            "bad signature",
            slack_request(review.review_id, "approve", "U0ALICE", secret="not-the-secret"),
            401,
        ),
        ("old timestamp", slack_request(review.review_id, "approve", "U0ALICE", age_s=600), 401),
        ("off the allow-list", slack_request(review.review_id, "approve", "U0MALLORY"), 403),
    ]:
        status, text = http(r.server.url, "POST", "/slack/interactions", body=body, headers=headers)
        assert status == expected, (name, status, text)
        unchanged(r, query_id, review)
    # Finally a good Slack press decides, and replaying it is refused.
    body, headers = slack_request(review.review_id, "approve", "U0ALICE", response_url=r.slack.url)
    status, _ = http(r.server.url, "POST", "/slack/interactions", body=body, headers=headers)
    assert status == 200
    assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"
    # Slack ignores a block_actions response body: the decided message goes to response_url.
    replaced = [m for m in r.slack.messages if m.get("replace_original") and "u0alice" in json.dumps(m)]
    assert replaced and not any(b["type"] == "actions" for b in replaced[0]["blocks"])
    status, text = http(r.server.url, "POST", "/slack/interactions", body=body, headers=headers)
    assert status == 409 and "already approved by u0alice" in text


def slack_press(r: Reviewing, review: Review, action: str, user_id: str, **kw: str) -> tuple[int, str]:
    body, headers = slack_request(review.review_id, action, user_id, **kw)
    return http(r.server.url, "POST", "/slack/interactions", body=body, headers=headers)


def test_slack_identity_is_the_signed_user_and_team_never_a_username(r: Reviewing) -> None:
    query_id, review, _ = open_review(r)
    # A username is its owner's choice: naming it after an allow-listed e-mail decides nothing.
    status, text = slack_press(r, review, "approve", "U0MALLORY", username="alice@example.com")
    assert status == 403 and "t0team:u0mallory" in text, text
    unchanged(r, query_id, review)
    # U0BOB is allow-listed in workspace T0TEAM only.
    status, text = slack_press(r, review, "approve", "U0BOB", team_id="T0OTHER")
    assert status == 403, text
    unchanged(r, query_id, review)
    status, _ = slack_press(r, review, "approve", "U0BOB", response_url=r.slack.url)
    assert status == 200
    assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"
    decided = service().store.get(review.review_id)
    assert decided is not None and decided.decision is not None
    assert (decided.decision.approver, decided.decision.channel) == ("t0team:u0bob", "slack")


def test_slack_response_url_is_only_slacks_and_never_masks_the_decision(r: Reviewing) -> None:
    elsewhere = SlackHook()  # another origin than the configured webhook's
    try:
        query_id, review, _ = open_review(r)
        status, text = slack_press(r, review, "reject", "U0ALICE", response_url=elsewhere.url)
        assert status == 200, text
        assert wait_status(r, query_id, {"rejected"})["route"] == "review_rejected"
        assert elsewhere.messages == []
        assert any(
            "response_url refused" in line and review.review_id in line for line in r.engine.metric_lines
        )
    finally:
        elsewhere.close()
    # A response_url that cannot be posted to at all: the decision taken is still answered 200.
    query_id, review, _ = open_review(r)
    status, text = slack_press(r, review, "approve", "U0ALICE", response_url="not a url")
    assert status == 200 and json.loads(text)["decision"] == "approved", text
    assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"


def test_open_review_is_kept_alive_by_heartbeats(r: Reviewing) -> None:
    # The task's heartbeat timeout is 2 s; the sweeper beats every 0.3 s, so it outlives it.
    query_id, review, _ = open_review(r)
    time.sleep(3)
    assert execution_status(r, query_id) == "RUNNING"
    stored = service().store.get(review.review_id)
    assert stored is not None and stored.status == "open" and stored.heartbeats >= 3
    assert any('"ReviewBacklog"' in line for line in r.engine.metric_lines)
    assert any('"OldestOpenReviewAge"' in line for line in r.engine.metric_lines)


def test_pages_are_html_never_cached_never_framed(r: Reviewing) -> None:
    _, _, found = open_review(r)
    for url in (f"{r.server.url}/reviews", found["approve"]):
        with urllib.request.urlopen(url, timeout=30) as response:
            headers = response.headers
            assert headers["Content-Type"].startswith("text/html")
            assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
            assert headers["Referrer-Policy"] == "no-referrer"
            assert "script" not in response.read().decode().lower().replace("noscript", "")
