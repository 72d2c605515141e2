"""``panelbrain load`` against a real local server, and against stand-ins that misbehave.

The real run goes through ``panelbrain serve``'s own server class on a free loopback port (the
engine, SQS, the poller, the pipeline); the stand-ins are small HTTP servers that stall, refuse
or never finish, so each kind of outcome the report counts is produced on purpose.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panelbrain.errors import BadInputError
from panelbrain.local.engine import LocalEngine
from panelbrain.local.server import LocalServer
from panelbrain.ops.load import (
    OUTCOMES,
    LoadConfig,
    LoadRun,
    arrival_offsets,
    default_questions,
    loopback_url,
    plot,
)
from tests.e2e.reviewing import LoopbackHttp, QuietHandler

DOCUMENT_FIELDS = {
    "url",
    "arrivals",
    "rate_per_s",
    "duration_s",
    "sent",
    "accepted",
    "outcomes",
    "accounted",
    "cached",
    "errors_by_kind",
    "rates_per_s",
    "latency_s",
    "queue",
    "machine",
    "points",
}


@pytest.fixture(scope="module")
def serve() -> Iterator[LocalServer]:
    with LocalEngine.running(parameters={"Reviewers": "alice@example.com"}) as engine:
        server = LocalServer(engine, port=0, poll_s=0.02).start()  # port 0: any free port
        yield server
        server.stop()


@pytest.fixture(scope="module")
def real_run(serve: LocalServer) -> dict[str, Any]:
    # GIVEN a running server WHEN 3 s of fixed arrivals at 2/s are offered
    return LoadRun(LoadConfig(rate=2, duration_s=3, url=serve.url, arrivals="fixed", timeout_s=60)).run()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", "load", *args], capture_output=True, text=True, timeout=120
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_query_sent_through_serve_is_accounted_for_and_answered(real_run: dict[str, Any]) -> None:
    # THEN all six were sent, each ended in exactly one outcome, and the pipeline answered each
    assert real_run["sent"] == 6
    assert real_run["accounted"] is True
    assert sum(real_run["outcomes"].values()) == real_run["sent"]
    assert real_run["outcomes"]["answered"] == 6
    assert real_run["latency_s"]["end_to_end"]["n"] == 6
    assert real_run["errors_by_kind"] == {}
    # AND the queue depth came from the server, not only from the client's count
    assert real_run["queue"]["source"].startswith("server")
    assert any("queue_visible" in sample for sample in real_run["queue"]["samples"])


def test_cli_json_document_and_plot(serve: LocalServer, tmp_path: Path) -> None:
    # Questions nobody asked in this module yet: a repeat would come from the result cache.
    questions = tmp_path / "questions.txt"
    questions.write_text(
        "# two questions\nWhat share say religion is very important among men by urban?\n\n"
        "What share oppose a ban on abortion among women in Alberta by education?\n"
    )
    target = tmp_path / "load.png"
    result = _cli(
        "--rate", "2", "--duration", "1", "--arrivals", "fixed", "--url", serve.url,
        "--questions", str(questions), "--plot", str(target), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document.keys() >= DOCUMENT_FIELDS
    assert set(document["outcomes"]) == {
        "answered",
        "needs_review",
        "rejected",
        "failed",
        "errors",
        "timed_out",
    }
    assert {"p50", "p95", "p99", "max", "n"} <= document["latency_s"]["end_to_end"].keys()
    assert {"p50", "p95", "p99", "max", "n"} <= document["latency_s"]["accepted"].keys()
    assert {"offered", "accepted", "settled"} == document["rates_per_s"].keys()
    assert document["sent"] == 2 and document["accounted"] and document["cached"] == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_the_plot_falls_back_to_svg_without_matplotlib(
    real_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    written = plot(real_run, tmp_path / "load.png")
    assert written == tmp_path / "load.svg"
    text = written.read_text()
    assert text.startswith("<svg") and text.count("<circle") == real_run["outcomes"]["answered"]


@pytest.mark.parametrize(
    "url",
    ["http://example.com:3000", "http://10.0.0.1:3000", "http://localhost.example.com", "https://localhost"],
)
def test_a_url_off_this_machine_is_refused_before_any_request(url: str) -> None:
    result = _cli("--rate", "1", "--duration", "1", "--url", url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --url ")
    assert "panelbrain serve" in result.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:3000/", "http://localhost:8080", "http://[::1]:3000", "http://127.0.0.2"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert loopback_url(url) == url.rstrip("/")


def test_an_unreachable_server_exits_non_zero_saying_how_to_start_one() -> None:
    port = _free_port()  # nothing listens there now
    result = _cli("--rate", "1", "--duration", "1", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"error: no server answers at http://127.0.0.1:{port}" in result.stderr
    assert f"panelbrain serve --port {port}" in result.stderr


# -- stand-ins -----------------------------------------------------------------------------------


class StandIn:
    """An HTTP server that looks like ``serve`` at /openapi.json and answers the rest as told."""

    def __init__(self, post: Any, get: Any, *, looks_like_serve: bool = True) -> None:
        stand_in = self
        self.posts = 0
        self.lock = threading.Lock()

        class Handler(QuietHandler):
            def _json(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
                if self.path == "/openapi.json" and looks_like_serve:
                    self._json(200, {"paths": {"/queries": {}}})
                elif self.path == "/local/status":
                    self._json(404, {"error": "no route"})
                else:
                    self._json(*get(self.path))

            def do_POST(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stand_in.lock:
                    stand_in.posts += 1
                    index = stand_in.posts
                answer = post(index)
                if answer is None:  # hang up without a word
                    self.close_connection = True
                    return
                self._json(*answer)

        self.server = LoopbackHttp(Handler)

    @property
    def url(self) -> str:
        return self.server.base

    def close(self) -> None:
        self.server.close()


@contextlib.contextmanager
def stand_in(post: Any, get: Any, *, looks_like_serve: bool = True) -> Iterator[StandIn]:
    server = StandIn(post, get, looks_like_serve=looks_like_serve)
    try:
        yield server
    finally:
        server.close()


def test_arrivals_do_not_wait_for_a_slow_server() -> None:
    all_arrived = threading.Barrier(4, timeout=20)

    def post(index: int) -> tuple[int, Any]:
        # A closed-loop client would wait for this answer before sending the next: the
        # barrier would break and the query be refused.
        try:
            all_arrived.wait()
        except threading.BrokenBarrierError:
            return 503, {"error": "a query was held back until an earlier one was answered"}
        return 202, {"query_id": f"q-{index}", "status": "queued"}

    # GIVEN a server that answers no POST until four have arrived WHEN 4 are due within 1 s
    with stand_in(post, lambda path: (200, {"status": "answered"})) as server:
        config = LoadConfig(rate=4, duration_s=1, url=server.url, arrivals="fixed", timeout_s=30)
        document = LoadRun(config).run()
    # THEN all four were sent on schedule, so all four were answered
    assert document["outcomes"]["answered"] == 4, document["errors_by_kind"]
    assert document["queue"]["source"] == "client only"  # this server has no /local/status


def test_refusals_count_by_status_and_unfinished_queries_time_out() -> None:
    def post(index: int) -> tuple[int, Any]:
        return (
            (503, {"error": "busy"}) if index % 2 else (202, {"query_id": f"q-{index}", "status": "queued"})
        )

    # GIVEN a server refusing every other POST and never finishing the rest
    with stand_in(post, lambda path: (200, {"status": "queued"})) as server:
        config = LoadConfig(rate=4, duration_s=1, url=server.url, arrivals="fixed", timeout_s=0.5)
        document = LoadRun(config).run()
    # THEN two are errors of that status, two timed out still queued, none lost
    assert document["errors_by_kind"] == {"POST http 503": 2}
    assert document["outcomes"]["errors"] == 2
    assert document["outcomes"]["timed_out"] == 2
    assert document["timed_out_last_status"] == {"queued": 2}
    assert document["accounted"] and set(document["outcomes"]) == {*OUTCOMES[:4], "errors", "timed_out"}


def test_a_server_that_hangs_up_counts_as_a_connection_error() -> None:
    with stand_in(lambda index: None, lambda path: (404, {})) as server:
        config = LoadConfig(rate=2, duration_s=1, url=server.url, arrivals="fixed", timeout_s=5)
        document = LoadRun(config).run()
    assert document["errors_by_kind"] == {"POST connection (RemoteDisconnected)": 2}
    assert document["accepted"] == 0 and document["accounted"]


def test_a_server_that_is_not_panelbrain_is_named() -> None:
    # GIVEN something else listening on the port (its /openapi.json is a 404)
    with stand_in(lambda index: (404, {}), lambda path: (404, {}), looks_like_serve=False) as server:
        result = _cli("--rate", "1", "--duration", "1", "--url", server.url)
    assert result.returncode == 1
    assert "no /queries route: it is not `panelbrain serve`" in result.stderr


def test_the_schedule_is_fixed_before_the_first_request() -> None:
    assert arrival_offsets(4, 1, "fixed", seed=1) == [0.0, 0.25, 0.5, 0.75]
    poisson = arrival_offsets(2.32, 60, "poisson", seed=12)
    assert poisson == arrival_offsets(2.32, 60, "poisson", seed=12)  # the seed fixes it
    assert poisson != arrival_offsets(2.32, 60, "poisson", seed=13)
    assert all(0 < a < b < 60 for a, b in itertools.pairwise(poisson))


def test_bad_settings_are_refused_with_the_option_named() -> None:
    with pytest.raises(BadInputError, match="--arrivals must be one of poisson, fixed"):
        LoadConfig(rate=1, duration_s=1, arrivals="bursty").check()
    with pytest.raises(BadInputError, match="--rate must be in"):
        LoadConfig(rate=0, duration_s=1).check()
    assert len(set(default_questions())) == len(default_questions())
