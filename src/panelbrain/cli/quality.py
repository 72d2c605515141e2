"""Is it fit to ship: ``check`` (the production checklist) and ``eval`` (a gold set, scored)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from panelbrain.cli.common import JsonOption, emit_json, err
from panelbrain.errors import BadInputError


def check(
    root: Annotated[
        Path | None, typer.Option(help="Project folder (template.yaml, samconfig.toml); default: found.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The production checklist: AWS's rules over SAM's output, the ASL and samconfig.toml."""
    from panelbrain.local.engine import find_template
    from panelbrain.ops.checklist import report_lines, run

    report = run(root or find_template().parent)
    if as_json:
        emit_json(report.to_dict())
    else:
        typer.echo("\n".join(report_lines(report)))
    if report.failed:
        names = ", ".join(r.rule.id for r in report.failed)
        raise BadInputError(
            f"{len(report.failed)} checklist rule(s) fail: {names} (see docs/production-checklist.md)"
        )


def eval_(
    provider: Annotated[
        str | None, typer.Option(help="offline (default) or bedrock (the default with --replay).")
    ] = None,
    set_name: Annotated[str, typer.Option("--set", help="Gold set (src/panelbrain/eval/sets).")] = "gold",
    record: Annotated[Path | None, typer.Option(help="Keep every Bedrock response in this folder.")] = None,
    replay: Annotated[
        Path | None, typer.Option(help="Answer every Bedrock call from a --record folder.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a gold set through the pipeline and score it (see docs/eval.md)."""
    import contextlib

    from panelbrain.eval import report_lines, run_eval

    with contextlib.nullcontext() if as_json else err.status(f"evaluating the {set_name} set"):
        report = run_eval(set_name, provider, record=record, replay=replay)
    if as_json:
        emit_json(report)
    else:
        typer.echo("\n".join(report_lines(report)))
