"""A review, rendered for people: e-mail, Slack Block Kit messages and server-rendered HTML pages.

Every function here is pure: it takes a review (and the links or URLs to offer) and returns text
or a JSON-ready dict. Nothing here sees the task token (it is not part of :class:`Review`), so
nothing rendered here can leak it. The pages carry no JavaScript: a plain form post is all a
reviewer needs, and it works from a keyboard, a screen reader or a locked-down browser alike.
"""

from __future__ import annotations

import functools
import math
import re
import textwrap
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from panelbrain.review.models import Decision, Review

if TYPE_CHECKING:
    import jinja2

    from panelbrain.review.links import RecipientLink

SUBJECT_QUESTION_CHARS = 80
WRAP = 78
EMAIL_TABLE_ROWS = 30
SLACK_TABLE_ROWS = 15
HTML_TABLE_ROWS = 200
CELL_CHARS = 40
# Slack refuses a section text over 3000 characters; a margin leaves room for the fences.
SLACK_TEXT_CHARS = 2900
SLACK_HEADER_CHARS = 150
SLACK_PLAIN_CHARS = 300  # a confirm dialog's text


# -- shared text helpers -------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


# Control, format (bidi overrides, zero-width) and line/paragraph separator characters: each
# could start a new line, or make text read differently from what it is, in some client.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _user_line(text: str) -> str:
    """User-typed text as one plain line: nothing in it can start a line of our own."""
    return _one_line("".join(" " if unicodedata.category(c) in _INVISIBLE else c for c in text))


def _defanged(text: str) -> str:
    """A URL in user text made unclickable, so the only links a reviewer can follow are ours."""
    return re.sub(r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)", r"\1[:]", text)


def _quoted_question(review: Review) -> str:
    return _defanged(_user_line(review.question))


def _truncate(text: str, limit: int, marker: str = "...") -> str:
    """``text`` cut to ``limit`` characters, at a word boundary when one is near the end."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(marker), 0)]
    head, space, _ = cut.rpartition(" ")
    if space and len(head) >= limit // 2:
        cut = head
    return cut.rstrip() + marker


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _confidence(value: float) -> str:
    return f"{value:.2f}"


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True/False in a column are labels, not quantities.
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    """One table value as text; the column's meaning is not guessed, only its type is used."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        # DynamoDB hands numbers back as Decimal; an integral one reads as an int.
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:,.4f}".rstrip("0").rstrip(".")
        if text in ("0", "-0"):
            # Four decimals would print a tiny non-zero value as 0, which is wrong, not rounded.
            return "0" if value == 0 else f"{value:.4g}"
        return text
    return _truncate(_one_line(str(value)), CELL_CHARS)


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    # The rows should share their keys; a union in first-seen order still renders if one does not.
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def _numeric_columns(rows: Sequence[dict[str, Any]], columns: list[str]) -> set[str]:
    numeric = set()
    for column in columns:
        values = [row.get(column) for row in rows if row.get(column) is not None]
        if values and all(_is_number(v) for v in values):
            numeric.add(column)
    return numeric


def _more_rows(hidden: int) -> str:
    return f"... {hidden:,} more row{'' if hidden == 1 else 's'}"


