"""The reviewer page in a real browser: headless Debian Chromium, driven by Playwright.

A reviewer opens /reviews, is sent to sign in, signs in by keyboard with the password `serve`
printed for them, finds the pending answer and approves it by keyboard through the form's
labels and buttons; the query is then answered, and the history shows the decision as theirs
(no name is typed: the session says who decides). The pages work without JavaScript (they have
none).

Playwright never downloads a browser here: it drives Debian's chromium (`make test` puts it
at /usr/bin/chromium; PANELBRAIN_CHROMIUM points elsewhere). A missing Chromium fails the test
unless PANELBRAIN_SKIP_BROWSER=1. PANELBRAIN_SCREENSHOT=1 rewrites docs/img/reviewer-page.png.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.reviewing import AMBIGUOUS, Reviewing, http, reviewing, submit, wait_status

CHROMIUM = os.environ.get("PANELBRAIN_CHROMIUM", "/usr/bin/chromium")
# On a closed network Chromium's background services fail loudly; none is needed here.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "reviewer-page.png"


def chromium() -> str:
    """Chromium's path; a missing Chromium fails the test (`make test` installs it)."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("PANELBRAIN_SKIP_BROWSER") == "1":
            pytest.skip(f"PANELBRAIN_SKIP_BROWSER=1 and no Chromium at {CHROMIUM}")
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: run `make test` (it installs Debian's chromium), "
            "or set PANELBRAIN_CHROMIUM to another Chromium, or PANELBRAIN_SKIP_BROWSER=1 to skip",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def r() -> Iterator[Reviewing]:
    with reviewing({"ReviewTimeoutSeconds": "120", "ReviewHeartbeatSeconds": "10"}, schedule_s=1) as running:
        yield running


def answered(r: Reviewing, query_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, text = http(r.server.url, "GET", f"/queries/{query_id}")
        assert status == 200, text
        record = json.loads(text)
        if record["status"] == "answered":
            return record
        time.sleep(0.1)
    raise AssertionError(f"{query_id} not answered after {timeout_s} s: {record}")


def test_reviewer_approves_in_the_browser_and_the_query_is_answered(request: pytest.FixtureRequest) -> None:
    executable = chromium()  # before the engine starts: fails (or skips) at once
    from playwright.sync_api import expect, sync_playwright

    r: Reviewing = request.getfixturevalue("r")
    r.engine.clear_table("ResultCacheTable")  # the question must reach review, not the cache
    query_id = submit(r)
    wait_status(r, query_id, {"needs_review"})
    review_id = r.email_for(query_id)["attributes"]["review_id"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            page = browser.new_page(java_script_enabled=False, viewport={"width": 1280, "height": 900})
            # Not signed in: the reviewer page sends the browser to sign in first.
            page.goto(f"{r.server.url}/reviews")
            expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to review")
            page.get_by_label("E-mail").focus()
            page.keyboard.type("alice@example.com")
            page.keyboard.press("Tab")
            expect(page.get_by_label("Password")).to_be_focused()
            page.keyboard.type(r.server.sign_in.passwords["alice@example.com"])
            page.keyboard.press("Enter")
            expect(page).to_have_url(f"{r.server.url}/reviews")
            expect(page.get_by_text("Signed in as alice@example.com")).to_be_visible()
            expect(page.get_by_role("heading", name=re.compile(r"Pending reviews \(1\)"))).to_be_visible()
            article = page.locator(f"#review-{review_id}")
            expect(article).to_be_visible()
            expect(article.get_by_role("heading", level=2)).to_have_text(AMBIGUOUS)
            expect(page.locator("script")).to_have_count(0)
            if os.environ.get("PANELBRAIN_SCREENSHOT") == "1":
                page.screenshot(path=str(SCREENSHOT), full_page=True)

            # The approve form: found by its button's accessible name, then driven by keyboard.
            approve_name = re.compile(r"^Approve: What share of people")
            form = article.locator("form").filter(has=page.get_by_role("button", name=approve_name))
            approve = form.get_by_role("button", name=approve_name)
            form.get_by_label("Comment (optional)").focus()
            page.keyboard.type("bases checked")
            page.keyboard.press("Tab")
            expect(approve).to_be_focused()
            page.keyboard.press("Enter")

            expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Approved"))
            expect(page.get_by_role("status")).to_contain_text("Approved as alice@example.com")

            record = answered(r, query_id)
            assert record["route"] == "review_approved", record

            page.goto(f"{r.server.url}/reviews")
            expect(page.get_by_role("heading", name=re.compile(r"Pending reviews \(0\)"))).to_be_visible()
            expect(page.get_by_text("No reviews are waiting.")).to_be_visible()
            expect(page.locator(f"#review-{review_id}")).to_have_count(0)
            row = page.locator("table").last.locator("tbody tr")
            expect(row).to_have_count(1)
            expect(row.locator("td")).to_have_text(
                [AMBIGUOUS, "approved", "alice@example.com", "web", re.compile(r"\d"), "bases checked"]
            )
            expect(page.locator("script")).to_have_count(0)
        finally:
            browser.close()
