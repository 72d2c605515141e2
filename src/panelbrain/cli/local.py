"""``panelbrain local``: ``sam local invoke`` and ``sam local start-api`` on the local engine,
without Docker."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from panelbrain.cli.common import err

local_app = typer.Typer(
    help="`sam local invoke` and `sam local start-api` on the local engine, without Docker.",
    no_args_is_help=True,
)


@local_app.command("invoke")
def invoke(
    function: Annotated[
        str,
        typer.Argument(
            metavar="FUNCTION", help="The function's logical id in template.yaml, e.g. PersistFunction."
        ),
    ],
    event: Annotated[
        Path | None,
        typer.Option(
            "--event",
            "-e",
            help="JSON event file (- reads stdin; default {}); events/<handler module>/ holds samples.",
        ),
    ] = None,
    env_vars: Annotated[
        Path | None,
        typer.Option(
            "--env-vars",
            "-n",
            help='SAM\'s env-vars JSON: {"Parameters": {"VAR": "v"}, "FunctionLogicalId": {"VAR": "v"}}.',
        ),
    ] = None,
) -> None:
    """Invoke one function of template.yaml once, as `sam local invoke` does.

    The function's JSON response goes to stdout, its logs to stderr; a function error prints
    Lambda's error payload on stdout and exits 1."""
    from panelbrain.cli.present import invocation_view
    from panelbrain.local.engine import LocalEngine, find_template
    from panelbrain.local.invoke import (
        check_function,
        environment_overrides,
        invoke,
        read_env_vars,
        read_event,
    )
    from panelbrain.local.lambda_rules import LambdaFunctionError
    from panelbrain.local.template import Template

    # Everything the user gave is checked before the engine starts.
    check_function(Template.load(find_template()), function)
    payload = read_event(event)
    document = read_env_vars(env_vars) if env_vars is not None else {}
    moto_log = logging.getLogger("moto.stepfunctions")
    level = moto_log.level
    try:
        with LocalEngine.running() as engine:
            overrides, notes = environment_overrides(document, engine.template, function)
            for note in notes:
                err.print(f"[yellow]{note}[/]")
            # What the handler prints (its logs, Powertools' metric lines) goes to stderr, as
            # sam local invoke shows the container's output: stdout carries the response alone.
            with contextlib.redirect_stdout(sys.stderr):
                result = invoke(engine, function, payload, overrides)
            # What the invocation started (a pipeline, a review) stops with the engine, and moto
            # logs each stopped execution as a failure: not this function's output.
            moto_log.setLevel(logging.CRITICAL)
    finally:
        moto_log.setLevel(level)
    invocation_view(result)
    if result.error is not None:  # the payload is on stdout; stderr gets its first line
        first_line = result.error["errorMessage"].partition("\n")[0]
        raise LambdaFunctionError(function, result.error["errorType"], first_line)


@local_app.command("start-api")
def start_api(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000,
    reviewers: Annotated[
        str, typer.Option(help="Comma-separated allow-list of who may decide reviews.")
    ] = "reviewer@example.com",
) -> None:
    """Serve the template's API routes on localhost, as `sam local start-api` does.

    The same server as `panelbrain serve`: the query queue's poller and the schedules run too."""
    from panelbrain.cli.ask import run_server

    run_server(port, reviewers, mounts=True)
