"""``panelbrain serve``: the API on localhost, over the local engine, so curl works as on AWS.

Requests become API Gateway proxy events for the same functions that deploy: ``/queries`` for
the query API, ``/reviews`` and ``/slack/interactions`` for the review API (the reviewer page,
signed decision links, Slack buttons). Background threads play Lambda's SQS event source for
the poller and EventBridge for scheduled functions (the review sweeper's heartbeats). Extra
local routes: ``GET /openapi.json`` (the query API's OpenAPI document) and
``POST /queries/{id}/review`` (decide a waiting review as the local reviewer).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from panelbrain.errors import PanelbrainError
from panelbrain.local.ask import ReviewWaitError, api_gateway_event, decide
from panelbrain.local.engine import LocalEngine
from panelbrain.local.lambda_rules import ApiIntegrationError, LambdaFunctionError
from panelbrain.review.service import DecisionError

_CAPTURE = threading.Lock()
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_REVIEW = re.compile(r"^/queries/([A-Za-z0-9_-]{1,64})/review$")


class LocalServer:
    """An HTTP server and a queue poller over one running engine; ``stop()`` ends both."""

    def __init__(
        self,
        engine: LocalEngine,
        host: str = "127.0.0.1",
        port: int = 3000,
        poll_s: float = 0.1,
        schedule_s: float | None = None,
    ) -> None:
        """``schedule_s`` runs every scheduled function at that period instead of the
        template's (tests run the review sweeper every fraction of a second)."""
        self.engine = engine
        self.poll_s = poll_s
        self._stopping = threading.Event()
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.schedule_errors: list[str] = []
        # Links in e-mails and Slack messages point at this server, not at API Gateway.
        os.environ["REVIEW_BASE_URL"] = self.url
        from panelbrain.functions.review_common import service

        service.cache_clear()
        self._threads = [
            threading.Thread(target=self.httpd.serve_forever, name="panelbrain-http", daemon=True),
            threading.Thread(target=self._poll, name="panelbrain-poller", daemon=True),
        ] + [
            threading.Thread(
                target=self._schedule,
                args=(name, schedule_s or period),
                name=f"panelbrain-{name}",
                daemon=True,
            )
            for name, period in engine.schedules().items()
        ]

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalServer:
        for thread in self._threads:
            thread.start()
        return self

    @contextlib.contextmanager
    def _captured(self) -> Iterator[io.StringIO]:
        """What handlers print (EMF metric lines) while this runs. ``redirect_stdout`` swaps one
        process-wide stream: two threads overlapping would restore each other's buffer and
        lose lines, so the server's threads take turns."""
        with _CAPTURE, contextlib.redirect_stdout(io.StringIO()) as buffer:
            yield buffer

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        # Let accepted questions finish: the poller drains the queue, then running pipelines end.
        deadline = time.monotonic() + 60
        while (
            self.engine.clients["sqs"].get_queue_attributes(
                QueueUrl=self.engine.template.resolve({"Ref": "QueryQueue"}),
                AttributeNames=["ApproximateNumberOfMessages"],
            )["Attributes"]["ApproximateNumberOfMessages"]
            != "0"
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.engine.settle()

    def _poll(self) -> None:
        while not self._stopping.is_set():
            with self._captured():
                delivered = self.engine.deliver("QueryQueue", "PollerFunction")
            if delivered is None:
                self._stopping.wait(self.poll_s)

    def _schedule(self, function: str, period_s: float) -> None:
        while not self._stopping.wait(period_s):
            with self._captured() as emitted:
                try:
                    self.engine.tick(function)
                except PanelbrainError as exc:  # keep ticking, as EventBridge would; say why
                    self.schedule_errors.append(exc.message)
                    sys.stderr.write(f"{function}: {exc.message}\n")
            self.engine.metric_lines.extend(line for line in emitted.getvalue().splitlines() if line)

    def call_api(
        self, method: str, path: str, body: str | None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """The route's integration, as the template's OpenAPI body declares it (the function and
        qualifier its URI names), invoked through the engine's Lambda rules."""
        with self._captured() as emitted:
            response = self.engine.api_call(api_gateway_event(method, path, body, headers=headers))
        self.engine.metric_lines.extend(line for line in emitted.getvalue().splitlines() if line)
        # A REST API proxy response may carry its headers in either field (Powertools answers a
        # multi-value event with multiValueHeaders); API Gateway merges both.
        headers = {k: str(v[-1]) for k, v in (response.get("multiValueHeaders") or {}).items() if v}
        headers.update({k: str(v) for k, v in (response.get("headers") or {}).items()})
        return int(response["statusCode"]), headers, str(response.get("body") or "")

    def openapi(self) -> str:
        """One document for the whole API: the query routes and the review routes."""
        from panelbrain.functions import api, review_api

        document = json.loads(api.app.get_openapi_json_schema(title="panelbrain", version="0.1.0"))
        reviews = json.loads(review_api.app.get_openapi_json_schema(title="panelbrain", version="0.1.0"))
        document["paths"].update(reviews["paths"])
        for name, schema in reviews.get("components", {}).get("schemas", {}).items():
            document.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, schema)
        return json.dumps(document)

    def review(self, query_id: str, body: str | None) -> tuple[int, dict[str, Any]]:
        try:
            decision = json.loads(body or "{}").get("decision")
        except (json.JSONDecodeError, AttributeError):
            decision = None
        if decision not in ("approve", "reject"):
            return 422, {"error": 'body must be {"decision": "approve"} or {"decision": "reject"}'}
        try:
            decide(self.engine, query_id, decision, wait_s=2.0)
        except ReviewWaitError as exc:
            return 409, {"error": exc.message}
        except DecisionError as exc:
            return exc.status, {"error": exc.message}
        return 202, {"query_id": query_id, "decision": decision, "status_url": f"/queries/{query_id}"}


def _handler_for(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "panelbrain-local"

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            payload = body.encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> str | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                # Read it all first: refusing mid-upload leaves the client with a broken pipe.
                while length > 0:
                    length -= len(self.rfile.read(min(length, 1 << 20)) or b"x" * length)
                raise _TooLarge
            return self.rfile.read(length).decode("utf-8", errors="replace") if length else None

        def _route(self, method: str) -> None:
            try:
                body = self._body() if method == "POST" else None
                if method == "GET" and self.path == "/openapi.json":
                    self._send(200, server.openapi())
                elif method == "POST" and (match := _REVIEW.match(self.path)):
                    status, document = server.review(match.group(1), body)
                    self._send(status, json.dumps(document))
                elif _routed(method, self.path):
                    status, headers, text = server.call_api(
                        method, self.path, body, dict(self.headers.items())
                    )
                    self._send(status, text, headers)
                else:
                    self._send(404, json.dumps({"error": f"no route {method} {self.path}"}))
            except _TooLarge:
                self._send(413, json.dumps({"error": f"body larger than {MAX_BODY_BYTES:,} bytes"}))
            except ApiIntegrationError as exc:  # what API Gateway answers, and why (it logs why)
                sys.stderr.write(f"{self.command} {self.path}: {exc.message}\n")
                message = "Internal server error" if exc.status >= 500 else "Not Found"
                self._send(exc.status, json.dumps({"message": message, "error": exc.message}))
            except LambdaFunctionError as exc:  # a proxy integration's function failed: 502
                sys.stderr.write(f"{self.command} {self.path}: {exc.message}\n")
                self._send(502, json.dumps({"message": "Internal server error"}))
            except PanelbrainError as exc:
                status = (
                    HTTPStatus.UNPROCESSABLE_ENTITY
                    if exc.exit_code == 2
                    else HTTPStatus.INTERNAL_SERVER_ERROR
                )
                self._send(status, json.dumps(exc.to_dict()))
            except Exception as exc:
                sys.stderr.write(f"{self.command} {self.path}: {type(exc).__name__}: {exc}\n")
                self._send(502, json.dumps({"message": "Internal server error"}))

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def _not_allowed(self) -> None:
            self._send(
                405, json.dumps({"error": f"method {self.command} is not allowed"}), {"Allow": "GET, POST"}
            )

        do_PUT = do_DELETE = do_PATCH = do_TRACE = do_OPTIONS = do_CONNECT = _not_allowed  # noqa: N815

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server answers an unknown method with 501, a server error; API Gateway says
            # the client asked for something this API does not do.
            if code == HTTPStatus.NOT_IMPLEMENTED:
                self._not_allowed()
                return
            super().send_error(code, message, explain)

        def do_HEAD(self) -> None:
            self.send_response(405)
            self.send_header("Allow", "GET, POST")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def _routed(method: str, path: str) -> bool:
    """The API's own routes (what API Gateway would pass to a function)."""
    bare = path.partition("?")[0]
    return (
        (method, bare) in (("POST", "/queries"), ("GET", "/reviews"), ("POST", "/slack/interactions"))
        or (method == "GET" and re.fullmatch(r"/queries/[^/]+", bare) is not None)
        or (method in ("GET", "POST") and re.fullmatch(r"/reviews/[^/]+", bare) is not None)
    )


class _TooLarge(Exception):  # noqa: N818 - internal control flow, never leaves this module
    pass
