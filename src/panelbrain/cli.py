"""The ``panelbrain`` command line.

Exit codes: 0 success, 2 bad input (one line ``error: ...`` on stderr), 1 internal failure.
``--json`` writes exactly one JSON document to stdout. Heavy modules load inside the command
that needs them, so ``panelbrain --help`` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from panelbrain.cli_logs import logs
from panelbrain.errors import BadInputError, PanelbrainError

app = typer.Typer(
    name="panelbrain",
    help="Plain-English questions over weighted survey data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Measure panelbrain against named peers, in one process.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.command()(logs)

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


def _emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str, allow_nan=False) + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _parse_latency(text: str | None) -> float:
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


@app.command()
def ask(
    question: Annotated[
        str, typer.Argument(help="A question in plain English (see README for the grammar).")
    ],
    dataset: DatasetOption = "ces11",
    provider: Annotated[str, typer.Option(help="offline (default) or bedrock.")] = "offline",
    review: Annotated[
        str | None, typer.Option(help="Answer the human review step, if reached: approve or reject.")
    ] = None,
    latency: Annotated[
        str | None, typer.Option(help="Add the seed's model latency per agent: seed or seed:SCALE.")
    ] = None,
    se: SeOption = "calibrated",
    as_json: JsonOption = False,
) -> None:
    """Answer one question through the pipeline, on the local engine (no AWS needed)."""
    from panelbrain.local.ask import ask as run_question
    from panelbrain.local.engine import LocalEngine, StateTrace
    from panelbrain.local.logs import session_log_file

    if provider not in ("offline", "bedrock"):
        raise BadInputError(f"--provider must be offline or bedrock, got {provider!r}")
    # The engine runs the handlers in this process, and the data processor reads the setting.
    os.environ["PANELBRAIN_SE"] = _se_method(se)
    if review not in (None, "approve", "reject"):
        raise BadInputError(f"--review must be approve or reject, got {review!r}")
    scale = _parse_latency(latency)

    def progress(trace: StateTrace) -> None:
        if trace.ended_at is None:
            err.print(f"[dim]  ▸ {trace.state}[/]")

    with LocalEngine.running(log_file=session_log_file()) as engine:
        if not as_json:
            err.print(
                f"[dim]local engine: {len(engine.handlers)} functions, state machines from template.yaml[/]"
            )
        result = run_question(
            engine,
            question,
            dataset=dataset,
            provider=provider,
            review=review,  # type: ignore[arg-type]
            latency_scale=scale,
            on_state=None if as_json else progress,
        )
    if as_json:
        _emit_json(result)
        return
    _print_answer(result)


def _se_method(value: str) -> Literal["calibrated", "fixed"]:
    from panelbrain.config import parse_standard_errors

    return parse_standard_errors(value, "--se")


def _print_answer(result: dict[str, Any]) -> None:
    from rich.markdown import Markdown

    status_style = {"answered": "green", "needs_review": "yellow", "rejected": "red", "failed": "red"}
    out.rule(f"[bold {status_style[result['status']]}]{result['status']}[/] via {result['route']}")
    if result["markdown"]:
        out.print(Markdown(result["markdown"]))
    else:
        if result["answer"]:
            out.print(result["answer"])
        if result["reason"]:
            out.print(f"[bold]Why:[/] {result['reason']}")
        if result["sql"]:
            out.print(f"[dim]{result['sql']}[/]")
    if result["confidence"] is not None and not result["markdown"]:
        out.print(f"Confidence {result['confidence']:.2f}: " + "; ".join(result["confidence_reasons"]))
    weighting = result.get("weighting")
    if isinstance(weighting, dict) and weighting.get("intervals"):
        out.print(f"[dim]Intervals: {weighting['intervals']}[/]")
    if result["status"] == "needs_review":
        out.print(
            "[yellow]This answer waits for a reviewer.[/] The local engine ends with this command: "
            "rerun with [bold]--review approve[/] or [bold]--review reject[/] to take the review step, "
            "or ask through [bold]panelbrain serve[/] and decide on its reviewer page (/reviews)."
        )
    grid = Table(title=f"trace ({result['elapsed_ms']:,.0f} ms end to end)")
    for head in ("state", "machine", "ms"):
        grid.add_column(head, justify="right" if head == "ms" else "left")
    for row in result["trace"]:
        duration = row["duration_ms"]
        grid.add_row(row["state"], row["machine"], "" if duration is None else f"{duration:,.0f}")
    out.print(grid)
    usage = result["usage"] or {"(offline provider)": {"input_tokens": 0, "output_tokens": 0}}
    for model, tokens in usage.items():
        out.print(f"[dim]tokens {model}: {tokens}[/]")
    cost = result["cost_usd"]
    priced = f"USD {cost:.4f}" if cost is not None else "not priced"
    out.print(f"[dim]model cost: {priced}; provider {result['provider']}[/]")
    served = result.get("invocations") or {"provisioned": 0, "on_demand": 0, "cold_starts": 0}
    out.print(
        f"[dim]Lambda: {served['provisioned']} invocation(s) on provisioned instances, "
        f"{served['on_demand']} on demand ({served['cold_starts']} cold start(s))[/]"
    )


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000,
    reviewers: Annotated[
        str, typer.Option(help="Comma-separated allow-list of who may decide reviews.")
    ] = "reviewer@example.com",
) -> None:
    """Serve the API on localhost over the local engine: queries, and the reviewer page."""
    import time

    from panelbrain.local.engine import LocalEngine
    from panelbrain.local.logs import session_log_file
    from panelbrain.local.server import LocalServer

    if not 0 < port < 65536:
        raise BadInputError(f"--port must be between 1 and 65535, got {port}")
    if not [r for r in reviewers.split(",") if r.strip()]:
        raise BadInputError("--reviewers must name at least one reviewer (e-mail or id)")
    with LocalEngine.running(parameters={"Reviewers": reviewers}, log_file=session_log_file()) as engine:
        try:
            server = LocalServer(engine, port=port).start()
        except OSError as exc:
            raise BadInputError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        err.print(f"panelbrain API on {server.url}  (POST /queries, GET /queries/{{id}}, GET /openapi.json)")
        example = '{"question": "What share support a ban on abortion?"}'
        err.print(
            f"[dim]try: curl -s -X POST {server.url}/queries -H 'Content-Type: application/json' "
            f"-d '{example}'[/]",
            markup=True,
        )
        err.print(f"reviewer page: {server.url}/reviews  (reviewers: {reviewers})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            err.print("stopping")
        finally:
            server.stop()


@app.command()
def capacity(
    queries_per_day: Annotated[float, typer.Option(help="Queries a day to plan for.")],
    peak_factor: Annotated[float, typer.Option(help="Peak minute over the day's average minute.")] = 4.0,
    profile: Annotated[
        str, typer.Option(help="seed (the document's calls) or measured (this repository's prompts).")
    ] = "seed",
    as_json: JsonOption = False,
) -> None:
    """Tokens a day and a minute, model units, Lambda concurrency and Step Functions load."""
    from panelbrain.ops.capacity import SEED_PROFILE, measured_profile, plan

    if profile not in ("seed", "measured"):
        raise BadInputError(f"--profile must be seed or measured, got {profile!r}")
    if queries_per_day <= 0 or peak_factor < 1:
        raise BadInputError("--queries-per-day must be positive and --peak-factor at least 1")
    calls = SEED_PROFILE if profile == "seed" else measured_profile()
    result = plan(queries_per_day, peak_factor=peak_factor, profile=calls)
    if as_json:
        _emit_json(result)
        return
    grid = Table(title=f"Capacity for {queries_per_day:,.0f} queries a day (peak x {peak_factor:g})")
    grid.add_column("figure")
    grid.add_column("value", justify="right")
    grid.add_column("formula", style="dim")
    for key in (
        "tokens_per_query",
        "tokens_per_day",
        "tokens_per_hour",
        "tokens_per_minute_average",
        "tokens_per_minute_peak",
    ):
        grid.add_row(key.replace("_", " "), f"{result[key]['value']:,.0f}", result[key]["formula"])
    for model, figures in result["models"].items():
        peak = figures["peak_tokens_per_minute"]
        grid.add_row(f"{model}: peak tokens a minute", f"{peak['value']:,.0f}", peak["formula"])
        grid.add_row(
            f"{model}: model units", str(figures["model_units"]["value"]), figures["model_units"]["formula"]
        )
    for name, figure in result["lambda_concurrency_at_peak"].items():
        grid.add_row(f"{name} concurrency at peak", str(figure["value"]), figure["formula"])
    for name, figure in result["provisioned_concurrency_at_peak"].items():
        grid.add_row(f"{name} provisioned at peak", str(figure["value"]), figure["formula"])
    for name, figure in result["step_functions"].items():
        grid.add_row(name.replace("_", " "), f"{figure['value']:,.0f}", figure["formula"])
    out.print(grid)
    out.print(f"Recommendation: [bold]{result['recommendation']}[/]")


@app.command()
def cost(
    queries_per_day: Annotated[
        list[float] | None, typer.Option(help="Volumes to price (repeatable); default 100, 5,000 and 50,000.")
    ] = None,
    profile: Annotated[
        str, typer.Option(help="seed, or measured: this repository's prompts, or the usage in --usage files.")
    ] = "seed",
    usage: Annotated[
        list[Path] | None, typer.Option(help="`panelbrain ask --json` outputs whose recorded usage to price.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Monthly cost per component, gross spend then savings; every line with its formula."""
    from panelbrain.ops.capacity import SEED_PROFILE, CallProfile, measured_profile, profile_from_usage
    from panelbrain.ops.cost import monthly_cost

    volumes = queries_per_day or [100.0, 5_000.0, 50_000.0]
    if any(v <= 0 for v in volumes):
        raise BadInputError("--queries-per-day must be positive")
    if profile not in ("seed", "measured") or (usage and profile != "measured"):
        raise BadInputError("--profile must be seed or measured; --usage goes with --profile measured")
    calls: tuple[CallProfile, ...] = SEED_PROFILE
    if profile == "measured" and usage:
        try:
            documents = [json.loads(path.read_text(encoding="utf-8")) for path in usage]
            calls = profile_from_usage(documents)
        except (OSError, json.JSONDecodeError, ValueError, KeyError, AttributeError) as exc:
            raise BadInputError(f"--usage: {exc}") from None
    elif profile == "measured":
        calls = measured_profile()
    columns = [monthly_cost(v, profile=calls) for v in volumes]
    if as_json:
        _emit_json({"columns": columns})
        return
    grid = Table(title=f"Monthly cost, USD (prices as of {columns[0]['prices_as_of']})")
    grid.add_column("line")
    for v in volumes:
        grid.add_column(f"{v:,.0f}/day", justify="right")
    for i, line in enumerate(columns[0]["lines"]):
        style = "" if line["counted"] else "[dim]"
        grid.add_row(style + line["line"], *(f"{style}{c['lines'][i]['usd']:,.2f}" for c in columns))
    grid.add_row("[bold]Total[/]", *(f"[bold]{c['total_usd']:,.2f}[/]" for c in columns))
    out.print(grid)
    assumptions = ", ".join(f"{k} {v}" for k, v in columns[0]["assumptions"].items())
    out.print(f"[dim]Assumptions: {assumptions}. `--json` carries each line's formula and inputs.[/]")


