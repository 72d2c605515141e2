"""Human review end to end on the local engine, over HTTP, as reviewers meet it.

A mid-confidence question opens a review; each reviewer's e-mail (captured from SNS) carries
links signed for that reviewer; GET on a link shows a confirmation page and decides nothing;
POST decides once, as the link's recipient. The reviewer page is for signed-in reviewers, its
forms need the session's CSRF token. Forged, expired, re-addressed, replayed, unsigned,
session-less and off-allow-list decisions are refused with a 4xx and change nothing.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

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


def test_each_reviewer_gets_links_bound_to_them_never_the_token(r: Reviewing) -> None:
    query_id, review, _ = open_review(r)
    token = service().store.token(review.review_id)
    mails = {who: r.email_for(query_id, recipient=who) for who in ("alice@example.com", "bob@example.com")}
    signatures = set()
    for who, mail in mails.items():
        assert token and token not in mail["body"]
        assert f"These links decide as {who}" in mail["body"]
        links_found = links_in(mail["body"])
        assert set(links_found) == {"approve", "reject"}
        for action, url in links_found.items():
            parts = parse_qs(urlsplit(url).query)
            assert urlsplit(url).path == f"/reviews/{review.review_id}"
            assert set(parts) == {"action", "expires", "to", "sig"} and parts["action"] == [action]
            assert parts["to"] == [who]
            signatures.add(parts["sig"][0])
    assert len(signatures) == 4  # no link is shared between reviewers
    for text in (review.question, review.answer, review.sql or "", review.confidence_reasons[0]):
        assert text.splitlines()[0][:40] in mails["alice@example.com"]["body"]
    # Slack got the same review with buttons, and no token either.
    posted = r.slack_for(review.review_id)
    assert token not in json.dumps(posted)
    buttons = [
        e for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"] if e.get("action_id")
    ]
    assert {b["action_id"] for b in buttons} >= {"review_approve", "review_reject"}


def test_approved_through_the_signed_link_is_answered_as_its_recipient(r: Reviewing) -> None:
    query_id, review, found = open_review(r)
    status, page = http(r.server.url, "GET", found["approve"])
    assert status == 200 and "This link was sent to <strong>alice@example.com</strong>" in page
    fields = confirm_form(r, found["approve"])
    unchanged(r, query_id, review)  # GET showed a page and decided nothing
    status, page = http(
        r.server.url,
        "POST",
        f"/reviews/{review.review_id}",
        # An approver or channel field is the client's word: the link's recipient and the
        # route's channel are recorded instead.
        form={**fields, "approver": "bob@example.com", "comment": "checked the bases", "channel": "web"},
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
    status, page = http(r.server.url, "POST", f"/reviews/{review.review_id}", form=fields)
    assert status == 409 and "already approved by alice@example.com" in page
    assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"


def test_a_forwarded_link_decides_only_as_the_reviewer_it_was_sent_to(r: Reviewing) -> None:
    query_id, review, found = open_review(r)
    fields = confirm_form(r, found["reject"])
    path = f"/reviews/{review.review_id}"
    # Whoever holds alice's link (signed in as bob, or not at all) cannot make it decide as
    # anyone else: the recipient is part of what the signature covers.
    bob = r.session("bob@example.com")
    for to in ("bob@example.com", "mallory@example.com"):
        status, page = http(r.server.url, "POST", path, form={**fields, "to": to}, headers=bob)
        assert status == 403 and "signature does not match" in page, (to, status, page)
        unchanged(r, query_id, review)
    status, page = http(r.server.url, "POST", path, form=fields, headers=bob)
    assert status == 200, page
    assert "Rejected as alice@example.com (the reviewer this e-mail link was sent to)" in page
    assert wait_status(r, query_id, {"rejected"})["route"] == "review_rejected"
    decided = service().store.get(review.review_id)
    assert decided is not None and decided.decision is not None
    assert (decided.decision.approver, decided.decision.channel) == ("alice@example.com", "email")
    # Its links now open an explanation, not a form.
    status, page = http(r.server.url, "GET", found["approve"])
    assert status == 409 and "already rejected by alice@example.com" in page and "<form" not in page


def test_the_reviewer_page_is_for_signed_in_reviewers_only(r: Reviewing) -> None:
    query_id, review, _ = open_review(r)
    # Not signed in: off to sign in, and the page's content is not shown.
    status, page = http(r.server.url, "GET", "/reviews")  # urllib follows the 303 to /login
    assert status == 200 and "Sign in to review" in page and review.review_id not in page
    bob = r.session("bob@example.com")
    status, page = http(r.server.url, "GET", "/reviews", headers=bob)
    assert status == 200 and "Signed in as <strong>bob@example.com</strong>" in page
    forms = [f for f in forms_in(page) if f["action"] == f"reviews/{review.review_id}"]
    assert [f["fields"]["action"] for f in forms] == ["approve", "reject"]
    # Nothing on the page decides for whoever holds it: no signature, no link, no channel.
    for form in forms:
        assert set(form["fields"]) == {"action", "csrf"}
    assert "sig=" not in page and "&sig" not in page
    (reject,) = [f for f in forms if f["fields"]["action"] == "reject"]
    path = f"/reviews/{review.review_id}"
    refusals = [
        ("no session", reject["fields"], {}, 401),
        ("no CSRF token", {"action": "reject"}, bob, 403),
        ("another session's CSRF token", reject["fields"], r.session("alice@example.com"), 403),
        ("a forged session", reject["fields"], {"Cookie": bob["Cookie"][:-6] + "AAAAAA"}, 401),
    ]
    for name, form, headers, expected in refusals:
        status, page = http(r.server.url, "POST", path, form=form, headers=headers)
        assert status == expected, (name, status, page)
        unchanged(r, query_id, review)
    status, page = http(
        r.server.url,
        "POST",
        path,
        form={**reject["fields"], "approver": "alice@example.com", "channel": "email"},
        headers=bob,
    )
    assert status == 200, page
    assert wait_status(r, query_id, {"rejected"})["route"] == "review_rejected"
    decided = service().store.get(review.review_id)
    assert decided is not None and decided.decision is not None
    assert (decided.decision.approver, decided.decision.channel) == ("bob@example.com", "web")


def test_the_reviewers_group_stands_in_for_the_allow_list(r: Reviewing) -> None:
    sign_in = r.server.sign_in
    sign_in.add_user("carol@example.com", "Carol-Passw0rd-long", groups=["reviewers"])
    sign_in.add_user("dave@example.com", "Dave-Passw0rd-long", groups=[])
    query_id, review, _ = open_review(r)
    path = f"/reviews/{review.review_id}"
    for who, expected in (("dave@example.com", 403), ("carol@example.com", 200)):
        headers = r.session(who)
        _, page = http(r.server.url, "GET", "/reviews", headers=headers)
        (form,) = [
            f
            for f in forms_in(page)
            if f["action"] == f"reviews/{review.review_id}" and f["fields"]["action"] == "approve"
        ]
        status, text = http(r.server.url, "POST", path, form=form["fields"], headers=headers)
        assert status == expected, (who, status, text)
        if expected != 200:
            unchanged(r, query_id, review)
    assert wait_status(r, query_id, {"answered"})["route"] == "review_approved"


def test_refused_decisions_change_nothing(r: Reviewing) -> None:
    query_id, review, found = open_review(r)
    fields = confirm_form(r, found["approve"])
    path = f"/reviews/{review.review_id}"
    key = service().signing_key()
    past = links.sign_for(key, review.review_id, "approve", int(time.time()) - 1, "alice@example.com")
    unbound = links.sign(key, review.review_id, "approve", int(fields["expires"]))
    cases = {
        "forged signature": ({**fields, "sig": fields["sig"][:-2] + "AA"}, 403),
        "action edited": ({**fields, "action": "reject"}, 403),
        "expiry extended": ({**fields, "expires": str(int(fields["expires"]) + 3600)}, 403),
        "recipient edited": ({**fields, "to": "mallory@example.com"}, 403),
        "no recipient (an old-style link)": (
            {"action": "approve", "expires": fields["expires"], "sig": unbound.signature},
            403,
        ),
        "expired link": (
            {"action": "approve", "expires": str(past.expires), "to": past.recipient, "sig": past.signature},
            410,
        ),
    }
    for name, (form, expected) in cases.items():
        status, page = http(r.server.url, "POST", path, form=form)
        assert status == expected, (name, status, page)
        unchanged(r, query_id, review)
    # The same refusals on GET: the link page is not shown for a forged or re-addressed link.
    assert http(r.server.url, "GET", found["approve"].replace("sig=", "sig=x"))[0] == 403
    assert http(r.server.url, "GET", found["approve"].replace("to=alice", "to=bob"))[0] == 403
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
    replaced = [
        m for m in r.slack.messages if m.get("replace_original") and "u0alice" in json.dumps(m).lower()
    ]
    assert replaced and not any(b["type"] == "actions" for b in replaced[0]["blocks"])
    status, text = http(r.server.url, "POST", "/slack/interactions", body=body, headers=headers)
    assert status == 409 and "already approved by slack:t0team/u0alice" in text.lower()


def slack_press(r: Reviewing, review: Review, action: str, user_id: str, **kw: str) -> tuple[int, str]:
    body, headers = slack_request(review.review_id, action, user_id, **kw)
    return http(r.server.url, "POST", "/slack/interactions", body=body, headers=headers)


def test_slack_identity_is_the_signed_user_and_team_never_a_username(r: Reviewing) -> None:
    query_id, review, _ = open_review(r)
    # A username is its owner's choice: naming it after an allow-listed e-mail decides nothing.
    status, text = slack_press(r, review, "approve", "U0MALLORY", username="alice@example.com")
    assert status == 403 and "slack:t0team/u0mallory" in text.lower(), text
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
    assert (decided.decision.approver.lower(), decided.decision.channel) == ("slack:t0team/u0bob", "slack")


def test_slack_response_url_is_only_slacks_and_never_masks_the_decision(r: Reviewing) -> None:
    elsewhere = SlackHook()  # another origin than the configured webhook's
    try:
        query_id, review, _ = open_review(r)
        status, text = slack_press(r, review, "reject", "U0ALICE", response_url=elsewhere.url)
        assert status == 200, text
        assert wait_status(r, query_id, {"rejected"})["route"] == "review_rejected"
        assert elsewhere.messages == []
        assert any(
            record["message"].get("message", "").startswith("Slack response_url refused")
            and record["message"].get("review_id") == review.review_id
            for record in r.engine.logs
            if record["source"] == "ReviewApiFunction"
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
        request = urllib.request.Request(url, headers=r.session("alice@example.com"))
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = response.headers
            assert headers["Content-Type"].startswith("text/html")
            assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
            assert headers["Referrer-Policy"] == "no-referrer"
            assert "script" not in response.read().decode().lower().replace("noscript", "")


def test_signing_out_takes_the_form_token_and_clears_the_session(r: Reviewing) -> None:
    alice = r.session("alice@example.com")
    _, page = http(r.server.url, "GET", "/reviews", headers=alice)
    (sign_out,) = [f for f in forms_in(page) if f["action"] == "auth/signout"]
    # Another site cannot sign a reviewer out either: the session's form token is required.
    assert http(r.server.url, "POST", "/auth/signout", form={}, headers=alice)[0] == 403
    request = urllib.request.Request(
        f"{r.server.url}/auth/signout",
        data=urlencode(sign_out["fields"]).encode(),
        headers={**alice, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        cleared = response.headers.get_all("Set-Cookie")
    assert cleared and cleared[0].startswith("pb_session=;") and "Max-Age=0" in cleared[0]