def _text_table(rows: Sequence[dict[str, Any]], *, max_rows: int) -> list[str]:
    """An aligned plain-text table, one string per line: numbers right-aligned, text left-aligned."""
    if not rows:
        return []
    columns = _columns(rows)
    shown = rows[:max_rows]
    numeric = _numeric_columns(shown, columns)
    cells = [[_cell(row.get(column)) for column in columns] for row in shown]
    headers = [_truncate(_one_line(c), CELL_CHARS) for c in columns]
    widths = [max([len(headers[i])] + [len(r[i]) for r in cells]) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if c in numeric else v.ljust(w)
            for v, w, c in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [line(headers), "  ".join("-" * w for w in widths)]
    lines.extend(line(r) for r in cells)
    if len(rows) > max_rows:
        lines.append(_more_rows(len(rows) - max_rows))
    return lines


def _wrap(text: str, indent: str = "") -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        if not paragraph.strip():
            lines.append("")
            continue
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=WRAP,
                initial_indent=indent,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return lines


def _bullets(items: Iterable[str], indent: str = "  ") -> list[str]:
    lines: list[str] = []
    for item in items:
        wrapped = textwrap.wrap(
            _one_line(item),
            width=WRAP,
            initial_indent=f"{indent}- ",
            subsequent_indent=f"{indent}  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines.extend(wrapped or [f"{indent}-"])
    return lines


def _kind(review: Review) -> str:
    return "Escalated review needed" if review.level > 1 else "Review needed"


def _minutes_left(n: int) -> str:
    if n == 1:
        return "There is about 1 minute left before this review times out."
    return f"There are about {n} minutes left before this review times out."


# -- e-mail --------------------------------------------------------------------------------------


def email_subject(review: Review, *, reminder: bool = False) -> str:
    question = _truncate(_quoted_question(review), SUBJECT_QUESTION_CHARS - 2)
    return f'{"Reminder: " if reminder else ""}{_kind(review)}: "{question}"'


def email_body(
    review: Review,
    *,
    approve_url: str,
    reject_url: str,
    page_url: str,
    reminder: bool = False,
    minutes_left: int | None = None,
    recipient: str | None = None,
) -> str:
    """The plain-text e-mail: the answer under review with everything needed to judge it.

    ``recipient`` is whom the links were signed for: they decide as that reviewer only, and
    the e-mail says so. Without links (empty URLs) the e-mail points to the reviewer page.

    URLs sit alone on their lines and are never wrapped, so every mail client keeps them
    clickable; prose is wrapped to 78 columns. Only the table and the SQL may run wider, as
    breaking them would make them wrong rather than merely long.
    """
    lines: list[str] = []
    if reminder:
        lines += _wrap("Reminder: this answer is still waiting for a reviewer's decision.")
    else:
        lines += _wrap(f"{_kind(review)}: an answer is waiting for your decision.")
    if review.level > 1:
        lines += _wrap("It was escalated because nobody decided at the first level in time.")
    if minutes_left is not None:
        lines += _wrap(_minutes_left(minutes_left))
    # The question is the one thing here a stranger typed: one quoted line, never wrapped, so
    # a newline in it cannot forge a line of ours (an "Approve:" with another link).
    lines += ["", "Question (as asked, quoted)", f"  > {_quoted_question(review)}"]
    if review.conversation:
        lines += ["", "Earlier in this conversation (readings, oldest first)", *_bullets(review.conversation)]
    lines += ["", f"Dataset: {_one_line(review.dataset)}"]
    # The answer may echo the question (a model can be asked to): its URLs are not clickable.
    lines += ["", "Answer", *_wrap(_defanged(review.answer), "  ")]
    table = _text_table(review.table, max_rows=EMAIL_TABLE_ROWS)
    if table:
        lines += ["", "Table", *("  " + row if row else row for row in table)]
    if review.sql:
        lines += [
            "",
            "SQL",
            *("    " + row if row.strip() else "" for row in review.sql.strip().splitlines()),
        ]
    lines += ["", f"Confidence: {_confidence(review.confidence)}", *_bullets(review.confidence_reasons)]
    if review.review_reasons:
        lines += ["", "Why this answer needs review", *_bullets(review.review_reasons)]
    if approve_url and reject_url:
        lines += ["", "Approve:", approve_url, "", "Reject:", reject_url, ""]
        lines += _wrap("A link opens a confirmation page; nothing is decided until you confirm there.")
        lines += _wrap(f"The links expire at {_utc(review.expires_at)}, when the review times out.")
        if recipient:
            lines += _wrap(
                f"These links decide as {recipient}, whoever opens them: do not forward this e-mail."
            )
    else:
        lines += ["", *_wrap("Sign in to the reviewer page to decide.")]
    lines += ["", "All pending reviews are on the reviewer page:", page_url]
    return "\n".join(lines).rstrip() + "\n"


# -- Slack ---------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack asks for exactly these three to be escaped; its formatting marks (*, _) cannot be.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_fit(text: str, limit: int) -> str:
    """``text`` escaped for mrkdwn and cut so the escaped form fits ``limit`` characters.

    The cut is made on the raw text, so an entity such as ``&amp;`` is never split in half.
    """
    escaped = _slack_escape(text)
    if len(escaped) <= limit:
        return escaped
    cut = limit
    while cut > 0 and len(_slack_escape(text[:cut])) + 3 > limit:
        cut -= max(1, len(_slack_escape(text[:cut])) + 3 - limit)
    return _slack_escape(text[:cut]) + "..."


def _slack_code(text: str, limit: int) -> str:
    """A fenced code block whose escaped content fits ``limit`` characters with its fences."""
    # A ``` inside the content would close the fence early; zero-width spaces keep it literal.
    body = text.replace("```", "`\u200b`\u200b`")
    room = limit - len("```\n\n```")
    escaped = _slack_escape(body)
    if len(escaped) > room:
        kept: list[str] = []
        used = 0
        marker = "... (truncated)"
        for row in escaped.splitlines():
            if used + len(row) + 1 + len(marker) > room:
                break
            kept.append(row)
            used += len(row) + 1
        if not kept:
            # One very long line: cut inside it rather than drop it all.
            return f"```\n{_slack_fit(body, room)}\n```"
        escaped = "\n".join([*kept, marker])
    return f"```\n{escaped}\n```"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _truncate(_one_line(text), limit), "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _slack_question(review: Review) -> dict[str, Any]:
    question = _slack_fit(_quoted_question(review), 800)
    dataset = _slack_fit(_one_line(review.dataset), 100)
    used = len(question) + len(dataset) + 60
    answer = _slack_fit(_defanged(review.answer), SLACK_TEXT_CHARS - used)
    return {
        "type": "section",
        # A leading ">" is Slack's quote mark (left unescaped for that purpose); the question
        # after it is one escaped line.
        "text": _mrkdwn(
            f"*Question* (as asked, quoted)\n> {question}\n*Dataset:* `{dataset}`\n*Answer*\n{answer}"
        ),
    }


def _slack_reasons(label: str, reasons: list[str]) -> str:
    return f"*{label}:* " + _slack_fit("; ".join(_one_line(r) for r in reasons), SLACK_TEXT_CHARS - 40)


def slack_message(review: Review, *, page_url: str, reminder: bool = False) -> dict[str, Any]:
    """A Block Kit message for an incoming webhook, with Approve and Reject buttons.

    The buttons carry only ``<action>:<review_id>``; the decision is taken by the Slack
    endpoint after it has checked Slack's request signature. The reviewer page is offered as
    a mrkdwn link rather than a URL button, because a URL button also posts an interaction
    to the Slack endpoint, which would then have to answer a payload that decides nothing.
    """
    header = f"{'Reminder: ' if reminder else ''}{_kind(review)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(header, SLACK_HEADER_CHARS)},
        _slack_question(review),
    ]
    table = _text_table(review.table, max_rows=SLACK_TABLE_ROWS)
    if table:
        blocks.append({"type": "section", "text": _mrkdwn(_slack_code("\n".join(table), SLACK_TEXT_CHARS))})
    if review.sql:
        blocks.append({"type": "section", "text": _mrkdwn(_slack_code(review.sql.strip(), SLACK_TEXT_CHARS))})
    context = [_mrkdwn(f"*Confidence:* {_confidence(review.confidence)}")]
    if review.conversation:
        context.append(_mrkdwn(_slack_reasons("Earlier in this conversation", review.conversation)))
    if review.confidence_reasons:
        context.append(_mrkdwn(_slack_reasons("Confidence reasons", review.confidence_reasons)))
    if review.review_reasons:
        context.append(_mrkdwn(_slack_reasons("Sent to review because", review.review_reasons)))
    context.append(_mrkdwn(f"*Times out:* {_utc(review.expires_at)}"))
    blocks.append({"type": "context", "elements": context})
    review_id = review.review_id
    question = _truncate(_quoted_question(review), 200)
    blocks.append(
        {
            "type": "actions",
            "block_id": f"review:{review_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": "review_approve",
                    "style": "primary",
                    "text": _plain("Approve", 75),
                    "value": f"approve:{review_id}",
                },
                {
                    "type": "button",
                    "action_id": "review_reject",
                    "style": "danger",
                    "text": _plain("Reject", 75),
                    "value": f"reject:{review_id}",
                    "confirm": {
                        "title": _plain("Reject this answer?", 100),
                        "text": _plain(f"Reject the answer to: {question}", SLACK_PLAIN_CHARS),
                        "confirm": _plain("Reject", 30),
                        "deny": _plain("Cancel", 30),
                        "style": "danger",
                    },
                },
            ],
        }
    )
    blocks.append(
        {
            "type": "context",
            "elements": [
                _mrkdwn(f"<{_slack_escape(page_url)}|Open the reviewer page> for all pending reviews")
            ],
        }
    )
    fallback = email_subject(review, reminder=reminder)
    return {"text": _slack_escape(fallback), "blocks": blocks}


