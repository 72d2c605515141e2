"""What several command groups share: the two consoles, the common options, JSON output and the
parsing of ``--latency`` and ``--se``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from panelbrain.errors import BadInputError, PanelbrainError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

LOCAL_URL = "http://127.0.0.1:3000"  # where `panelbrain serve` listens by default
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

JsonOption = Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout.")]
SeOption = Annotated[
    str,
    typer.Option(
        "--se",
        help="95 % intervals of weighted estimates: calibrated (R survey's raked design, the "
        "default) or fixed (the weights taken as given, as before issue 11).",
    ),
]
DatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="Dataset name (see `panelbrain datasets`).")
]


def emit_json(document: Any) -> None:
    """Write ``document`` as the one JSON document of ``--json`` on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str, allow_nan=False) + "\n")


@contextmanager
def stack_errors(stack: str, preposition: str = "on") -> Iterator[None]:
    """AWS's refusals ("AWS refused OPERATION on stack NAME: CODE: MESSAGE") and an unreachable
    AWS as errors that name the stack, never a botocore traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise PanelbrainError(
            f"AWS refused {exc.operation_name} {preposition} stack {stack}: "
            f"{error.get('Code')}: {error.get('Message')}"
        ) from None
    except BotoCoreError as exc:
        raise PanelbrainError(f"cannot reach AWS for stack {stack}: {exc}") from None


def post_to_serve(
    url: str,
    path: str,
    body: dict[str, Any],
    *,
    error: type[PanelbrainError],
    unreachable: str,
    route: str,
    failed: str,
    timeout_s: float,
) -> dict[str, Any]:
    """POST ``body`` to ``path`` of the ``panelbrain serve`` at ``url`` (on this machine) and
    return the JSON document it answers.

    A URL off this machine or a 4xx answer is the caller's bad input; the caller's ``error``
    says that no server answers (then ``unreachable``: what to do instead), that it has no
    ``route`` route (an older server), or that it failed ``failed``.
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
        raise BadInputError(f"--url must be http:// on this machine (127.0.0.1 or localhost), got {url!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
    try:
        connection.request(
            "POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        status, raw = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise error(
            f"no `panelbrain serve` answers at {url} ({type(exc).__name__}: {exc}): {unreachable}"
        ) from None
    finally:
        connection.close()
    try:
        document: dict[str, Any] = json.loads(raw or b"{}")
    except ValueError:
        document = {"message": raw[:200].decode(errors="replace")}
    if status == 200:
        return document
    message = str(document.get("message") or document.get("error") or f"HTTP {status}")
    if status == 404:
        raise error(f"{url} has no {route} route: it is not a `panelbrain serve` of this version")
    if 400 <= status < 500:
        raise BadInputError(message)
    raise error(f"the server at {url} failed {failed}: {message}")


def parse_latency(text: str | None) -> float:
    """``--latency seed[:SCALE]`` as the scale of the seed's model latency (0 when not given)."""
    if text is None:
        return 0.0
    kind, _, scale = text.partition(":")
    if kind != "seed":
        raise BadInputError(f"--latency must be seed or seed:SCALE, got {text!r}")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        raise BadInputError(f"--latency scale must be a number, got {scale!r}") from None
    if not 0 <= value <= 10:
        raise BadInputError(f"--latency scale must be between 0 and 10, got {value:g}")
    return value


def se_method(value: str) -> Literal["calibrated", "fixed"]:
    """``--se`` checked against the settings' own parser, so the CLI and the handlers agree."""
    from panelbrain.config import parse_standard_errors

    return parse_standard_errors(value, "--se")