@app.command()
def simulate(
    queries_per_day: Annotated[float, typer.Option(help="Average queries a day.")],
    days: Annotated[float, typer.Option(help="Days to simulate.")] = 1.0,
    scaling: Annotated[
        str,
        typer.Option(
            help="template (the schedule + target tracking deployed), seed-steps (the seed's step rules, "
            "a what-if: AWS refuses step scaling for Lambda) or none."
        ),
    ] = "template",
    surge: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra load HH:MM,MINUTES,PER_MINUTE on the first day (repeatable), e.g. 11:00,30,200."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    model_units: Annotated[
        str,
        typer.Option(
            help="on-demand (assumed quotas), recommended (`panelbrain capacity` units) or unlimited."
        ),
    ] = "on-demand",
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the simulated period here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Discrete-event simulation of the deployed pipeline: latency, cold starts, throttles, queue."""
    from rich.progress import Progress

    from panelbrain.ops.simulate import SCALING_MODES, SimConfig, Simulation, parse_surge

    if scaling not in SCALING_MODES:
        raise BadInputError(f"--scaling must be one of {', '.join(SCALING_MODES)}, got {scaling!r}")
    try:
        surges = tuple(parse_surge(text) for text in surge or [])
    except ValueError as exc:
        raise BadInputError(f"--surge: {exc}") from None
    if plot is not None and plot.suffix.lower() != ".png":
        raise BadInputError(f"--plot {str(plot)!r} must end in .png")
    if queries_per_day <= 0 or not 0 < days <= 14:
        raise BadInputError("--queries-per-day must be positive and --days between 0 and 14")
    if model_units not in ("on-demand", "recommended", "unlimited"):
        raise BadInputError(f"--model-units must be on-demand, recommended or unlimited, got {model_units!r}")
    config = SimConfig(queries_per_day, days=days, scaling=scaling, seed=seed, surges=surges)
    if model_units == "recommended":
        from panelbrain.ops.capacity import recommended_tpm_quota

        config.tpm_quota = recommended_tpm_quota(queries_per_day)
    elif model_units == "unlimited":  # no Bedrock throttling: Lambda scaling alone
        config.tpm_quota = {model: 1e12 for model in config.tpm_quota}
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("simulating", total=days * 86_400)
        simulation = Simulation(config, progress=lambda now: bar.update(task, completed=now))
        result = simulation.run()
    if plot is not None:
        try:
            from panelbrain.ops.simulate import plot_day
        except ImportError:  # pragma: no cover - matplotlib is an optional extra
            raise BadInputError("--plot needs matplotlib: pip install 'panelbrain[plot]'") from None
        plot_day(simulation, str(plot))
        err.print(f"wrote {plot}")
    if as_json:
        _emit_json(result)
        return
    rows = [
        (
            key.replace("_", " "),
            f"{value:,.3f}"
            if isinstance(value, float)
            else f"{value:,}"
            if isinstance(value, int)
            else str(value),
        )
        for key, value in result.items()
        if key != "functions"
    ]
    title = f"Simulated {days:g} day(s) at {queries_per_day:,.0f} queries a day, scaling {scaling}"
    out.print(_figure_table(title, "value", rows))
    served = Table(title="Agent invocations: on provisioned instances or on demand")
    for column in ("function", "calls", "provisioned", "share", "on demand", "cold", "instances"):
        served.add_column(column, justify="left" if column == "function" else "right", no_wrap=True)
    for name, counts in result["functions"].items():
        share = counts["provisioned"] / counts["invocations"] if counts["invocations"] else 0.0
        served.add_row(
            name.removesuffix("Function"),
            f"{counts['invocations']:,}",
            f"{counts['provisioned']:,}",
            f"{share:.1%}",
            f"{counts['on_demand']:,}",
            f"{counts['cold_starts']:,}",
            f"{counts['provisioned_min']}-{counts['provisioned_max']}",
        )
    out.print(served)


def _figure_table(title: str, unit: str, rows: list[tuple[str, str]]) -> Table:
    """A two-column summary: what each figure is, and its value (right-aligned)."""
    grid = Table(title=title)
    grid.add_column("figure")
    grid.add_column(unit, justify="right")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


@app.command()
def datasets(as_json: JsonOption = False) -> None:
    """List the datasets: tables, columns, labels, values, synonyms and weighting targets."""
    from panelbrain.data.catalog import default_targets, load_dataset
    from panelbrain.data.dictionary import dataset_names, load_dictionary

    documents = []
    for name in dataset_names():
        spec = load_dictionary(name)
        loaded = load_dataset(name, rows=1000) if spec.generated else load_dataset(name)
        targets, _ = default_targets(loaded) if spec.weighting else ({}, None)
        doc = spec.model_dump(mode="json")
        doc["resolved_targets"] = targets
        documents.append(doc)
    if as_json:
        _emit_json({"datasets": documents})
        return
    for doc in documents:
        out.rule(f"[bold]{doc['name']}[/] — {doc['title']}")
        out.print(doc["description"])
        out.print(f"[dim]Source:[/] {doc['source']}")
        out.print(f"[dim]Licence:[/] {doc['licence']}   [dim]Data version:[/] {doc['data_version']}")
        if doc.get("generated"):
            out.print(
                f"[dim]Generated:[/] {doc['generated']['rows']:,} rows by default, "
                f"seed {doc['generated']['seed']}"
            )
        for table in doc["tables"]:
            grid = Table(title=f"table {table['name']}: {table['label']}", show_lines=False)
            for head in ("column", "type", "label", "values", "synonyms"):
                grid.add_column(head, overflow="fold")
            for col in table["columns"]:
                values = ", ".join(f"{v['value']} ({v['label']})" for v in col["values"])
                grid.add_row(
                    col["name"],
                    col["type"] + (f" · {col['role']}" if col["role"] else ""),
                    col["label"],
                    values,
                    ", ".join(col["synonyms"]),
                )
            out.print(grid)
        if doc["weighting"]:
            grid = Table(title="default weighting targets")
            for head in ("variable", "targets", "source"):
                grid.add_column(head, overflow="fold")
            for var in doc["weighting"]["variables"]:
                shares = doc["resolved_targets"][var["column"]]
                grid.add_row(
                    var["column"], ", ".join(f"{k} {v:.3f}" for k, v in shares.items()), var["source"]
                )
            out.print(grid)
            if doc["weighting"]["base_weight"]:
                out.print(f"[dim]Raking starts from the design weight[/] {doc['weighting']['base_weight']}")


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One SELECT statement.")],
    dataset: DatasetOption = "ces11",
    as_json: JsonOption = False,
) -> None:
    """Run one guarded, read-only SELECT against a dataset."""
    from panelbrain.data.engine import QueryEngine

    result = QueryEngine.open(dataset).run(statement)
    if as_json:
        _emit_json(
            {
                "sql": result.guarded.sql,
                "columns": result.columns,
                "rows": result.records(),
                "row_count": len(result.rows),
                "truncated": result.truncated,
                "row_limit": result.guarded.row_limit,
                "elapsed_ms": round(result.elapsed_ms, 3),
            }
        )
        return
    grid = Table(
        caption=f"{len(result.rows):,} row(s) in {result.elapsed_ms:.1f} ms"
        + (f" — truncated at the row limit ({result.guarded.row_limit:,})" if result.truncated else "")
    )
    for column in result.columns:
        grid.add_column(column)
    for row in result.rows[:200]:
        grid.add_row(*(_fmt(v) for v in row))
    out.print(f"[dim]{result.guarded.sql}[/]")
    out.print(grid)
    if len(result.rows) > 200:
        out.print(f"[dim]showing 200 of {len(result.rows):,} rows; use --json for all[/]")


def _read_frame(path: Path) -> Any:
    import pandas as pd

    if not path.is_file():
        raise BadInputError(f"input file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise BadInputError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None
    raise BadInputError(f"input {str(path)!r} must be a .csv or .parquet file")


def _read_targets(path: Path) -> Any:
    if not path.is_file():
        raise BadInputError(f"targets file {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"targets file {str(path)!r} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno}, column {exc.colno}"
        ) from None


def _parse_cap(text: str | None) -> float | tuple[float, float] | None:
    if text is None:
        return None
    try:
        if ":" in text:
            low, high = text.split(":", 1)
            return float(low), float(high)
        return float(text)
    except ValueError:
        raise BadInputError(f"--cap must be a number (upper bound) or LOW:HIGH, got {text!r}") from None


@app.command()
def rake(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Respondents, .csv or .parquet.")],
    targets: Annotated[
        Path, typer.Option("--targets", "-t", help='JSON: {"variable": {"category": proportion}}.')
    ],
    cap: Annotated[str | None, typer.Option(help="Largest weight (mean weight is 1), or LOW:HIGH.")] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the rows plus a weight column (.csv or .parquet)."),
    ] = None,
    base_weight: Annotated[str | None, typer.Option(help="Column of design weights to start from.")] = None,
    weight_column: Annotated[
        str, typer.Option(help="Name of the weight column written by --out.")
    ] = "weight",
    tol: Annotated[
        float, typer.Option(help="Largest gap allowed between a weighted share and its target.")
    ] = 1e-10,
    max_iter: Annotated[int, typer.Option(help="Most raking passes before giving up.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Rim-weight (rake) respondents to marginal targets, and report the weights' quality."""
    from panelbrain.data.weighting import rake as rake_frame

    frame = _read_frame(input_path)
    spec = _read_targets(targets)
    if out_path is not None:
        if out_path.suffix.lower() not in (".csv", ".parquet"):
            raise BadInputError(f"--out {str(out_path)!r} must end in .csv or .parquet")
        if out_path.resolve() == input_path.resolve():
            raise BadInputError("--out must not be the input file: the input is never overwritten")
        if weight_column in frame.columns and weight_column != base_weight:
            raise BadInputError(
                f"the input already has a column {weight_column!r}; choose another with --weight-column"
            )
    result = rake_frame(frame, spec, cap=_parse_cap(cap), tol=tol, max_iter=max_iter, base_weight=base_weight)
    if out_path is not None:
        written = frame.assign(**{weight_column: result.weights})
        if out_path.suffix.lower() == ".csv":
            written.to_csv(out_path, index=False, float_format="%.17g")
        else:
            written.to_parquet(out_path, index=False)
    report = result.report
    if as_json:
        _emit_json(report.model_dump(mode="json") | ({"out": str(out_path)} if out_path else {}))
        return
    summary = Table(title=f"Rim weighting of {report.n:,} respondents", show_header=False)
    summary.add_column(style="dim")
    summary.add_column(justify="right")
    for label, value in (
        ("converged", f"yes, {report.iterations} iteration(s), residual {report.residual:.2e}"),
        ("weighted total", _fmt(report.weighted_total)),
        ("effective n (Kish)", f"{report.effective_n:,.1f}"),
        ("weighting efficiency", f"{report.efficiency:.1%}"),
        ("design effect", f"{report.design_effect:.3f}"),
        ("min / max weight", f"{report.min_weight:.4f} / {report.max_weight:.4f}"),
        ("cells", f"{report.cells:,}"),
        ("cap", "none" if report.cap is None else f"{report.cap[0]:g} .. {report.cap[1]:g}"),
    ):
        summary.add_row(label, value)
    out.print(summary)
    shares = Table(title="target vs unweighted vs weighted share")
    for head in ("variable", "category", "respondents", "target", "unweighted", "weighted"):
        shares.add_column(head, justify="left" if head in ("variable", "category") else "right")
    for var in report.variables:
        for i, cat in enumerate(var.categories):
            shares.add_row(
                var.variable if i == 0 else "",
                cat.category,
                f"{cat.respondents:,}",
                f"{cat.target:.4f}",
                f"{cat.unweighted:.4f}",
                f"{cat.weighted:.4f}",
            )
    out.print(shares)
    if out_path is not None:
        out.print(f"wrote {report.n:,} rows with column {weight_column!r} to {out_path}")