def _decision_line(decision: Decision) -> str:
    when = _utc(decision.at)
    if decision.decision == "timed_out":
        text = f"Timed out at {when}"
    else:
        verb = "Approved" if decision.decision == "approved" else "Rejected"
        text = f"{verb} by {_one_line(decision.approver)} at {when}"
    if decision.comment.strip():
        text += f" ({_one_line(decision.comment)})"
    return text


def slack_decided_message(review: Review) -> dict[str, Any]:
    """The message that replaces a review's Slack message once it is decided: no buttons left."""
    decision = review.decision
    if decision is None:
        raise ValueError(f"review {review.review_id} has no decision to show")
    line = _decision_line(decision)
    titles = {"approved": "Review approved", "rejected": "Review rejected", "timed_out": "Review timed out"}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(titles[decision.decision], SLACK_HEADER_CHARS)},
        _slack_question(review),
        {
            "type": "context",
            "elements": [
                _mrkdwn(_slack_fit(line, SLACK_TEXT_CHARS)),
                _mrkdwn(f"*Channel:* {decision.channel}"),
            ],
        },
    ]
    fallback = f'{line}: "{_truncate(_quoted_question(review), SUBJECT_QUESTION_CHARS)}"'
    return {"text": _slack_escape(fallback), "blocks": blocks}


