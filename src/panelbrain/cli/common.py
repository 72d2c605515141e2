"""What several command groups share: the two consoles, the common options, JSON output and the
parsing of ``--latency`` and ``--se``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from panelbrain.errors import BadInputError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

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
