"""Rendering a review for people: e-mail, Slack and the HTML pages, with golden files for two."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import pytest

from panelbrain.review import render
from panelbrain.review.links import RecipientLink
from panelbrain.review.models import Action, Decision, Review

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_EMAIL = ROOT / "docs" / "examples" / "review-email.txt"
GOLDEN_SLACK = ROOT / "docs" / "examples" / "review-slack.json"

BASE = "https://api.example.com/dev"
CREATED = 1764056400.0  # 2025-11-25 07:40 UTC
EXPIRES = 1764060000  # one hour later
APPROVE_URL = f"{BASE}/reviews/rv_123?action=approve&expires={EXPIRES}&to=ana%40example.org&sig=abc"
REJECT_URL = f"{BASE}/reviews/rv_123?action=reject&expires={EXPIRES}&to=ana%40example.org&sig=def"
PAGE_URL = f"{BASE}/reviews"
SCRIPT = "<script>alert(1)</script>"


def sample_review(**changes: Any) -> Review:
    """A CES 2011-like review: a by-province share with one thin group, sent for review."""
    fields: dict[str, Any] = {
        "review_id": "rv_123",
        "query_id": "q_456",
        "created_at": CREATED,
        "expires_at": float(EXPIRES),
        "question": "What share of respondents say religion is very important, by province?",
        "dataset": "ces11",
        "answer": (
            "Religion is said to be very important by 41.2% of respondents in Alberta, 35.8% in "
            "Ontario, 33.1% in British Columbia and 19.6% in Quebec; the Alberta estimate rests on "
            "few respondents and is less certain."
        ),
        "table": [
            {
                "group": "Alberta",
                "category": "very important",
                "estimate": 0.4121,
                "ci_low": 0.2312,
                "ci_high": 0.5930,
                "weighted_base": 31.47,
                "unweighted_base": 28,
            },
            {
                "group": "British Columbia",
                "category": "very important",
                "estimate": 0.3308,
                "ci_low": 0.2716,
                "ci_high": 0.39,
                "weighted_base": 241.8,
                "unweighted_base": 236,
            },
            {
                "group": "Ontario",
                "category": "very important",
                "estimate": 0.35826,
                "ci_low": 0.3214,
                "ci_high": 0.3951,
                "weighted_base": 1204.62,
                "unweighted_base": 1187,
            },
            {
                "group": "Quebec",
                "category": "very important",
                "estimate": 0.1957,
                "ci_low": 0.1631,
                "ci_high": 0.2283,
                "weighted_base": 612.0,
                "unweighted_base": 598,
            },
        ],
        "sql": "SELECT province AS grp, importance AS category, count(*) AS n FROM ces11 GROUP BY 1, 2",
        "confidence": 0.64,
        "confidence_reasons": [
            "smallest group has 28 respondents (below 30)",
            "the question names a grouping (province) the SQL groups by",
        ],
        "review_reasons": [
            "confidence 0.64 is between the review threshold 0.5 and the answer threshold 0.8"
        ],
    }
    fields.update(changes)
    return Review(**fields)


def link(action: Action, review_id: str = "rv_123") -> RecipientLink:
    signature = "abc" if action == "approve" else "def"
    return RecipientLink(review_id, action, EXPIRES, "ana@example.org", signature)


def decided(
    review_id: str,
    decision: Literal["approved", "rejected", "timed_out"],
    at: float,
    approver: str = "ana@example.org",
) -> Review:
    return sample_review(
        review_id=review_id,
        status=decision,
        question=f"Question {review_id}?",
        decision=Decision(decision=decision, approver=approver, at=at, comment="", channel="web"),
    )


def body(review: Review | None = None, **kw: Any) -> str:
    return render.email_body(
        review or sample_review(),
        approve_url=APPROVE_URL,
        reject_url=REJECT_URL,
        page_url=PAGE_URL,
        recipient="ana@example.org",
        **kw,
    )


def all_mrkdwn(message: dict[str, Any]) -> list[str]:
    texts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block and block["text"]["type"] == "mrkdwn":
            texts.append(block["text"]["text"])
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                texts.append(element["text"])
    return texts


def block_texts(message: dict[str, Any]) -> list[str]:
    """Every text object in the message, wherever it sits."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message["blocks"])
    return found