# -- HTML pages ----------------------------------------------------------------------------------

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem;
  color: #1b1b1b; background: #fff; }
h1, h2, h3 { line-height: 1.25; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #999; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f3f3f3; padding: .5rem; overflow-x: auto; white-space: pre-wrap; }
article { border: 1px solid #999; border-radius: .25rem; padding: 0 1rem 1rem; margin: 1rem 0; }
label { display: block; font-weight: 600; margin-top: .5rem; }
input[type=text], input[type=password], textarea { font: inherit; width: 100%; max-width: 30rem;
  box-sizing: border-box; }
button { font: inherit; padding: .4rem 1.2rem; margin-top: .75rem; cursor: pointer; }
button.approve { background: #14653a; color: #fff; border: 2px solid #14653a; }
button.reject { background: #a4161a; color: #fff; border: 2px solid #a4161a; }
a:focus, button:focus, input:focus, textarea:focus, summary:focus {
  outline: 3px solid #1a5fb4; outline-offset: 2px; }
.forms { display: flex; flex-wrap: wrap; gap: 2rem; }
.note { font-style: italic; }
header.who { border-bottom: 1px solid #999; display: flex; gap: 1rem; align-items: center; }
form.inline { display: inline; }
form.inline button { margin-top: 0; padding: .1rem .6rem; }
blockquote.question { border-left: .4rem solid #999; margin: .5rem 0; padding-left: 1rem; }
.answer { white-space: pre-line; }
.ok { border-left: .4rem solid #14653a; padding-left: 1rem; }
.error { border-left: .4rem solid #a4161a; padding-left: 1rem; color: #7a0e11; }
""".strip()


@functools.cache
def _pages() -> jinja2.Environment:
    """The page templates (``review/templates/*.html``), autoescaped: every value a page shows
    is escaped by the engine, so no caller can forget to. jinja2 is imported on the first page
    rendered, never by the e-mail and Slack renderers above."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("panelbrain.review", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(
        style=_STYLE,
        user_line=_user_line,
        truncate=_truncate,
        utc=_utc,
        confidence=_confidence,
        cell=_cell,
        table_columns=_columns,
        numeric_columns=_numeric_columns,
        more_rows=_more_rows,
        dom_id=_dom_id,
        max_rows=HTML_TABLE_ROWS,
        subject_chars=SUBJECT_QUESTION_CHARS,
        signed_in_as=None,
        signout_url=None,
        csrf="",
    )
    return env


def _render(template: str, **values: Any) -> str:
    return _pages().get_template(template).render(**values)


def _dom_id(text: str) -> str:
    # An id must not contain whitespace; anything unusual becomes "_" so ids stay plain tokens.
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)


def confirm_page(review: Review, link: RecipientLink, *, action_url: str) -> str:
    """The page a signed e-mail link opens: the review, whom the link decides as, and one
    button that takes the decision (a POST)."""
    verb = "Approve" if link.action == "approve" else "Reject"
    return _render(
        "confirm.html",
        title=f"{verb} this answer? - panelbrain review",
        review=review,
        link=link,
        action_url=action_url,
    )


def result_page(
    title: str, message: str, *, ok: bool, next_url: str | None = None, next_label: str = ""
) -> str:
    """An outcome or error page, with an optional link onwards (to sign in, or back)."""
    return _render(
        "result.html",
        title=f"{title} - panelbrain review",
        heading=title,
        message=message,
        ok=ok,
        next_url=next_url,
        next_label=next_label or next_url,
    )


def login_page(*, action_url: str, username: str = "", error: str | None = None) -> str:
    """The local sign-in form (``panelbrain serve``); deployed, managed login takes its place."""
    return _render(
        "login.html",
        title="Sign in - panelbrain review",
        action_url=action_url,
        username=username,
        error=error,
    )


def _time_left(expires_at: float, now: float) -> str:
    seconds = expires_at - now
    if seconds <= 0:
        return "timed out"
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute left"
    if minutes < 60:
        return f"{minutes} min left"
    return f"{minutes // 60} h {minutes % 60} min left"


def reviewer_page(
    pending: list[Review],
    history: list[Review],
    *,
    action_url_for: Callable[[str], str],
    csrf: str,
    signed_in_as: str,
    signout_url: str | None = None,
    now: float,
) -> str:
    """Every open review with its two decision forms, then the decisions already taken.

    The forms carry the action and ``csrf`` (the session's form token) only: deciding needs the
    signed-in session that token belongs to, so nothing on the page decides for someone else."""
    decided = [(r, r.decision) for r in history if r.decision is not None]
    decided.sort(key=lambda pair: pair[1].at, reverse=True)
    return _render(
        "reviewer.html",
        title=f"Pending reviews ({len(pending)}) - panelbrain",
        pending=pending,
        history=decided,
        action_url_for=action_url_for,
        csrf=csrf,
        signed_in_as=signed_in_as,
        signout_url=signout_url,
        time_left=lambda expires_at: _time_left(expires_at, now),
    )
