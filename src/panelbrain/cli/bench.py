"""``panelbrain bench``: panelbrain measured against named peers, in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from panelbrain.cli.common import JsonOption, emit_json, err, parse_latency
from panelbrain.errors import BadInputError, PanelbrainError

bench_app = typer.Typer(help="Measure panelbrain against named peers, in one process.", no_args_is_help=True)


@bench_app.command("rake")
def bench_rake(
    rows: Annotated[int, typer.Option(help="Respondents in the synthetic panel.")] = 1_000_000,
    repeat: Annotated[int, typer.Option(help="Timed runs per tool; the best is reported.")] = 5,
    seed: Annotated[int, typer.Option(help="Panel seed.")] = 2011,
    as_json: JsonOption = False,
) -> None:
    """Rake one synthetic panel with panelbrain, weightipy and ipfn; print seconds and ratios."""
    from panelbrain.bench.rake import run_rake_benchmark
    from panelbrain.cli.present import bench_rake_view

    if rows < 1 or repeat < 1:
        raise BadInputError("--rows and --repeat must be at least 1")
    result = run_rake_benchmark(rows=rows, repeat=repeat, seed=seed, progress=None if as_json else err)
    if as_json:
        emit_json(result)
        return
    bench_rake_view(result, rows=rows, repeat=repeat)


@bench_app.command("dataset")
def bench_dataset(
    rows: Annotated[int, typer.Option(help="Respondents in the generated panel.")] = 1_000_000,
    columns: Annotated[
        int, typer.Option(help="Columns in the generated panel (id, weight, 4 demographics, questions).")
    ] = 300,
    repeat: Annotated[int, typer.Option(help="Warm answers timed per question (the best is reported).")] = 3,
    seed: Annotated[int, typer.Option(help="Panel seed.")] = 2026,
    as_json: JsonOption = False,
) -> None:
    """A labelled SPSS panel added, published and queried by the data functions, cold and warm."""
    from panelbrain.bench.dataset import MIN_COLUMNS, MIN_ROWS, run_dataset_benchmark
    from panelbrain.cli.present import bench_dataset_view
    from panelbrain.local.engine import find_template

    if rows < MIN_ROWS:
        raise BadInputError(f"--rows must be at least {MIN_ROWS}, got {rows}")
    if columns < MIN_COLUMNS:
        raise BadInputError(
            f"--columns must be at least {MIN_COLUMNS} (id, weight, 4 demographics, 2 questions), "
            f"got {columns}"
        )
    if repeat < 1:
        raise BadInputError("--repeat must be at least 1")
    result = run_dataset_benchmark(
        rows=rows,
        columns=columns,
        repeat=repeat,
        seed=seed,
        template=find_template(),
        say=None if as_json else err.print,
    )
    if as_json:
        emit_json(result)
        return
    bench_dataset_view(result)


@bench_app.command("pipeline")
def bench_pipeline(
    latency: Annotated[
        str, typer.Option(help="The seed's model latency per agent: seed or seed:SCALE.")
    ] = "seed:0.05",
    repeat: Annotated[int, typer.Option(help="Queries timed (the median is reported).")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Time one question end to end on the local engine against its critical path."""
    from panelbrain.bench.pipeline import run_pipeline_benchmark
    from panelbrain.cli.present import bench_pipeline_view

    if repeat < 1:
        raise BadInputError("--repeat must be at least 1")
    result = run_pipeline_benchmark(
        scale=parse_latency(latency), repeat=repeat, progress=None if as_json else err
    )
    if as_json:
        emit_json(result)
        return
    bench_pipeline_view(result, repeat=repeat)


@bench_app.command("conversation")
def bench_conversation(
    repeat: Annotated[int, typer.Option(help="Conversations of 50 turns timed (medians reported).")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Time a 50-turn conversation through the API on the local engine: turn 1 against turn 50."""
    from panelbrain.bench.conversation import run_conversation_benchmark

    if repeat < 1:
        raise BadInputError("--repeat must be at least 1")
    result = run_conversation_benchmark(repeat=repeat, progress=None if as_json else err.print)
    if as_json:
        emit_json(result)
        return
    for kind in ("api_ms", "end_to_end_ms"):
        figures = result[kind]
        ratio = figures["turn_50"] / figures["turn_1"] if figures["turn_1"] else float("nan")
        err.print(
            f"{kind}: turn 1 {figures['turn_1']} ms, turn 50 {figures['turn_50']} ms ({ratio:.2f}x); "
            f"turns 2-11 {figures['turns_2_11']} ms, turns 41-50 {figures['turns_41_50']} ms"
        )
    sizes = result["turn_item_bytes"]
    err.print(
        f"turn item: {sizes['turn_1']} B at turn 1, {sizes['turn_50']} B at turn 50, max {sizes['max']} B"
    )
    err.print(f"cache hits: {result['cache_hits']} (each turn a reading of its own: expect 0)")


@bench_app.command("size")
def bench_size(
    build_dir: Annotated[Path, typer.Option(help="Where `sam build` wrote its output.")] = Path(
        ".aws-sam/build"
    ),
    check: Annotated[bool, typer.Option(help="Exit 1 if any function exceeds a limit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Each function's own code and layers (with their sizes), unzipped, after `sam build`."""
    try:
        from panelbrain.bench.size import measure, problems
    except ImportError:  # packaging reads the lock files: a development dependency
        raise BadInputError("bench size needs the development install: make install") from None
    from panelbrain.cli.present import bench_size_view
    from panelbrain.local.engine import find_template

    result = measure(find_template(), build_dir)
    found = problems(result)
    if as_json:
        emit_json(result)
    else:
        bench_size_view(result)
    if check and found:
        raise PanelbrainError("; ".join(found))
