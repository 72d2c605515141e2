"""``panelbrain serve``: the API on localhost, over the local engine, so curl works as on AWS.

Requests become API Gateway proxy events for the same functions that deploy: ``/queries`` for
the query API, ``/reviews`` and ``/slack/interactions`` for the review API (the reviewer page,
signed decision links, Slack buttons). Background threads play Lambda's SQS event source for
the poller and EventBridge for scheduled functions (the review sweeper's heartbeats). Extra
local routes: ``GET /openapi.json`` (the query API's OpenAPI document), ``GET /local/status``
(the query queue's depth and the executions running, read-only, for ``panelbrain load``),
``POST /local/ops/{command}`` (what ``panelbrain ops`` runs against this engine: the emulator's
state lives in this process, so the operations run here; JSON only, see
:mod:`panelbrain.ops.operate`), ``POST /local/datasets/{name}/publish`` (what
``panelbrain datasets publish NAME`` runs against this engine: the dataset's local files to the
emulator's datasets bucket, see :mod:`panelbrain.data.remote`),
``GET``/``POST /login`` (sign in to the emulator's reviewer user pool: the session cookie holds
the ID token, see :mod:`panelbrain.local.signin`) and ``POST /queries/{id}/review`` (decide a
waiting review as the signed-in reviewer: the session cookie, or ``Authorization: Bearer`` with
the ID token, is required).

The server listens on loopback for one person's browser and curl, so it also holds the edges a
browser can reach from other sites: it answers only requests whose Host is a localhost name (a
DNS-rebound page carries its own), its own review route takes only JSON (a cross-site form
cannot send that without a preflight, which is refused), every response says ``nosniff`` and
``no-store``, and a request body is read within a declared, bounded length and a timeout, so
no request can make it allocate beyond the limit or hold a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from panelbrain.errors import BadInputError, PanelbrainError
from panelbrain.local.ask import ReviewWaitError, api_gateway_event, open_review
from panelbrain.local.engine import LocalEngine
from panelbrain.local.lambda_rules import ApiIntegrationError, LambdaFunctionError
from panelbrain.local.signin import LOGIN_PATH, LocalSignIn, bearer_or_cookie
from panelbrain.review import auth, render
from panelbrain.review.service import DecisionError

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# After a refusal, what a client may still be sending is read and dropped (so it can read the
# refusal rather than meet a reset) up to this much; then the connection closes.
DRAIN_BYTES = MAX_BODY_BYTES + (1 << 20)
REQUEST_TIMEOUT_S = 10.0  # the longest a socket read may wait for the client
_REVIEW = re.compile(r"^/queries/([A-Za-z0-9_-]{1,64})/review$")
_OPS = re.compile(r"^/local/ops/([a-z-]{1,32})$")
_PUBLISH = re.compile(r"^/local/datasets/([a-z0-9_]{1,64})/publish$")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# On every response: never content-sniffed into HTML or script, never kept by a cache.
_ALWAYS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_HTML = "text/html; charset=utf-8"


def _local_host(value: str | None) -> bool:
    """Whether a Host header (or an Origin's authority) names this machine, any port."""
    if not value:
        return False
    host = value.strip().lower()
    # "[::1]:3000" keeps its brackets; "localhost:3000" loses its port.
    name = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return name in _LOCAL_HOSTS


class _Refused(Exception):  # noqa: N818 - internal control flow, never leaves this module
    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class LocalServer:
    """An HTTP server and a queue poller over one running engine; ``stop()`` ends both."""

    def __init__(
        self,
        engine: LocalEngine,
        host: str = "127.0.0.1",
        port: int = 3000,
        poll_s: float = 0.1,
        schedule_s: float | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        """``schedule_s`` runs every scheduled function at that period instead of the
        template's (tests run the review sweeper every fraction of a second);
        ``request_timeout_s`` bounds every wait on a client's socket."""
        self.engine = engine
        self.poll_s = poll_s
        self.request_timeout_s = request_timeout_s
        self._stopping = threading.Event()
        # `panelbrain ops pause-intake`: as a disabled event source mapping, the poller thread
        # leaves the queue alone and the questions wait in it.
        from panelbrain.ops.operate import Switch

        self.intake = Switch()
        self._round = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.schedule_errors: list[str] = []
        # Links in e-mails and Slack messages point at this server, not at API Gateway.
        os.environ["REVIEW_BASE_URL"] = self.url
        from panelbrain.functions.review_common import service

        service.cache_clear()
        self.sign_in = LocalSignIn(engine, self.reviewers())
        # The review function verifies sessions against the emulator pool's keys (a file here).
        os.environ["REVIEWER_JWKS_URL"] = self.sign_in.jwks_url
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
        sys.stderr.write(self.sign_in.banner())
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        # Let accepted questions finish: the poller drains the queue, then running pipelines end.
        deadline = time.monotonic() + 60
        while (
            self.intake.enabled
            and self.engine.clients["sqs"].get_queue_attributes(
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
            # One round at a time with the intake switch (``ops``): once a pause has returned,
            # no round is under way and the next sees it (AWS's mapping may still deliver a
            # batch while it is Disabling). What handlers write (their log lines, EMF metric
            # lines) the engine keeps per invocation, as CloudWatch Logs would.
            with self._round:
                paused = not self.intake.enabled
                delivered = None if paused else self.engine.deliver("QueryQueue", "PollerFunction")
            if delivered is None:
                self._stopping.wait(self.poll_s)

    def _schedule(self, function: str, period_s: float) -> None:
        while not self._stopping.wait(period_s):
            try:
                self.engine.tick(function)
            except PanelbrainError as exc:  # keep ticking, as EventBridge would; say why
                self.schedule_errors.append(exc.message)
                sys.stderr.write(f"{function}: {exc.message}\n")

    def call_api(
        self, method: str, path: str, body: str | None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """The route's integration, as the template's OpenAPI body declares it (the function and
        qualifier its URI names), invoked through the engine's Lambda rules."""
        event = api_gateway_event(method, path, body, headers=headers)
        # What API Gateway adds: the stage's variables (the sign-in settings) and the scheme the
        # client used (plain http here, so cookies are not marked Secure).
        event["stageVariables"] = self.sign_in.stage_variables()
        for field in ("headers", "multiValueHeaders"):
            given = {k: v for k, v in (event.get(field) or {}).items() if k.lower() != "x-forwarded-proto"}
            event[field] = {**given, "X-Forwarded-Proto": "http" if field == "headers" else ["http"]}
        response = self.engine.api_call(event)
        # A REST API proxy response may carry its headers in either field (Powertools answers a
        # multi-value event with multiValueHeaders); API Gateway merges both. Set-Cookie keeps
        # every value (one per line, sent as one header each).
        multi = response.get("multiValueHeaders") or {}
        headers = {k: str(v[-1]) for k, v in multi.items() if v}
        headers.update({k: str(v) for k, v in (response.get("headers") or {}).items()})
        if multi.get("Set-Cookie"):
            headers["Set-Cookie"] = "\n".join(str(c) for c in multi["Set-Cookie"])
        return int(response["statusCode"]), headers, str(response.get("body") or "")

    def openapi(self) -> str:
        """One document for the whole API: the query routes, the review routes and /health."""
        from panelbrain.functions import api, health, review_api

        document = json.loads(api.app.get_openapi_json_schema(title="panelbrain", version="0.1.0"))
        reviews = json.loads(review_api.app.get_openapi_json_schema(title="panelbrain", version="0.1.0"))
        document["paths"].update(reviews["paths"])
        document["paths"].update(health.OPENAPI_PATHS)
        for name, schema in reviews.get("components", {}).get("schemas", {}).items():
            document.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, schema)
        return json.dumps(document)

    def status(self) -> dict[str, Any]:
        """What is waiting: the query queue (visible, and received but not deleted) and the
        pipeline executions running. Read-only; ``panelbrain load`` samples it."""
        attributes = self.engine.clients["sqs"].get_queue_attributes(
            QueueUrl=self.engine.template.resolve({"Ref": "QueryQueue"}),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        # The emulator's record, local only: AWS refuses ListExecutions for an EXPRESS machine
        # (deployed, read the ExecutionsStarted/ExecutionsSucceeded metrics instead), and pages it:
        # https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListExecutions.html
        pages = (
            self.engine.clients["stepfunctions"]
            .get_paginator("list_executions")
            .paginate(
                stateMachineArn=self.engine.state_machine_arn("QueryPipelineStateMachine"),
                statusFilter="RUNNING",
            )
        )
        running = [execution for page in pages for execution in page["executions"]]
        return {
            "queue": {
                "visible": int(attributes["ApproximateNumberOfMessages"]),
                "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            },
            "executions_running": len(running),
        }

    def ops(self, command: str, body: str | None) -> dict[str, Any]:
        """Run one ``panelbrain ops`` operation on this engine; ``body`` holds its arguments."""
        from panelbrain.ops import operate

        try:
            arguments = json.loads(body or "{}")
        except (ValueError, RecursionError):
            raise BadInputError("the body is not JSON: send the command's arguments as an object") from None
        if not isinstance(arguments, dict):
            raise BadInputError("the body must be a JSON object of the command's arguments")
        target = operate.engine_target(self.engine, self.intake, where=f"local engine at {self.url}")
        if command != "intake":
            return operate.run(target, command, arguments)
        with self._round:  # between two of the poller's rounds
            return operate.run(target, command, arguments)

    def publish_dataset(self, name: str) -> dict[str, Any]:
        """Publish the dataset ``name`` from local files to this engine's datasets bucket (the
        functions' DATASETS_BUCKET), as ``datasets publish --stack`` does to a deployed one."""
        from panelbrain.data.dictionary import local_dataset_names

        if name not in local_dataset_names():
            raise BadInputError(
                f"no dataset {name!r} in local files; there are {', '.join(local_dataset_names())}"
            )
        with self._round:  # between two of the poller's rounds, as an intake switch
            return self.engine.publish_dataset(name)

    def reviewers(self) -> list[str]:
        """The allow-list ``serve --reviewers`` gave, in the order given."""
        given = str(self.engine.template.parameters.get("Reviewers", ""))
        return [r.strip() for r in given.split(",") if r.strip()]

    def review(self, query_id: str, body: str | None, session: str | None) -> tuple[int, dict[str, Any]]:
        """Decide the query's waiting review as the reviewer ``session`` (an ID token) proves."""
        usage = 'body must be {"decision": "approve"} or {"decision": "reject"}, optionally with "comment"'
        if not session:
            return 401, {
                "error": "sign in first: POST /login (form username, password) sets the session cookie; "
                "or send Authorization: Bearer <ID token>"
            }
        try:
            principal = self.sign_in.principal(session)
        except auth.AuthError as exc:
            return exc.status, {"error": exc.message}
        try:
            document = json.loads(body or "{}")
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return 400, {"error": f"the body is not JSON: {usage}"}
        if not isinstance(document, dict) or document.get("decision") not in ("approve", "reject"):
            return 422, {"error": usage}
        if "approver" in document:
            return 422, {"error": f'"approver" is whoever signed in ({principal.identity}): drop the field'}
        comment = document.get("comment", "")
        if not isinstance(comment, str):
            return 422, {"error": f'"comment" must be text: {usage}'}
        decision = document["decision"]
        status, _, _ = self.call_api("GET", f"/queries/{query_id}", None)
        if status == 404:
            return 404, {"error": f"no query {query_id!r}: POST /queries returns the id to use"}
        from panelbrain.functions.review_common import service

        try:
            waiting = open_review(query_id, wait_s=2.0)
            # The route, not the client, names the channel: a signed-in reviewer over HTTP.
            decided = service().decide(
                waiting.review_id, decision, principal=principal, comment=comment, channel="web"
            )
        except ReviewWaitError as exc:
            return 409, {"error": exc.message}
        except DecisionError as exc:
            return exc.status, {"error": exc.message}
        return 202, {
            "query_id": query_id,
            "decision": decision,
            "approver": decided.decision.approver if decided.decision else principal.identity,
            "status_url": f"/queries/{query_id}",
        }

    def login(self, body: str | None) -> tuple[int, dict[str, str], str]:
        """The local sign-in form's POST: a session cookie and off to the reviewer page."""
        form = {k: v[0] for k, v in parse_qs(body or "", keep_blank_values=True).items()}
        username = form.get("username", "")
        try:
            token = self.sign_in.sign_in(username, form.get("password", ""))
            self.sign_in.principal(token)  # the same checks every later request makes
        except auth.AuthError as exc:
            page = render.login_page(action_url=LOGIN_PATH, username=username, error=exc.message)
            return exc.status, {"Content-Type": _HTML}, page
        claims = self.sign_in.verifier.verify(token)
        cookie = auth.set_cookie(
            auth.SESSION_COOKIE, token, secure=False, max_age=int(float(claims["exp"]) - time.time())
        )
        page = render.result_page(
            "Signed in", "Signed in.", ok=True, next_url="/reviews", next_label="Reviews"
        )
        return 303, {"Content-Type": _HTML, "Location": "/reviews", "Set-Cookie": cookie}, page


def _handler_for(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "panelbrain-local"
        # StreamRequestHandler puts this on the socket: no read or write waits longer.
        timeout = server.request_timeout_s

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            payload = body.encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {}), **_ALWAYS}.items():
                # Set-Cookie arrives one cookie per line (call_api): one header each.
                for line in value.split("\n") if key.lower() == "set-cookie" else [value]:
                    self.send_header(key, line)
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        def _content_length(self) -> int:
            """The declared body length, refused unless one plain number within the limit."""
            if self.headers.get("Transfer-Encoding"):
                raise _Refused(411, "send the body with a Content-Length, not Transfer-Encoding")
            values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
            if not values:
                return 0
            value = values.pop() if len(values) == 1 else ""
            if not _CONTENT_LENGTH.fullmatch(value):
                raise _Refused(400, f"Content-Length must be one whole number of bytes, got {sorted(values)}")
            length = int(value)
            if length > MAX_BODY_BYTES:
                raise _Refused(413, f"body larger than {MAX_BODY_BYTES:,} bytes (Content-Length {length:,})")
            return length

        def _body(self) -> str | None:
            length = self._content_length()
            if not length:
                return None
            self._unread = 0  # read now, or the connection closes
            try:
                data = self.rfile.read(length)
            except TimeoutError:
                data = b""
            if len(data) < length:
                raise _Refused(
                    400,
                    f"the body stopped after {len(data):,} of the {length:,} bytes its Content-Length "
                    f"declared (waited {server.request_timeout_s:g} s)",
                )
            return data.decode("utf-8", errors="replace")

        def _refuse(self, refused: _Refused) -> None:
            self.close_connection = True
            self._send(refused.status, json.dumps({"error": refused.message}), refused.headers)
            # The refusal is sent at once; what the client still sends is dropped in small
            # reads, never more than DRAIN_BYTES and never past the socket timeout.
            left = min(self._unread, DRAIN_BYTES)
            with contextlib.suppress(OSError):
                while left > 0 and (chunk := self.rfile.read1(min(left, 1 << 16))):
                    left -= len(chunk)

        def _check_host(self) -> None:
            if not _local_host(self.headers.get("Host")):
                raise _Refused(
                    400,
                    f"Host {self.headers.get('Host')!r} is not this machine: the local server answers "
                    "only localhost, 127.0.0.1 or [::1]",
                )

        def _check_json_from_this_machine(self, posted: str, sent: str) -> None:
            """Refuse a POST from a web page (403) or in anything but JSON (415): ``posted`` and
            ``sent`` name what was posted in the two refusals."""
            # curl sends no Origin; a browser page does, and no page of this server calls these
            # routes. (The reviewer page's own forms send "null": their Referrer-Policy is
            # no-referrer. They post to /reviews/{id}, signed, and are not checked here.)
            origin = self.headers.get("Origin")
            if origin is not None and not _local_host(origin.partition("://")[2]):
                raise _Refused(403, f"{posted} posted from a web page ({origin[:100]!r}) is refused")
            media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if media != "application/json":
                # A browser sends a cross-site form or text/plain without asking first; JSON
                # needs a preflight (OPTIONS), which this server refuses.
                raise _Refused(
                    415, f"send the {sent} as JSON with Content-Type: application/json, not {media!r}"
                )

        def _local_review(self, query_id: str) -> None:
            self._check_json_from_this_machine("a decision", "decision")
            session = bearer_or_cookie(dict(self.headers.items()))
            status, document = server.review(query_id, self._body(), session)
            self._send(status, json.dumps(document))

        def _ops(self, command: str) -> None:
            # Operations change state (redrive, replay, pause).
            self._check_json_from_this_machine("an operation", "arguments")
            self._send(200, json.dumps(server.ops(command, self._body()), default=str))

        def _publish(self, name: str) -> None:
            # Changes what every later answer reads.
            self._check_json_from_this_machine("a publish", "request")
            self._body()
            self._send(200, json.dumps(server.publish_dataset(name)))

        def _login(self, method: str) -> None:
            if method == "GET":
                self._send(200, render.login_page(action_url=LOGIN_PATH), {"Content-Type": _HTML})
                return
            # A sign-in posted from another site would sign this browser in as someone else.
            origin = self.headers.get("Origin")
            if origin is not None and origin != "null" and not _local_host(origin.partition("://")[2]):
                raise _Refused(403, f"a sign-in posted from another site ({origin[:100]!r}) is refused")
            status, headers, page = server.login(self._body())
            self._send(status, page, headers)

        def _declared(self) -> int:
            value = (self.headers.get("Content-Length") or "").strip()
            return int(value) if self.command == "POST" and _CONTENT_LENGTH.fullmatch(value) else 0

        def _route(self, method: str) -> None:
            self._unread = self._declared()
            try:
                self._check_host()
                if method == "POST" and (match := _REVIEW.match(self.path)):
                    self._local_review(match.group(1))
                    return
                if method == "POST" and (match := _OPS.match(self.path)):
                    self._ops(match.group(1))
                    return
                if method == "POST" and (match := _PUBLISH.match(self.path)):
                    self._publish(match.group(1))
                    return
                if self.path.partition("?")[0] == LOGIN_PATH:
                    self._login(method)
                    return
                body = self._body() if method == "POST" else None
                if method == "GET" and self.path == "/openapi.json":
                    self._send(200, server.openapi())
                elif method == "GET" and self.path == "/local/status":
                    self._send(200, json.dumps(server.status()))
                elif _routed(method, self.path):
                    status, headers, text = server.call_api(
                        method, self.path, body, dict(self.headers.items())
                    )
                    self._send(status, text, headers)
                else:
                    self._send(404, json.dumps({"error": f"no route {method} {self.path}"}))
            except _Refused as refused:
                self._refuse(refused)
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
            # A malformed request line or headers: answered as JSON, with the headers every
            # response carries (http.server would leave out the status line and headers of a
            # request too broken to name its HTTP version).
            self.close_connection = True
            if self.request_version == "HTTP/0.9":
                self.request_version = "HTTP/1.0"
            with contextlib.suppress(OSError):
                self._send(code, json.dumps({"error": message or HTTPStatus(code).phrase}))

        def do_HEAD(self) -> None:
            self.send_response(405)
            for key, value in {"Allow": "GET, POST", **_ALWAYS}.items():
                self.send_header(key, value)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def _routed(method: str, path: str) -> bool:
    """The API's own routes (what API Gateway would pass to a function)."""
    bare = path.partition("?")[0]
    return (
        (method, bare)
        in (
            ("POST", "/queries"),
            ("GET", "/reviews"),
            ("POST", "/slack/interactions"),
            ("GET", "/auth/callback"),
            ("POST", "/auth/signout"),
            ("GET", "/health"),
        )
        or (method == "GET" and re.fullmatch(r"/(queries|conversations)/[^/]+", bare) is not None)
        or (method in ("GET", "POST") and re.fullmatch(r"/reviews/[^/]+", bare) is not None)
    )
