"""The pieces every review decision rests on: signed links, Slack request signing, routing."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from panelbrain.review import links, slack
from panelbrain.review.policy import ReviewPolicy

KEY = b"k" * 32
NOW = 1_800_000_000.0


ANA = "ana@example.org"


def check(link: links.RecipientLink, **changes: object) -> links.RecipientLink:
    parts: dict[str, object] = {
        "review_id": link.review_id,
        "action": link.action,
        "expires": str(link.expires),
        "recipient": link.recipient,
        "signature": link.signature,
    }
    parts.update(changes)
    return links.verify(
        KEY,
        str(parts["review_id"]),
        parts["action"],  # type: ignore[arg-type]
        parts["expires"],  # type: ignore[arg-type]
        parts["recipient"],  # type: ignore[arg-type]
        parts["signature"],  # type: ignore[arg-type]
        now=NOW,
    )


def test_a_signed_link_verifies_until_it_expires_and_decides_as_its_recipient() -> None:
    link = links.sign_for(KEY, "rv_1", "approve", int(NOW) + 60, "Ana@Example.org")
    verified = check(link)
    assert verified == link
    assert verified.principal().identity == ANA
    assert verified.principal().source == "email_link"
    with pytest.raises(links.LinkError, match="expired") as expired:
        links.verify(KEY, "rv_1", "approve", str(link.expires), ANA, link.signature, now=NOW + 61)
    assert expired.value.status == 410


@pytest.mark.parametrize(
    "changes",
    [
        {"review_id": "rv_2"},  # another review's link
        {"action": "reject"},  # the action edited
        {"expires": str(int(NOW) + 3600)},  # the expiry pushed out
        {"recipient": "bob@example.org"},  # a forwarded link made to decide as its new holder
    ],
)
def test_any_edit_to_a_link_is_a_forgery(changes: dict[str, str]) -> None:
    link = links.sign_for(KEY, "rv_1", "approve", int(NOW) + 60, ANA)
    with pytest.raises(links.LinkError, match="signature does not match") as forged:
        check(link, **changes)
    assert forged.value.status == 403


def test_a_link_signed_with_another_key_is_a_forgery() -> None:
    link = links.sign_for(b"another key", "rv_1", "approve", int(NOW) + 60, ANA)
    with pytest.raises(links.LinkError, match="signature does not match"):
        check(link)


def test_a_link_without_a_recipient_is_refused_even_with_a_good_old_style_signature() -> None:
    """The links sent before recipients were bound decide as anyone: none of them verifies."""
    unbound = links.sign(KEY, "rv_1", "approve", int(NOW) + 60)
    with pytest.raises(links.LinkError, match="names no recipient") as refused:
        links.verify(KEY, "rv_1", "approve", str(unbound.expires), None, unbound.signature, now=NOW)
    assert refused.value.status == 403
    with pytest.raises(links.LinkError, match="signature does not match"):
        links.verify(KEY, "rv_1", "approve", str(unbound.expires), ANA, unbound.signature, now=NOW)


def test_a_forged_link_is_called_forged_even_when_its_expiry_has_passed() -> None:
    with pytest.raises(links.LinkError, match="signature"):
        links.verify(KEY, "rv_1", "approve", "1", ANA, "bogus", now=NOW)


@pytest.mark.parametrize("recipient", ["ana@example.org\nbob@example.org", "not an address", "a@b@c"])
def test_a_recipient_that_is_not_one_address_cannot_be_signed_nor_verified(recipient: str) -> None:
    with pytest.raises(ValueError, match="one e-mail address"):
        links.sign_for(KEY, "rv_1", "approve", int(NOW) + 60, recipient)
    with pytest.raises(links.LinkError, match="signature does not match"):
        links.verify(KEY, "rv_1", "approve", str(int(NOW) + 60), recipient, "x", now=NOW)


@pytest.mark.parametrize(
    ("action", "expires"), [("delete", "1"), (None, "1"), ("approve", "soon"), ("approve", None)]
)
def test_malformed_links_name_the_bad_part(action: str | None, expires: str | None) -> None:
    with pytest.raises(links.LinkError, match=r"action|expiry") as bad:
        links.verify(KEY, "rv_1", action, expires, ANA, "x", now=NOW)
    assert bad.value.status == 400


def test_the_link_url_carries_no_token_only_id_action_expiry_recipient_and_signature() -> None:
    url = links.url("https://api.example.com/dev/", links.sign_for(KEY, "rv_1", "reject", 99, ANA))
    assert url.startswith(
        "https://api.example.com/dev/reviews/rv_1?action=reject&expires=99&to=ana%40example.org&sig="
    )


def signed(body: str, timestamp: str, secret: str = "s3cret") -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def test_slack_requests_are_verified_by_signature_and_age() -> None:
    body = "payload=%7B%7D"
    slack.verify(signed(body, str(int(NOW))), body, "s3cret", now=NOW)
    slack.verify(signed(body, str(int(NOW) - 299)), body, "s3cret", now=NOW)
    refusals = {
        "wrong secret": (signed(body, str(int(NOW)), "other"), body),
        "body changed": (signed(body, str(int(NOW))), body + "x"),
        "too old": (signed(body, str(int(NOW) - 301)), body),
        "from the future": (signed(body, str(int(NOW) + 301)), body),
        "no headers": ({}, body),
        "timestamp not a number": ({**signed(body, "abc"), "X-Slack-Request-Timestamp": "abc"}, body),
    }
    for name, (headers, sent) in refusals.items():
        with pytest.raises(slack.SlackRequestError) as refused:
            slack.verify(headers, sent, "s3cret", now=NOW)
        assert refused.value.status == 401, name


def test_slack_payload_gives_the_review_action_and_user() -> None:
    payload = {
        "team": {"id": "T0TEAM"},
        "user": {"id": "U0ANN", "username": "ann@example.com", "team_id": "T0TEAM"},
        "actions": [{"value": "reject:rv_9"}],
        "response_url": "u",
    }
    pressed = slack.parse_action(urlencode({"payload": json.dumps(payload)}))
    assert (pressed.review_id, pressed.action, pressed.user_id, pressed.team_id) == (
        "rv_9",
        "reject",
        "U0ANN",
        "T0TEAM",
    )
    for bad in (
        "",
        "payload=notjson",
        urlencode({"payload": json.dumps({**payload, "actions": [{"value": "x:rv"}]})}),
        urlencode({"payload": json.dumps({**payload, "user": {"username": "ann@example.com"}})}),
        urlencode({"payload": json.dumps({**payload, "user": {"id": "ann@example.com"}})}),
        urlencode({"payload": json.dumps({**payload, "team": {}, "user": {"id": "U0ANN"}})}),
    ):
        with pytest.raises(slack.SlackRequestError):
            slack.parse_action(bad)


def test_slack_identity_is_the_user_id_in_its_team_never_a_username() -> None:
    pressed = slack.SlackAction("rv_1", "approve", "U0ANN", "T0TEAM", None)
    principal = pressed.principal()
    assert (principal.identity, principal.source) == ("slack:T0TEAM/U0ANN", "slack")
    # The same user id in another workspace is someone else.
    assert slack.SlackAction("rv_1", "approve", "U0ANN", "T0OTHER", None).principal() != principal


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/actions/T0TEAM/1/abc", True),
        ("https://hooks.slack.com:443/actions/T0TEAM/1/abc", True),
        ("http://hooks.slack.com/actions/T0TEAM/1/abc", False),
        ("https://hooks.slack.com.evil.example/actions/1", False),
        ("https://evil.example@hooks.slack.com/actions/1", False),
        ("https://hooks.slack.com:8443/actions/1", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("http://127.0.0.1:9000/hook-2", True),  # the configured webhook's origin, below
        ("http://127.0.0.1:9001/hook", False),
        ("not a url", False),
        ("https://[::1", False),
    ],
)
def test_response_url_only_on_slacks_hooks_host_or_the_configured_webhook(url: str, allowed: bool) -> None:
    assert slack.response_url_allowed(url, also=("http://127.0.0.1:9000/hook",)) is allowed


ROWS = [{"weighted_base": 120.0}, {"weighted_base": 24.5}]


def test_thresholds_route_by_confidence() -> None:
    policy = ReviewPolicy()
    assert policy.route("q-1", 0.9, ROWS, None) == ("answer", [])
    route, reasons = policy.route("q-1", 0.6, ROWS, None)
    assert route == "review" and "between the review threshold 0.5 and the answer threshold 0.8" in reasons[0]
    assert policy.route("q-1", 0.3, ROWS, None) == ("low_confidence", [])


def test_always_review_rules_catch_confident_answers() -> None:
    policy = ReviewPolicy(min_weighted_base=30, min_efficiency=0.6)
    route, reasons = policy.route("q-1", 0.95, ROWS, {"efficiency": 0.45})
    assert route == "review"
    assert any("smallest weighted base shown is 24.5" in r for r in reasons)
    assert any("weighting efficiency 45% is below" in r for r in reasons)
    assert policy.route("q-1", 0.95, [{"weighted_base": 31}], {"efficiency": 0.7}) == ("answer", [])
    # The rules do not rescue an answer below the review threshold: it is not answered at all.
    assert policy.route("q-1", 0.2, ROWS, {"efficiency": 0.1})[0] == "low_confidence"


def test_the_quality_sample_is_the_stated_share_and_fixed_per_query() -> None:
    policy = ReviewPolicy(sample_rate=0.1)
    routes = [policy.route(f"q-{i:05d}", 0.95, ROWS, None)[0] for i in range(5000)]
    assert 0.08 < routes.count("review") / len(routes) < 0.12
    assert [policy.route(f"q-{i:05d}", 0.95, ROWS, None)[0] for i in range(200)] == routes[:200]
    assert ReviewPolicy().route("q-00001", 0.95, ROWS, None)[0] == "answer"
