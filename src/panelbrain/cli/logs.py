"""``panelbrain logs QUERY_ID``: one query's journey across functions and state machines.

Registered on the main app by ``panelbrain.cli``; reads the session log file the local engine writes
(:mod:`panelbrain.local.logs`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def logs(
    query_id: Annotated[str, typer.Argument(help="The query id POST /queries or `panelbrain ask` returned.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Session log file (default: $PANELBRAIN_STATE_DIR/logs.jsonl, else .panelbrain/logs.jsonl).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout.")] = False,
) -> None:
    """Show one query's journey on the local engine, in order: API, poller, pipeline states and
    functions, review, persist (from what `panelbrain ask` and `panelbrain serve` logged)."""
    from panelbrain.local.logs import read_journey, session_log_file, summary

    path = file or session_log_file()
    records = read_journey(path, query_id)
    if as_json:
        sys.stdout.write(
            json.dumps({"query_id": query_id, "file": str(path), "records": records}, indent=2) + "\n"
        )
        return
    for record in records:
        line = summary(record)
        if line is not None:
            typer.echo(line)