@app.command()
def tabulate(
    measure: Annotated[
        str, typer.Argument(help="Column to estimate: shares of a categorical, mean of a numeric.")
    ],
    by: Annotated[str | None, typer.Option(help="Column to break the estimate down by.")] = None,
    value: Annotated[
        list[str] | None, typer.Option(help="Only these values of a categorical measure.")
    ] = None,
    dataset: DatasetOption = "ces11",
    unweighted: Annotated[bool, typer.Option(help="Ignore the weights.")] = False,
    se: SeOption = "calibrated",
    as_json: JsonOption = False,
) -> None:
    """Weighted table of one measure, overall and by group, with 95 % intervals."""
    from panelbrain.data.catalog import load_dataset, weight_dataset
    from panelbrain.data.estimates import weighted_means, weighted_shares

    method = _se_method(se)
    data = load_dataset(dataset)
    # The raking itself (weights and margins): the calibrated SE needs the margins.
    weights = None if unweighted else weight_dataset(data)
    se_method = None if unweighted else method
    table = data.table
    if measure not in table.column_names:
        raise BadInputError(
            f"{measure!r} is not a column of {dataset} (columns: {', '.join(table.column_names)})"
        )
    if by is not None and by not in table.column_names:
        raise BadInputError(
            f"--by {by!r} is not a column of {dataset} (columns: {', '.join(table.column_names)})"
        )
    if table.column(measure).type == "categorical":
        result = weighted_shares(data.frame, measure, values=value, by=by, weights=weights, se=se_method)
    else:
        result = weighted_means(data.frame, measure, by=by, weights=weights, se=se_method)
    if as_json:
        _emit_json(result.model_dump(mode="json"))
        return
    column = table.column(measure)
    title = f"{column.label} — {'weighted' if weights is not None else 'unweighted'} {result.kind}s" + (
        f" by {table.column(by).label.lower()}" if by else ""
    )
    grid = Table(title=title, caption=result.method)
    for head in ("group", "value", "estimate", "95% CI", "weighted base", "n", "sig"):
        grid.add_column(head, justify="left" if head in ("group", "value") else "right")
    number = "{:.1%}" if result.kind == "share" else "{:,.2f}"

    def pct(value: float) -> str:
        return number.format(value)

    for row in result.rows:
        label = table.column(by).value_label(row.group) if by and row.group != "All" else row.group
        grid.add_row(
            label,
            column.value_label(row.category) if row.category else "",
            pct(row.estimate),
            f"{pct(row.ci_low)} – {pct(row.ci_high)}",
            f"{row.weighted_base:,.1f}",
            f"{row.unweighted_base:,}",
            "*" if row.significant else "",
        )
    out.print(grid)


