"""The local path under stress: ``chaos`` (faults injected, every query accounted for) and
``load`` (open-loop arrivals against a running ``panelbrain serve``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from panelbrain.cli.common import JsonOption, emit_json, err, out
from panelbrain.errors import BadInputError


class Reviewers(StrEnum):
    mixed = "mixed"
    approve = "approve"


def chaos(
    queries: Annotated[int, typer.Option(help="How many questions to run.")] = 100,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Fault rates, e.g. worker=0.1,throttle=0.3,duplicate=0.05,poison=0.02,malformed=0.05,"
            "timeout=0.02,poller_crash=0.05 (the default: issue 12's rates); none for no faults."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fault choice and the reviewers' answers.")] = 12,
    reviewers: Annotated[
        Reviewers,
        typer.Option(
            help="mixed: reviewers approve half the reviews, reject a fifth, leave the rest to time "
            "out; approve: they approve every one (so a fault-free path answers every question)."
        ),
    ] = Reviewers.mixed,
    as_json: JsonOption = False,
) -> None:
    """Questions through the local path with faults injected; a ledger of where each one ended.
    Exits 1 if any query is lost, stuck, duplicated or disagrees between the sources."""
    from rich.progress import Progress

    from panelbrain.ops.chaos import ChaosConfig, ChaosLedgerError, failure_line, parse_faults, run, tables

    if not 1 <= queries <= 100_000:
        raise BadInputError(f"--queries must be between 1 and 100,000, got {queries}")
    config = ChaosConfig(
        queries=queries, rates=parse_faults(faults), seed=seed, approve_all=reviewers is Reviewers.approve
    )
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("submitting", total=queries)
        result = run(
            config, progress=lambda phase, done, total: bar.update(task, description=phase, completed=done)
        )
    document = {"seed": seed, "faults": config.rates, "reviewers": reviewers.value, **result.document()}
    if as_json:
        emit_json(document)
    else:
        for table in tables(document):
            out.print(table)
    if not result.ok:
        raise ChaosLedgerError(failure_line(result))


def load(
    rate: Annotated[float, typer.Option(help="Queries a second offered (open loop).")],
    duration: Annotated[float, typer.Option(help="Seconds of arrivals.")],
    url: Annotated[str, typer.Option(help="A `panelbrain serve` on this machine.")] = "http://127.0.0.1:3000",
    questions: Annotated[
        Path | None, typer.Option(help="Questions, one a line (default: 804 distinct CES11 questions).")
    ] = None,
    arrivals: Annotated[
        str, typer.Option(help="poisson (seeded exponential gaps) or fixed spacing.")
    ] = "poisson",
    timeout: Annotated[
        float, typer.Option(help="Seconds a query may take from its due time to settle.")
    ] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of the arrivals and the question order.")] = 12,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write latency and queue depth over time here (PNG; SVG without matplotlib)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Open-loop load against a local `panelbrain serve`: latency percentiles, errors, queue depth."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from panelbrain.ops.load import (
        LoadConfig,
        LoadRun,
        check_reachable,
        default_questions,
        read_questions,
        summary_lines,
    )
    from panelbrain.ops.load import plot as plot_load

    config = LoadConfig(
        rate=rate,
        duration_s=duration,
        url=url,
        arrivals=arrivals,
        seed=seed,
        timeout_s=timeout,
        questions=read_questions(questions) if questions else default_questions(),
    )
    runner = LoadRun(config)  # settings and URL checked, and the server found, before any output
    check_reachable(runner.base)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("starting", total=duration)

        def progress(s: dict[str, Any]) -> None:
            queue = (
                f"queue {s['queue_visible']} · running {s['executions_running']} · "
                if "queue_visible" in s
                else ""
            )
            bar.update(
                task,
                completed=min(s["t"], duration),
                description=f"sent {s['sent']}/{s['scheduled']} · settled {s['settled']} · "
                f"errors {s['errors']} · timed out {s['timed_out']} · {queue}outstanding {s['outstanding']}",
            )

        runner.progress = progress
        document = runner.run()
    if plot is not None:
        written = plot_load(document, plot)
        err.print(f"wrote {written}")
    if as_json:
        emit_json(document)
    else:
        typer.echo("\n".join(summary_lines(document)))
