"""The reviewer page in a real browser: headless Debian Chromium, driven by Playwright.

A reviewer opens /reviews, finds the pending answer, names themselves and approves by keyboard
through the form's labels and buttons; the query is then answered, and the history shows the
decision. The page works without JavaScript (it has none).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.reviewing import Reviewing, http, reviewing, submit, wait_status

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
SCREENSHOT = Path(__file__).parent.parent.parent / "docs" / "img" / "reviewer-page.png"


@pytest.fixture(scope="module")
def r() -> Iterator[Reviewing]:
    with reviewing({"ReviewTimeoutSeconds": "120", "ReviewHeartbeatSeconds": "10"}, schedule_s=1) as running:
        yield running


def test_reviewer_approves_in_the_browser_and_the_query_is_answered(r: Reviewing) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("PANELBRAIN_SKIP_BROWSER") == "1":
            pytest.skip("PANELBRAIN_SKIP_BROWSER=1")
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: `make test` installs Debian's chromium "
            "(or set PANELBRAIN_CHROMIUM to another Chromium)"
        )
    from playwright.sync_api import expect, sync_playwright

    r.engine.clear_table("ResultCacheTable")
    query_id = submit(r)
    wait_status(r, query_id, {"needs_review"})
    review_id = r.email_for(query_id)["attributes"]["review_id"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(java_script_enabled=False)
            page.goto(f"{r.server.url}/reviews")
            expect(page.get_by_role("heading", name=re.compile(r"Pending reviews \(1\)"))).to_be_visible()
            article = page.locator(f"#review-{review_id}")
            expect(article).to_contain_text("support a ban")
            assert page.locator("script").count() == 0
            if os.environ.get("PANELBRAIN_SCREENSHOT") == "1":
                page.screenshot(path=str(SCREENSHOT), full_page=True)

            # By keyboard: tab from the approver field to the comment, then to the button.
            approver = page.locator(f"#approver-approve-{review_id}")
            approver.focus()
            page.keyboard.type("alice@example.com")
            page.keyboard.press("Tab")
            page.keyboard.type("bases checked")
            page.keyboard.press("Tab")
            expect(article.locator("button:focus")).to_have_text("Approve")
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_contain_text("Approved by alice@example.com")

            deadline = time.monotonic() + 30
            record: dict[str, object] = {}
            while time.monotonic() < deadline:
                record = json.loads(http(r.server.url, "GET", f"/queries/{query_id}")[1])
                if record["status"] == "answered":
                    break
                time.sleep(0.1)
            assert (record["status"], record["route"]) == ("answered", "review_approved")

            page.goto(f"{r.server.url}/reviews")
            expect(page.get_by_text("No reviews are waiting.")).to_be_visible()
            history = page.locator("table").last
            expect(history).to_contain_text("alice@example.com")
            expect(history).to_contain_text("web")
            expect(history).to_contain_text("bases checked")
        finally:
            browser.close()