@app.command()
def export(
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Destination .csv or .parquet.")],
    rows: Annotated[int | None, typer.Option(help="Rows to generate (generated datasets only).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (generated datasets only).")] = None,
) -> None:
    """Write a dataset's main table to a file (generate a synthetic panel of any size)."""
    from panelbrain.data.catalog import load_dataset
    from panelbrain.data.dictionary import load_dictionary

    if (rows is not None or seed is not None) and load_dictionary(dataset).generated is None:
        raise BadInputError(f"--rows and --seed apply to generated datasets; {dataset!r} is not one")
    suffix = out_path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BadInputError(f"--out {str(out_path)!r} must end in .csv or .parquet")
    with err.status(f"building {dataset}..."):
        frame = load_dataset(dataset, rows=rows, seed=seed).frame
        if suffix == ".csv":
            frame.to_csv(out_path, index=False)
        else:
            frame.to_parquet(out_path, index=False)
    err.print(f"wrote {len(frame):,} rows to {out_path}")


@bench_app.command("rake")
def bench_rake(
    rows: Annotated[int, typer.Option(help="Respondents in the synthetic panel.")] = 1_000_000,
    repeat: Annotated[int, typer.Option(help="Timed runs per tool; the best is reported.")] = 5,
    seed: Annotated[int, typer.Option(help="Panel seed.")] = 2011,
    as_json: JsonOption = False,
) -> None:
    """Rake one synthetic panel with panelbrain, weightipy and ipfn; print seconds and ratios."""
    from panelbrain.bench.rake import run_rake_benchmark

    if rows < 1 or repeat < 1:
        raise BadInputError("--rows and --repeat must be at least 1")
    result = run_rake_benchmark(rows=rows, repeat=repeat, seed=seed, progress=None if as_json else err)
    if as_json:
        _emit_json(result)
        return
    grid = Table(
        title=f"Raking {rows:,} rows x {result['variables']} variables (best of {repeat})",
        caption=result["note"],
    )
    for head in ("tool", "seconds", "vs panelbrain", "max |w - w_panelbrain|", "effective n"):
        grid.add_column(head, justify="left" if head == "tool" else "right")
    for tool in result["tools"]:
        grid.add_row(
            tool["name"],
            f"{tool['seconds']:.4f}",
            f"{tool['ratio']:.1f}x",
            f"{tool['max_abs_diff']:.1e}",
            f"{tool['effective_n']:,.1f}",
        )
    out.print(grid)
    out.print(
        f"panelbrain is {result['speedup_vs_fastest_peer']:.1f}x faster than the fastest peer "
        f"({result['fastest_peer']})."
    )
    out.print(
        f"[dim]For context: ipfn's fitting alone, cell table given, takes "
        f"{result['ipfn_fitting_only_seconds']:.4f} s.[/]"
    )


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

    if repeat < 1:
        raise BadInputError("--repeat must be at least 1")
    result = run_pipeline_benchmark(
        scale=_parse_latency(latency), repeat=repeat, progress=None if as_json else err
    )
    if as_json:
        _emit_json(result)
        return
    title = f"Pipeline on the local engine, latency seed x {result['latency_scale']:g} (median of {repeat})"
    rows = [
        ("measured end to end", f"{result['measured_s']:.3f}"),
        (
            "critical path (plan + slowest worker + synthesise + formatter)",
            f"{result['critical_path_s']:.3f}",
        ),
        ("sequential sum of every agent", f"{result['sequential_s']:.3f}"),
        ("orchestration overhead, no latency", f"{result['overhead_no_latency_ms'] / 1000:.3f}"),
    ]
    out.print(_figure_table(title, "seconds", rows))
    ratio = result["ratio_to_critical_path"]
    out.print(
        f"measured / critical path = {ratio:.3f} (target <= 1.10); "
        f"overhead {result['overhead_no_latency_ms']:.0f} ms (target <= 250 ms)"
    )


