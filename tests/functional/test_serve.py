"""`panelbrain serve`: the API over HTTP on localhost, and its OpenAPI against the template."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panelbrain.local.engine import LocalEngine
from panelbrain.local.server import LocalServer
from panelbrain.local.template import Template

ROOT = Path(__file__).parent.parent.parent


AMBIGUOUS = "What share of people in QC strongly support a ban"  # "strongly": review (0.75)
REQUEST_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    # As `panelbrain serve --reviewers alice@example.com,bob@example.com` starts it.
    with LocalEngine.running(parameters={"Reviewers": "alice@example.com,bob@example.com"}) as engine:
        running = LocalServer(  # port 0: any free loopback port
            engine, port=0, poll_s=0.02, request_timeout_s=REQUEST_TIMEOUT_S
        ).start()
        yield running
        running.stop()


def call(
    server: LocalServer,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        server.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read() or b"{}"
        # The review routes answer an HTML page, the rest JSON.
        return error.code, json.loads(text) if text.startswith((b"{", b"[")) else text.decode()


def raw_exchange(server: LocalServer, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers) and ``body`` on a socket left open, as a client
    that lies about its body would, and read the answer. A server that waited for the promised
    bytes would never answer: the socket's timeout turns that into a failure, not a hang."""
    host, port = server.httpd.server_address[:2]
    with socket.create_connection((str(host), port), timeout=REQUEST_TIMEOUT_S * 5) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(
        (k.strip().lower(), v.strip())
        for k, _, v in (h.decode().partition(":") for h in header_block.split(b"\r\n"))
    )
    return int(status_line.split()[1]), headers, payload


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


def waiting_for_review(server: LocalServer) -> str:
    """A new query that waits for a reviewer (no cached answer short-cuts it)."""
    server.engine.clear_table("ResultCacheTable")
    _, accepted = call(server, "POST", "/queries", {"question": AMBIGUOUS})
    query_id: str = accepted["query_id"]
    wait_for(server, query_id, {"needs_review"})
    return query_id


def signed_in(server: LocalServer, who: str) -> dict[str, str]:
    """The cookie a browser holds after signing in as ``who`` on the local /login page."""
    token = server.sign_in.sign_in(who, server.sign_in.passwords[who])
    return {"Cookie": f"pb_session={token}"}


def test_review_callback_approves_a_waiting_answer(server: LocalServer, tmp_path: Path) -> None:
    # The README's two curls, as written (the password serve printed put in): sign in, then
    # decide. The decision is the signed-in reviewer's, never a name the request supplies.
    query_id = waiting_for_review(server)
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    (sign_in,) = [line for line in readme if line.startswith("curl ") and "/login " in line]
    (example,) = [line for line in readme if line.startswith("curl ") and "/review " in line]
    port = server.httpd.server_address[1]
    for command in (sign_in, example):
        command = (
            command.replace("localhost:3000", f"localhost:{port}")
            .replace("q-...", query_id)
            .replace("PASSWORD", server.sign_in.passwords["alice@example.com"])
            .replace("/tmp/panelbrain.cookies", str(tmp_path / "cookies"))
        )
        curl = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(curl.stdout)["approver"] == "alice@example.com", curl.stdout
    assert wait_for(server, query_id, {"answered"})["route"] == "review_approved"


def test_review_callback_decides_only_for_a_signed_in_reviewer(server: LocalServer) -> None:
    query_id = waiting_for_review(server)
    path = f"/queries/{query_id}/review"
    # No session, a forged one, or a name in the body: refused, nothing decided.
    status, refused = call(server, "POST", path, {"decision": "approve"})
    assert status == 401 and "sign in first" in refused["error"]
    forged = signed_in(server, "alice@example.com")["Cookie"][:-6] + "AAAAAA"
    assert call(server, "POST", path, {"decision": "approve"}, headers={"Cookie": forged})[0] == 401
    bob = signed_in(server, "bob@example.com")
    status, refused = call(
        server, "POST", path, {"decision": "approve", "approver": "alice@example.com"}, headers=bob
    )
    assert status == 422 and "whoever signed in" in refused["error"]
    assert wait_for(server, query_id, {"needs_review"})["status"] == "needs_review"
    status, decided = call(server, "POST", path, {"decision": "reject"}, headers=bob)
    assert (status, decided["approver"]) == (202, "bob@example.com")
    assert wait_for(server, query_id, {"rejected"})["route"] == "review_rejected"