class Forms(HTMLParser):
    """The forms of a page: their attributes, inputs, buttons and labels."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.label_for: list[str] = []
        self._button: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "form":
            self.forms.append({"attrs": a, "inputs": [], "buttons": []})
        elif tag in ("input", "textarea") and self.forms:
            self.forms[-1]["inputs"].append({"tag": tag, **a})
        elif tag == "button" and self.forms:
            self._button = {**a, "text": ""}
            self.forms[-1]["buttons"].append(self._button)
        elif tag == "label":
            self.label_for.append(a.get("for", ""))

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None


def parse(page: str) -> Forms:
    parser = Forms()
    parser.feed(page)
    return parser


CSRF = "csrf-of-this-session"


def reviewer_page(pending: list[Review], history: list[Review] | None = None, **kw: Any) -> str:
    return render.reviewer_page(
        pending,
        history or [],
        action_url_for=lambda rid: f"{BASE}/reviews/{rid}/decision",
        csrf=CSRF,
        signed_in_as="ana@example.org",
        now=EXPIRES - 52 * 60 - 10,
        **kw,
    )


# -- e-mail ----------------------------------------------------------------------------------------


def test_subject_says_what_is_needed_and_truncates_long_questions() -> None:
    review = sample_review()
    assert render.email_subject(review) == f'Review needed: "{review.question}"'
    assert render.email_subject(review, reminder=True).startswith("Reminder: Review needed: ")
    assert render.email_subject(sample_review(level=2)).startswith("Escalated review needed: ")

    long = sample_review(question="How do " + "very " * 60 + "long questions end?")
    subject = render.email_subject(long)
    question_part = subject.removeprefix("Review needed: ")
    assert len(question_part) <= 80
    assert question_part.endswith('..."')
    assert "\n" not in render.email_subject(sample_review(question="two\nlines"))


def test_email_body_holds_everything_a_reviewer_needs() -> None:
    review = sample_review()
    text = body(review)
    assert f"  > {review.question}" in text.splitlines()
    assert "Dataset: ces11" in text
    assert "41.2% of respondents in Alberta" in text
    for value in ("Alberta", "British Columbia", "0.4121", "0.3583", "1,204.62", "1,187", "612"):
        assert value in text
    assert "    " + review.sql in text  # type: ignore[operator]
    assert "Confidence: 0.64" in text
    assert "  - smallest group has 28 respondents (below 30)" in text
    assert "  - confidence 0.64 is between the review threshold 0.5 and the answer" in text
    # Links exactly as given, each alone on its line, so no mail client breaks them.
    lines = text.splitlines()
    assert APPROVE_URL in lines
    assert REJECT_URL in lines
    assert PAGE_URL in lines
    assert "nothing is decided until you confirm there" in " ".join(text.split())
    assert "2025-11-25 08:40 UTC" in text
    assert "token" not in text.lower()
    assert "minutes left" not in text
    # Whom the links decide as, so a reader knows not to forward them.
    assert "These links decide as ana@example.org, whoever opens them: do not forward this" in text


def test_email_body_lines_are_short_apart_from_links_table_and_sql() -> None:
    review = sample_review(answer="word " * 200, review_reasons=["reason " * 30])
    text = body(review)
    # Breaking a URL, a table row or SQL would make it wrong, not just long.
    exempt = {APPROVE_URL, REJECT_URL, PAGE_URL, "    " + str(review.sql), f"  > {review.question}"}
    exempt |= {"  " + row for row in render._text_table(review.table, max_rows=30)}
    for line in text.splitlines():
        if line not in exempt:
            assert len(line) <= 78, line


def test_email_table_is_aligned_and_capped_at_30_rows() -> None:
    rows = [{"name": f"row {i}", "count": i * 1000, "share": i / 7} for i in range(45)]
    text = body(sample_review(table=rows))
    table = [line for line in text.splitlines() if line.startswith("  row ") or line.startswith("  name")]
    assert len(table) == 31  # header and 30 rows
    assert len({len(line) for line in table}) == 1  # right-aligned numbers end in one column
    assert "... 15 more rows" in text
    assert "29,000" in text
    assert "0.1429" in text  # 1/7 to four decimals
    assert "row 30" not in text


def test_email_reminder_says_how_long_is_left() -> None:
    text = body(reminder=True, minutes_left=12)
    assert "Reminder" in text
    assert "about 12 minutes left before this review times out" in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234567, "1,234,567"),
        (0.41234567, "0.4123"),
        (1234.5, "1,234.5"),
        (612.0, "612"),
        (0.00001234, "1.234e-05"),
        (0.0, "0"),
        (-0.5, "-0.5"),
        (True, "True"),
        (None, ""),
        ("text", "text"),
        (float("nan"), "nan"),
    ],
)
def test_cells_are_formatted_by_type_not_by_guessed_meaning(value: Any, shown: str) -> None:
    assert render._cell(value) == shown


FORGED = "What share support a ban?\nApprove: https://evil.example/reviews/rv_123?action=approve"


def test_a_newline_in_the_question_cannot_forge_a_decision_link_in_the_email() -> None:
    text = body(sample_review(question=FORGED, answer=f"You asked: {FORGED}"))
    lines = text.splitlines()
    # Exactly our three links, each alone on its line; the attacker's is quoted and unclickable.
    assert set(re.findall(r"https?://\S+", text)) == {APPROVE_URL, REJECT_URL, PAGE_URL}
    assert lines.count("Approve:") == 1 and lines[lines.index("Approve:") + 1] == APPROVE_URL
    quoted = [line for line in lines if "evil.example" in line]
    assert quoted[0] == (
        "  > What share support a ban? Approve: https[:]//evil.example/reviews/rv_123?action=approve"
    )
    assert all(line.startswith("  ") for line in quoted)
    assert "\n" not in render.email_subject(sample_review(question=FORGED))


@pytest.mark.parametrize("separator", ["\r", "\u2028", "\u2029", "\x85", "\x0b", "\u202e"])
def test_every_rendering_shows_the_question_on_one_quoted_line(separator: str) -> None:
    review = sample_review(question=f"Is it?{separator}Approve: now")
    assert "  > Is it? Approve: now" in body(review).splitlines()
    section = render.slack_message(review, page_url=PAGE_URL)["blocks"][1]["text"]["text"]
    assert "*Question* (as asked, quoted)\n> Is it? Approve: now\n" in section
    for page in (
        render.confirm_page(review, link("approve"), action_url="rv_123"),
        reviewer_page([review]),
    ):
        assert '<blockquote class="question"><p>Is it? Approve: now</p></blockquote>' in page
        assert separator not in page


# -- Slack -----------------------------------------------------------------------------------------


def test_slack_buttons_carry_the_review_id_and_reject_asks_to_confirm() -> None:
    message = render.slack_message(sample_review(), page_url=PAGE_URL)
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert len(actions) == 1
    assert actions[0]["block_id"] == "review:rv_123"
    approve, reject = actions[0]["elements"]
    assert (approve["action_id"], approve["style"], approve["value"]) == (
        "review_approve",
        "primary",
        "approve:rv_123",
    )
    assert approve["text"]["text"] == "Approve"
    assert (reject["action_id"], reject["style"], reject["value"]) == (
        "review_reject",
        "danger",
        "reject:rv_123",
    )
    assert reject["text"]["text"] == "Reject"
    for key in ("title", "text", "confirm", "deny"):
        assert reject["confirm"][key]["type"] == "plain_text"
    assert "confirm" not in approve
    assert any(PAGE_URL in text for text in all_mrkdwn(message))
    assert "token" not in json.dumps(message).lower()


def test_slack_blocks_stay_under_the_section_limit_with_a_500_row_table() -> None:
    rows = [{"group": f"group {i} " + "x" * 30, "estimate": i / 3, "n": i * 100} for i in range(500)]
    review = sample_review(
        table=rows,
        sql="SELECT " + ", ".join(f"column_{i}" for i in range(800)) + " FROM ces11",
        answer="A & B < C > D " * 400,
        confidence_reasons=["reason <x> & y " * 50] * 20,
    )
    message = render.slack_message(review, page_url=PAGE_URL)
    for text in block_texts(message):
        assert len(text) < 3000
    table_block = next(
        b["text"]["text"] for b in message["blocks"] if "group 0 " in b.get("text", {}).get("text", "")
    )
    assert "group 14 " in table_block
    assert "group 15 " not in table_block
    assert "... 485 more rows" in table_block
    # Truncation never splits an entity: every & begins one of Slack's three escapes.
    for text in all_mrkdwn(message):
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


def test_slack_escapes_control_characters() -> None:
    review = sample_review(question=f"Is {SCRIPT} & <!channel> safe?", answer="a < b & c > d")
    message = render.slack_message(review, page_url=PAGE_URL)
    texts = all_mrkdwn(message)
    joined = "\n".join(texts)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt;" in joined
    assert "a &lt; b &amp; c &gt; d" in joined
    assert SCRIPT not in joined
    assert "<!channel>" not in joined


def test_slack_decided_message_has_no_buttons() -> None:
    review = sample_review(
        status="approved",
        decision=Decision(
            decision="approved",
            approver="ana@example.org",
            at=EXPIRES - 600,
            comment="looks right",
            channel="slack",
        ),
    )
    message = render.slack_decided_message(review)
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert "Approved by ana@example.org at 2025-11-25 08:30 UTC (looks right)" in "\n".join(
        all_mrkdwn(message)
    )

    rejected = decided("rv_9", "rejected", EXPIRES - 60, approver="U0123")
    assert "Rejected by U0123 at 2025-11-25 08:39 UTC" in message_text(render.slack_decided_message(rejected))
    timed_out = decided("rv_8", "timed_out", float(EXPIRES), approver="system")
    text = message_text(render.slack_decided_message(timed_out))
    assert "Timed out at 2025-11-25 08:40 UTC" in text
    assert "by system" not in text

    with pytest.raises(ValueError, match="no decision"):
        render.slack_decided_message(sample_review())


def message_text(message: dict[str, Any]) -> str:
    return "\n".join(all_mrkdwn(message))


# -- HTML ------------------------------------------------------------------------------------------


def test_every_page_escapes_the_question() -> None:
    review = sample_review(question=f"Why {SCRIPT}?", answer=f"Because {SCRIPT}", table=[{"k": SCRIPT}])
    pages = [
        render.confirm_page(review, link("approve"), action_url=f"{BASE}/reviews/rv_123/decision"),
        render.result_page(f"Bad {SCRIPT}", f"Oops {SCRIPT}", ok=False),
        reviewer_page([review], [decided("rv_1", "approved", CREATED)]),
        reviewer_page(
            [], [review.model_copy(update={"decision": decided("x", "approved", CREATED).decision})]
        ),
    ]
    for page in pages:
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script" not in page.lower()  # no JavaScript at all
        assert '<html lang="en">' in page
        assert "<title>" in page
        assert ":focus" in page


def test_confirm_page_posts_the_signed_fields_with_one_button_and_names_the_recipient() -> None:
    action_url = f"{BASE}/reviews/rv_123/decision?x=1&y=2"
    page = render.confirm_page(sample_review(), link("reject"), action_url=action_url)
    parsed = parse(page)
    assert len(parsed.forms) == 1
    form = parsed.forms[0]
    assert form["attrs"]["method"] == "post"
    assert form["attrs"]["action"] == action_url  # escaped in the markup, exact once parsed
    hidden = {i["name"]: i["value"] for i in form["inputs"] if i.get("type") == "hidden"}
    # The link's own signed fields only: no channel, and no approver a holder could type.
    assert hidden == {"action": "reject", "expires": str(EXPIRES), "to": "ana@example.org", "sig": "def"}
    assert not any(i.get("name") == "approver" for i in form["inputs"])
    assert "This link was sent to <strong>ana@example.org</strong>" in page
    assert any(i["tag"] == "textarea" and i["name"] == "comment" for i in form["inputs"])
    assert {"comment"} <= set(parsed.label_for)
    assert len(form["buttons"]) == 1
    button = form["buttons"][0]
    assert (button["type"], button["id"], button["name"], button["text"]) == (
        "submit",
        "confirm",
        "confirm",
        "Reject",
    )
    assert "Confirm: reject this answer?" in page
    assert "Nothing is decided until you press the button." in page
    assert "<th" in page
    assert "<pre>" in page
    assert "smallest group has 28 respondents (below 30)" in page

    approve = render.confirm_page(sample_review(), link("approve"), action_url=action_url)
    assert "Confirm: approve this answer?" in approve
    assert parse(approve).forms[0]["buttons"][0]["text"] == "Approve"


def test_pages_escape_attribute_values_too() -> None:
    """Autoescaping covers attributes: a quote cannot end an attribute and start another."""
    page = render.confirm_page(sample_review(), link("approve"), action_url='rv_123" onclick="x')
    assert 'onclick="x"' not in page
    assert parse(page).forms[0]["attrs"]["action"] == 'rv_123" onclick="x'


def test_login_page_posts_username_and_password() -> None:
    page = render.login_page(action_url="/login", username=f"ana{SCRIPT}", error=f"No {SCRIPT}")
    form = parse(page).forms[0]
    assert form["attrs"] == {"method": "post", "action": "/login"}
    fields = {i["name"]: i for i in form["inputs"]}
    assert fields["password"]["type"] == "password"
    assert fields["username"]["value"] == f"ana{SCRIPT}"
    assert SCRIPT not in page
    assert 'role="alert"' in page


def test_result_page_roles() -> None:
    ok = render.result_page("Approved", "Your decision was recorded.", ok=True)
    assert 'role="status"' in ok
    assert "Your decision was recorded." in ok
    error = render.result_page("Link expired", "Open the reviewer page for a fresh link.", ok=False)
    assert 'role="alert"' in error
    assert 'class="error"' in error


def test_reviewer_page_lists_pending_reviews_and_history_newest_first() -> None:
    first = sample_review()
    second = sample_review(review_id="rv_456", question="Second question?", level=2)
    history = [
        decided("rv_old", "approved", CREATED - 7200),
        decided("rv_new", "rejected", CREATED - 60),
        decided("rv_mid", "timed_out", CREATED - 3600, approver="system"),
    ]
    page = reviewer_page([first, second], history)
    assert "Pending reviews (2)" in page
    assert "Signed in as <strong>ana@example.org</strong>" in page
    parsed = parse(page)
    assert len(parsed.ids) == len(set(parsed.ids)), "ids must be unique"
    assert {"review-rv_123", "review-rv_456"} <= set(parsed.ids)
    assert {"comment-approve-rv_123", "comment-reject-rv_123", "comment-reject-rv_456"} <= set(parsed.ids)
    assert set(parsed.label_for) <= set(parsed.ids)
    assert len(parsed.forms) == 4
    for form in parsed.forms:
        assert form["attrs"]["method"] == "post"
        assert len(form["buttons"]) == 1
    first_forms = [f for f in parsed.forms if f["attrs"]["action"].endswith("/rv_123/decision")]
    assert [f["buttons"][0]["text"] for f in first_forms] == ["Approve", "Reject"]
    assert [f["buttons"][0]["aria-label"] for f in first_forms] == [
        f"Approve: {first.question}",
        f"Reject: {first.question}",
    ]
    fields = [{i["name"]: i["value"] for i in f["inputs"] if i.get("type") == "hidden"} for f in first_forms]
    # The action and the session's CSRF token: nothing that decides for whoever holds the page.
    assert fields == [{"action": "approve", "csrf": CSRF}, {"action": "reject", "csrf": CSRF}]
    assert "sig" not in page and "approver" not in {i.get("name") for f in parsed.forms for i in f["inputs"]}
    assert "52 min left" in page
    assert "<details><summary>SQL</summary>" in page
    assert page.index("Question rv_new?") < page.index("Question rv_mid?") < page.index("Question rv_old?")
    assert "Decision history" in page


def test_reviewer_page_offers_sign_out_with_the_session_token() -> None:
    page = reviewer_page([], signout_url="auth/signout")
    (form,) = parse(page).forms
    assert form["attrs"]["action"] == "auth/signout"
    assert [i["value"] for i in form["inputs"] if i.get("name") == "csrf"] == [CSRF]


def test_reviewer_page_with_nothing_pending() -> None:
    page = reviewer_page([])
    assert "Pending reviews (0)" in page
    assert "No reviews are waiting." in page
    assert "<form" not in page


# -- golden files ----------------------------------------------------------------------------------


def test_golden_email_and_slack(tmp_path: Path) -> None:
    """The e-mail and Slack message for the sample review, as the docs show them."""
    email = body()
    slack = json.dumps(render.slack_message(sample_review(), page_url=PAGE_URL), indent=2) + "\n"
    rendered = {GOLDEN_EMAIL: email, GOLDEN_SLACK: slack}
    if os.environ.get("PANELBRAIN_UPDATE_GOLDEN") == "1":
        for path, text in rendered.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for golden, text in rendered.items():
        out = tmp_path / golden.name
        out.write_text(text, encoding="utf-8")
        assert out.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8"), (
            f"{golden.relative_to(ROOT)} differs from the rendering; if the change is intended, "
            "rerun with PANELBRAIN_UPDATE_GOLDEN=1 and review the diff"
        )