@bench_app.command("size")
def bench_size(
    build_dir: Annotated[Path, typer.Option(help="Where `sam build` wrote its output.")] = Path(
        ".aws-sam/build"
    ),
    check: Annotated[bool, typer.Option(help="Exit 1 if any function exceeds a limit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Each function's own code and code + layers, unzipped, after `sam build`."""
    from panelbrain.bench.size import LAMBDA_LIMIT_BYTES, measure
    from panelbrain.local.engine import find_template

    result = measure(find_template(), build_dir)
    if as_json:
        _emit_json(result)
        if check and not all(
            r["code_within_1mb"] and r["total_within_lambda_limit"] for r in result["functions"]
        ):
            raise PanelbrainError("over Lambda's limits")
        return
    mb = 1024 * 1024
    grid = Table(title=f"Deployment sizes (Lambda limit {LAMBDA_LIMIT_BYTES / mb:.0f} MB unzipped)")
    for head in ("function", "own code MB", "layers", "code + layers MB", "fits"):
        grid.add_column(head, justify="left" if head in ("function", "layers") else "right")
    for row in result["functions"]:
        fits = row["code_within_1mb"] and row["total_within_lambda_limit"]
        grid.add_row(
            row["function"],
            f"{row['code_bytes'] / mb:.2f}",
            ", ".join(row["layers"]),
            f"{row['total_bytes'] / mb:.1f}",
            "yes" if fits else "[red]NO[/]",
        )
    out.print(grid)
    for layer, size in result["layers"].items():
        out.print(f"[dim]{layer}: {size / mb:.1f} MB[/]")
    too_big = [
        r["function"]
        for r in result["functions"]
        if not (r["code_within_1mb"] and r["total_within_lambda_limit"])
    ]
    if check and too_big:
        raise PanelbrainError(f"over Lambda's limits: {', '.join(too_big)}")


@app.command()
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
        _emit_json(report.to_dict())
    else:
        typer.echo("\n".join(report_lines(report)))
    if report.failed:
        names = ", ".join(r.rule.id for r in report.failed)
        raise BadInputError(
            f"{len(report.failed)} checklist rule(s) fail: {names} (see docs/production-checklist.md)"
        )


@app.command(name="eval")
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
        _emit_json(report)
    else:
        typer.echo("\n".join(report_lines(report)))


@app.command()
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
        str,
        typer.Option(
            help="mixed: reviewers approve half the reviews, reject a fifth, leave the rest to time "
            "out; approve: they approve every one (so a fault-free path answers every question)."
        ),
    ] = "mixed",
    as_json: JsonOption = False,
) -> None:
    """Questions through the local path with faults injected; a ledger of where each one ended.
    Exits 1 if any query is lost, stuck, duplicated or disagrees between the sources."""
    from rich.progress import Progress

    from panelbrain.ops.chaos import ChaosConfig, ChaosLedgerError, failure_line, parse_faults, run, tables

    if not 1 <= queries <= 100_000:
        raise BadInputError(f"--queries must be between 1 and 100,000, got {queries}")
    if reviewers not in ("mixed", "approve"):
        raise BadInputError(f"--reviewers must be mixed or approve, got {reviewers!r}")
    config = ChaosConfig(
        queries=queries, rates=parse_faults(faults), seed=seed, approve_all=reviewers == "approve"
    )
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("submitting", total=queries)
        result = run(
            config, progress=lambda phase, done, total: bar.update(task, description=phase, completed=done)
        )
    document = {"seed": seed, "faults": config.rates, "reviewers": reviewers, **result.document()}
    if as_json:
        _emit_json(document)
    else:
        for table in tables(document):
            out.print(table)
    if not result.ok:
        raise ChaosLedgerError(failure_line(result))


@app.command()
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
        _emit_json(document)
    else:
        typer.echo("\n".join(summary_lines(document)))


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


if __name__ == "__main__":
    main()
