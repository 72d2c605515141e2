"""The ``panelbrain`` command line.

Exit codes: 0 success, 2 bad input (one line ``error: ...`` on stderr), 1 internal failure.
``--json`` writes exactly one JSON document to stdout. Heavy modules load inside the command
that needs them, so ``panelbrain --help`` stays instant.

One module per group of commands (``ask``, ``chat``, ``planning``, ``data``, ``quality``, ``stress``,
``bench``, ``local``, ``ops``); each command parses its options, calls the domain and hands the
result to a view in ``present`` (or to ``common.emit_json``). The commands are registered here, in the order
``panelbrain --help`` lists them.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from panelbrain.cli import ask, chat, data, planning, publish, quality, stress
from panelbrain.cli.bench import bench_app
from panelbrain.cli.local import local_app
from panelbrain.cli.logs import logs
from panelbrain.cli.ops import ops_app
from panelbrain.errors import PanelbrainError

app = typer.Typer(
    name="panelbrain",
    help="Plain-English questions over weighted survey data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bench_app, name="bench")
app.add_typer(local_app, name="local")
app.add_typer(ops_app, name="ops")
# `datasets` lists them; add/check change them locally, publish ships one (ADR 0024, 0025).
data.datasets_app.command("publish")(publish.publish)
app.add_typer(data.datasets_app, name="datasets")
for command in (
    ask.ask,
    chat.chat,
    ask.serve,
    logs,
    planning.capacity,
    planning.cost,
    planning.simulate,
    data.sql,
    data.rake,
    data.tabulate,
    data.export,
    quality.check,
):
    app.command()(command)
app.command(name="eval")(quality.eval_)
app.command()(stress.chaos)
app.command()(stress.load)


def main() -> NoReturn:
    """Entry point: map every failure onto the exit-code contract, never a traceback."""
    debug = bool(os.environ.get("PANELBRAIN_DEBUG"))
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, ...
        if not exc.format_message():  # bare `panelbrain`: help was printed, nothing failed
            sys.exit(0)
        sys.stderr.write(f"error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    except PanelbrainError as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {exc.message}\n")
        sys.exit(exc.exit_code)
    except Exception as exc:  # the last line of defence: report, don't dump a traceback
        if debug:
            raise
        sys.stderr.write(
            f"error: internal failure ({type(exc).__name__}: {exc}); "
            "rerun with PANELBRAIN_DEBUG=1 for details\n"
        )
        sys.exit(1)
    sys.exit(0)
