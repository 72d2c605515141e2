"""`panelbrain serve`: the API over HTTP on localhost, and its OpenAPI against the template."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panelbrain.local.engine import LocalEngine
from panelbrain.local.server import LocalServer
from panelbrain.local.template import Template

ROOT = Path(__file__).parent.parent.parent


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalEngine.running() as engine:
        running = LocalServer(engine, port=0, poll_s=0.02).start()  # port 0: any free loopback port
        yield running
        running.stop()


def call(
    server: LocalServer, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for(server: LocalServer, query_id: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, record = call(server, "GET", f"/queries/{query_id}")
        if status == 200 and record["status"] in statuses:
            return dict(record)
        time.sleep(0.05)
    raise AssertionError(f"{query_id} never reached {statuses}")


def test_post_then_get_returns_the_answer(server: LocalServer) -> None:
    status, accepted = call(server, "POST", "/queries", {"question": "What share support a ban on abortion?"})
    assert status == 202
    record = wait_for(server, accepted["query_id"], {"answered"})
    assert record["route"] == "formatter" and "Support a ban" in record["result"]["markdown"]


def test_review_callback_approves_a_waiting_answer(server: LocalServer) -> None:
    _, accepted = call(
        server, "POST", "/queries", {"question": "What share of people in QC strongly support a ban"}
    )
    wait_for(server, accepted["query_id"], {"needs_review"})
    status, _ = call(server, "POST", f"/queries/{accepted['query_id']}/review", {"decision": "approve"})
    assert status == 202
    assert wait_for(server, accepted["query_id"], {"answered"})["route"] == "review_approved"


def test_bad_requests_are_4xx(server: LocalServer) -> None:
    assert call(server, "POST", "/queries", {"question": "  "})[0] == 422
    assert call(server, "POST", "/queries", raw=b"x" * (10 * 1024 * 1024 + 1))[0] == 413
    assert call(server, "GET", "/queries/q-missing")[0] == 404
    assert call(server, "POST", "/queries/q-missing/review", {"decision": "maybe"})[0] == 422
    assert call(server, "POST", "/queries/q-missing/review", {"decision": "approve"})[0] == 409


def test_openapi_matches_the_template_routes(server: LocalServer) -> None:
    _, document = call(server, "GET", "/openapi.json")
    served = {(path, method) for path, item in document["paths"].items() for method in item}
    template = Template.load(ROOT / "template.yaml")
    declared = {
        (event["Properties"]["Path"], event["Properties"]["Method"])
        for function in template.of_type("AWS::Serverless::Function").values()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "Api"
    }
    assert served == declared


def test_schemathesis_finds_no_server_error(server: LocalServer) -> None:
    # Property-based requests generated from the served OpenAPI document (and methods it does
    # not declare): whatever they send, the API answers 2xx or 4xx, never 5xx.
    runner = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert runner is not None, "schemathesis is a dev dependency: make install"
    result = subprocess.run(
        [
            runner,
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    # Warnings about review ids schemathesis cannot guess are by design; no case may fail.
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts is not None and counts.group(1) == counts.group(2), result.stdout[-3000:]