def test_local_sign_in_sets_an_http_only_session_cookie(server: LocalServer) -> None:
    form = urllib.parse.urlencode(
        {"username": "Alice@Example.com", "password": server.sign_in.passwords["alice@example.com"]}
    ).encode()
    status, headers, _ = raw_exchange(
        server,
        f"POST /login HTTP/1.1\nHost: localhost\nContent-Type: application/x-www-form-urlencoded\n"
        f"Content-Length: {len(form)}\nConnection: close\n",
        form,
    )
    assert (status, headers["location"]) == (303, "/reviews")
    cookie = headers["set-cookie"]
    assert cookie.startswith("pb_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never come back
    wrong = urllib.parse.urlencode({"username": "alice@example.com", "password": "guess"}).encode()
    status, headers, page = raw_exchange(
        server,
        f"POST /login HTTP/1.1\nHost: localhost\nContent-Type: application/x-www-form-urlencoded\n"
        f"Content-Length: {len(wrong)}\nConnection: close\n",
        wrong,
    )
    assert status == 401 and "set-cookie" not in headers and b"password is wrong" in page


def test_review_callback_refuses_cross_site_requests(server: LocalServer) -> None:
    query_id = waiting_for_review(server)
    path = f"/queries/{query_id}/review"
    decision = b'{"decision": "approve"}'
    alice = signed_in(server, "alice@example.com")
    # What a page on another site can make a browser send without a preflight: refused, even
    # with the reviewer's cookie attached.
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status = call(server, "POST", path, raw=decision, headers={**alice, "Content-Type": media})[0]
        assert status == 415, media
    for origin in ("https://evil.example", "null"):
        assert call(server, "POST", path, raw=decision, headers={**alice, "Origin": origin})[0] == 403, origin
    assert call(server, "POST", path, raw=decision, headers={**alice, "Host": "evil.example"})[0] == 400
    assert wait_for(server, query_id, {"needs_review"})["status"] == "needs_review"
    status, _ = call(
        server, "POST", path, {"decision": "reject"}, headers=signed_in(server, "bob@example.com")
    )
    assert status == 202
    assert wait_for(server, query_id, {"rejected"})["route"] == "review_rejected"


def test_bad_requests_are_4xx(server: LocalServer) -> None:
    alice = signed_in(server, "alice@example.com")
    assert call(server, "POST", "/queries", {"question": "  "})[0] == 422
    assert call(server, "POST", "/queries", raw=b"x" * (10 * 1024 * 1024 + 1))[0] == 413
    assert call(server, "GET", "/queries/q-missing")[0] == 404
    assert call(server, "POST", "/queries/q-missing/review", {"decision": "maybe"}, headers=alice)[0] == 422
    assert call(server, "POST", "/queries/q-missing/review", {"decision": "approve"}, headers=alice)[0] == 404


@pytest.mark.parametrize("path", ["/queries", "/queries/q-missing/review", "/reviews/rv_x"])
def test_json_of_any_depth_is_a_4xx(server: LocalServer, path: str) -> None:
    for depth in (10, 100_000):
        deep = b"[" * depth + b"]" * depth
        status, _ = call(server, "POST", path, raw=deep)
        assert 400 <= status < 500, (path, depth, status)
        status, _ = call(server, "POST", path, raw=b'{"question": ' + deep + b"}")
        assert 400 <= status < 500, (path, depth, status)


def test_a_lying_or_huge_content_length_is_refused_at_once(server: LocalServer) -> None:
    head = "POST /queries HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
    # Ten gigabytes promised, one byte sent: 413 straight away, nothing allocated or awaited.
    status, headers, payload = raw_exchange(server, head + "Content-Length: 10000000000\n", b"{")
    assert status == 413 and b"10,000,000,000" in payload
    assert headers["connection"] == "close"
    for value in ("abc", "-1", "1e3", "0x10", " ", "5, 6"):
        assert raw_exchange(server, head + f"Content-Length: {value}\n", b"{}")[0] == 400, value
    status, _, _ = raw_exchange(server, head + "Content-Length: 2\nContent-Length: 3\n", b"{}")
    assert status == 400
    assert raw_exchange(server, head + "Transfer-Encoding: chunked\n", b"2\r\n{}\r\n0\r\n\r\n")[0] == 411
    # 100 bytes promised, 10 sent, the socket kept open: refused once the read times out.
    status, _, payload = raw_exchange(server, head + "Content-Length: 100\n", b'{"question"')
    assert status == 400 and b"stopped after" in payload
    # The server still answers afterwards: no thread was left holding it.
    assert call(server, "GET", "/queries/q-missing")[0] == 404


def test_only_localhost_names_are_served(server: LocalServer) -> None:
    port = server.httpd.server_address[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example"):
        status, _, payload = raw_exchange(server, f"GET /queries/q-missing HTTP/1.1\nHost: {host}\n")
        assert status == 400 and b"is not this machine" in payload, host
    assert raw_exchange(server, "GET /queries/q-missing HTTP/1.0\n")[0] == 400  # no Host at all
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"[::1]:{port}"):
        assert raw_exchange(server, f"GET /queries/q-missing HTTP/1.1\nHost: {host}\n")[0] == 404, host


def test_every_response_is_nosniff_and_no_store(server: LocalServer) -> None:
    port = server.httpd.server_address[1]
    requests = [
        f"GET /openapi.json HTTP/1.1\nHost: localhost:{port}\n",  # 200
        f"GET /queries/q-missing HTTP/1.1\nHost: localhost:{port}\n",  # 404 from the function
        f"GET /reviews HTTP/1.1\nHost: localhost:{port}\n",  # an HTML page
        f"GET /nowhere HTTP/1.1\nHost: localhost:{port}\n",  # no route
        f"DELETE /queries HTTP/1.1\nHost: localhost:{port}\n",  # 405
        f"HEAD /queries HTTP/1.1\nHost: localhost:{port}\n",  # 405, no body
        "GET /queries HTTP/1.1\nHost: evil.example\n",  # refused host
        "GET /queries HTTP/1.x\n",  # a malformed request line
    ]
    for head in requests:
        status, headers, _ = raw_exchange(server, head)
        assert headers.get("x-content-type-options") == "nosniff", (head, status)
        assert headers.get("cache-control") == "no-store", (head, status)


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


def test_the_default_local_reviewer_can_sign_in_and_a_non_address_is_named(server: LocalServer) -> None:
    from panelbrain.local.engine import LOCAL_REVIEWER
    from panelbrain.local.signin import LocalSignIn, LocalSignInError

    # GIVEN `panelbrain serve` with its default reviewer WHEN the local user pool is made
    pool = LocalSignIn(server.engine, [LOCAL_REVIEWER])
    # THEN that reviewer signs in with the password it was given
    assert pool.sign_in(LOCAL_REVIEWER, pool.passwords[LOCAL_REVIEWER])
    # AND a reviewer the pool cannot take is named, with what to write instead
    with pytest.raises(LocalSignInError, match=r"'ops@intranet' is not an e-mail address"):
        LocalSignIn(server.engine, ["ops@intranet"])
