"""How each command's result looks on a terminal: rich tables and lines on stdout.

Commands parse their options, call the domain and hand the result here (or to ``emit_json`` for
``--json``); nothing here decides or computes what the domain already did. Loaded only by the
command that prints, so ``panelbrain --help`` never imports rich's tables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from panelbrain.cli.common import err, out

if TYPE_CHECKING:
    from panelbrain.data.check import Problem
    from panelbrain.data.dictionary import Table as DictionaryTable
    from panelbrain.data.engine import QueryResult
    from panelbrain.data.estimates import EstimateTable
    from panelbrain.data.importer import Added
    from panelbrain.data.weighting import RakeReport
    from panelbrain.local.invoke import InvokeResult


def fmt(value: Any) -> str:
    """A cell: floats to four significant decimals (whole above a million), the rest as text."""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def figure_table(title: str, unit: str, rows: list[tuple[str, str]]) -> Table:
    """A two-column summary: what each figure is, and its value (right-aligned)."""
    grid = Table(title=title)
    grid.add_column("figure")
    grid.add_column(unit, justify="right")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


# ask, serve -------------------------------------------------------------------------------------


def answer_view(result: dict[str, Any]) -> None:
    """One answer of ``panelbrain ask``: status, answer, confidence, trace, tokens and cost."""
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


def serving_view(url: str, reviewers: str, mounts: list[tuple[str, str, str]] | None = None) -> None:
    """What ``panelbrain serve`` listens on, on stderr (stdout stays free for the user); with
    ``mounts``, each API route and its function first, as ``sam local start-api`` lists them."""
    for method, path, function in mounts or []:
        err.print(f"Mounting {function} at {url}{path} [{method}]")
    err.print(f"panelbrain API on {url}  (POST /queries, GET /queries/{{id}}, GET /openapi.json)")
    example = '{"question": "What share support a ban on abortion?"}'
    err.print(
        f"[dim]try: curl -s -X POST {url}/queries -H 'Content-Type: application/json' -d '{example}'[/]",
        markup=True,
    )
    err.print(f"reviewer page: {url}/reviews  (reviewers: {reviewers})")


# capacity, cost, simulate -----------------------------------------------------------------------


def capacity_view(result: dict[str, Any], *, queries_per_day: float, peak_factor: float) -> None:
    """Every figure of a capacity plan with its formula, then the recommendation."""
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
    if "quotas" in result:
        quotas_view(result["quotas"])


def quotas_view(regional: dict[str, Any]) -> None:
    """Each region's figures against its quotas, then the increases to request or the regions
    a quota that cannot be raised needs."""
    count = len(regional["regions"])
    for region, figures in regional["per_region"].items():
        grid = Table(
            title=f"{region}: {figures['queries_per_day']:,.0f} queries a day against the account's quotas"
        )
        for column in ("quota", "needed at peak", "quota value", "", "basis"):
            grid.add_column(
                column,
                justify="left" if column in ("quota", "basis") else "right",
                overflow="fold" if column == "quota" else "ellipsis",
            )
        for check in figures["checks"]:
            mark = (
                "[green]ok[/]"
                if check["ok"]
                else ("[red]raise[/]" if check["adjustable"] else "[red]fixed[/]")
            )
            grid.add_row(
                check["quota"], f"{check['needed']:,.1f}", f"{check['limit']:,.0f}", mark, check["basis"]
            )
        out.print(grid)
        units = ", ".join(f"{m} {n}" for m, n in figures["model_units"].items())
        out.print(f"[dim]Provisioned throughput instead of on-demand quotas: {units} model units here.[/]")
    if regional["requests"]:
        asks = Table(title="Quota increases to request")
        for column in ("region", "quota", "from", "to"):
            asks.add_column(column, justify="right" if column in ("from", "to") else "left")
        for request in regional["requests"]:
            asks.add_row(
                request["region"], request["name"], f"{request['from']:,.0f}", f"{request['to']:,.0f}"
            )
        out.print(asks)
    else:
        out.print(f"No quota increase needed in {count} region(s).")
    if regional["regions_needed"] > count:
        out.print(
            f"[bold red]A quota that cannot be raised is exceeded: spread the load over "
            f"{regional['regions_needed']} regions (--regions {regional['regions_needed']}).[/]"
        )


def cost_view(columns: list[dict[str, Any]], volumes: list[float]) -> None:
    """One column of monthly cost per volume; lines not counted in the total are dimmed."""
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


def simulation_view(result: dict[str, Any], *, days: float, queries_per_day: float, scaling: str) -> None:
    """The simulated period's figures, then each agent's invocations by where they ran."""
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
        if key not in ("functions", "throttles_by_quota", "tpm_quota")
    ]
    rows += [(f"throttled by {quota}", f"{count:,}") for quota, count in result["throttles_by_quota"].items()]
    rows += [
        (f"model tokens a minute ({model})", f"{tpm:,.0f}") for model, tpm in result["tpm_quota"].items()
    ]
    title = f"Simulated {days:g} day(s) at {queries_per_day:,.0f} queries a day, scaling {scaling}"
    out.print(figure_table(title, "value", rows))
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


# datasets, sql, rake, tabulate ------------------------------------------------------------------


def datasets_view(documents: list[dict[str, Any]]) -> None:
    """Each dataset's description, its tables' columns, and its default weighting targets."""
    for doc in documents:
        origin = "built in" if doc["origin"] == "built-in" else f"added, {doc['path']}"
        out.rule(f"[bold]{doc['name']}[/] — {doc.get('title', '')} [dim]({origin})[/]")
        if doc["problems"]:
            out.print(
                f"[bold red]Not served:[/] {len(doc['problems'])} problem(s); "
                f"`panelbrain datasets check {doc['name']}` lists them. First: {doc['problems'][0]}"
            )
        if "tables" not in doc:  # a dictionary that does not parse
            continue
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
        if doc["weighting"] and doc["resolved_targets"]:
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


def added_document(added: Added) -> dict[str, Any]:
    """The ``--json`` document of ``panelbrain datasets add``."""
    return {
        "dataset": added.name,
        "path": str(added.path),
        "rows": added.rows,
        "columns": len(added.spec.main_table.columns),
        "data_version": added.spec.data_version,
        "renamed": added.renamed,
        "notes": [{"kind": n.kind, "column": n.column, "detail": n.detail} for n in added.notes],
        "served": not added.problems,
        "problems": [{"column": p.column, "value": p.value, "message": str(p)} for p in added.problems],
    }


def added_view(added: Added) -> None:
    """What ``add`` wrote, what it changed, what it could not infer, and whether it is served."""
    table = added.spec.main_table
    out.print(
        f"[bold]added {added.name}[/]: {added.rows:,} rows, {len(table.columns)} columns, "
        f"table {table.name}, data version {added.spec.data_version}"
    )
    out.print(
        f"[dim]dictionary:[/] {added.path / 'dictionary.yaml'}   [dim]data:[/] {added.path / str(table.file)}"
    )
    if added.renamed:
        grid = Table(title="names made SQL-safe")
        grid.add_column("in the file")
        grid.add_column("in SQL and the dictionary")
        for original, safe in added.renamed.items():
            grid.add_row(original, safe)
        out.print(grid)
    if added.notes:
        grid = Table(title="what the file did not say (review dictionary.yaml)")
        for head in ("what", "column", "detail"):
            grid.add_column(head, overflow="fold")
        for note in added.notes:
            grid.add_row(note.kind, note.column, note.detail)
        out.print(grid)
    if added.problems:
        out.print(
            f"[bold red]Not served until fixed:[/] {len(added.problems)} problem(s); edit "
            f"{added.path / 'dictionary.yaml'}, then `panelbrain datasets check {added.name}`"
        )
        for problem in added.problems:
            out.print(f"  - {problem}")
    else:
        out.print(f"[green]check passed:[/] ask with --dataset {added.name}")


def check_view(name: str, problems: list[Problem]) -> None:
    """Each problem of ``datasets check``, or that there is none."""
    if not problems:
        out.print(f"[green]{name}: the dictionary and the data agree[/]")
        return
    out.print(f"[bold red]{name}: {len(problems)} problem(s)[/]")
    for problem in problems:
        out.print(f"  - {problem}")


def sql_document(result: QueryResult) -> dict[str, Any]:
    """The ``--json`` document of ``panelbrain sql``: the guarded SQL, every row, the limits."""
    return {
        "sql": result.guarded.sql,
        "columns": result.columns,
        "rows": result.records(),
        "row_count": len(result.rows),
        "truncated": result.truncated,
        "row_limit": result.guarded.row_limit,
        "elapsed_ms": round(result.elapsed_ms, 3),
    }


def sql_view(result: QueryResult) -> None:
    """The SQL that ran, then up to 200 of its rows."""
    grid = Table(
        caption=f"{len(result.rows):,} row(s) in {result.elapsed_ms:.1f} ms"
        + (f" — truncated at the row limit ({result.guarded.row_limit:,})" if result.truncated else "")
    )
    for column in result.columns:
        grid.add_column(column)
    for row in result.rows[:200]:
        grid.add_row(*(fmt(v) for v in row))
    out.print(f"[dim]{result.guarded.sql}[/]")
    out.print(grid)
    if len(result.rows) > 200:
        out.print(f"[dim]showing 200 of {len(result.rows):,} rows; use --json for all[/]")


def rake_view(report: RakeReport, *, out_path: Path | None, weight_column: str) -> None:
    """The weights' quality, then each category's target, unweighted and weighted share."""
    summary = Table(title=f"Rim weighting of {report.n:,} respondents", show_header=False)
    summary.add_column(style="dim")
    summary.add_column(justify="right")
    for label, value in (
        ("converged", f"yes, {report.iterations} iteration(s), residual {report.residual:.2e}"),
        ("weighted total", fmt(report.weighted_total)),
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


def tabulate_view(
    result: EstimateTable, table: DictionaryTable, *, measure: str, by: str | None, weighted: bool
) -> None:
    """Estimates with their 95 % intervals and bases, labelled from the data dictionary."""
    column = table.column(measure)
    title = f"{column.label} — {'weighted' if weighted else 'unweighted'} {result.kind}s" + (
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


# bench ------------------------------------------------------------------------------------------


def bench_rake_view(result: dict[str, Any], *, rows: int, repeat: int) -> None:
    """Seconds per tool, the ratio to panelbrain and the agreement of the weights."""
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


def bench_pipeline_view(result: dict[str, Any], *, repeat: int) -> None:
    """Measured end to end against the critical path and the sequential sum."""
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
    out.print(figure_table(title, "seconds", rows))
    ratio = result["ratio_to_critical_path"]
    out.print(
        f"measured / critical path = {ratio:.3f} (target <= 1.10); "
        f"overhead {result['overhead_no_latency_ms']:.0f} ms (target <= 250 ms)"
    )


def bench_size_view(result: dict[str, Any]) -> None:
    """Each function's unzipped size, own code and with its layers, against Lambda's limits."""
    from panelbrain.bench.size import LAMBDA_LIMIT_BYTES

    mb = 1024 * 1024
    grid = Table(title=f"Deployment sizes (Lambda limit {LAMBDA_LIMIT_BYTES / mb:.0f} MB unzipped)")
    heads = (
        "function",
        "own code MB",
        "layers (MB)",
        "langchain",
        "dataset files",
        "code + layers MB",
        "fits",
    )
    for head in heads:
        grid.add_column(head, justify="left" if head in ("function", "layers (MB)") else "right")
    for row in result["functions"]:
        fits = row["code_within_budget"] and row["total_within_lambda_limit"] and not row["dataset_files"]
        grid.add_row(
            row["function"],
            f"{row['code_bytes'] / mb:.2f}",
            ", ".join(f"{layer} ({size / mb:.1f})" for layer, size in row["layer_bytes"].items()),
            "yes" if row["carries_langchain"] else "no",
            str(len(row["dataset_files"])) if row["dataset_files"] else "none",
            f"{row['total_bytes'] / mb:.1f}",
            "yes" if fits else "[red]NO[/]",
        )
    out.print(grid)
    for layer, size in result["layers"].items():
        packages = ", ".join(f"{name} {version}" for name, version in result["layer_packages"][layer].items())
        locked = "as locked" if result["layers_match_lock"][layer] else "[red]NOT as locked[/]"
        out.print(f"[dim]{layer}: {size / mb:.1f} MB, {locked}: {packages}[/]")


# local invoke -----------------------------------------------------------------------------------


def invocation_view(result: InvokeResult) -> None:
    """As ``sam local invoke`` prints it: the function's response (or Lambda's error payload) on
    stdout, alone; how the invocation ran on stderr."""
    import json

    sys.stdout.write((result.payload if result.error is None else json.dumps(result.error)) + "\n")
    ran = result.invocation
    if ran is not None:
        cold = ", cold start" if ran.cold_start else ""
        err.print(
            f"[dim]REPORT {result.function}:{ran.qualifier} Duration: {ran.seconds * 1000:.2f} ms "
            f"({ran.served_by.replace('_', ' ')}{cold})[/]"
        )


def bench_dataset_view(result: dict[str, Any]) -> None:
    """Add, publish, and each data function cold and warm, with peak memory against MemorySize."""
    panel, added, published, peer = result["panel_file"], result["add"], result["publish"], result["peer"]
    out.print(
        f"Panel: {result['rows']:,} x {result['columns']:,} SPSS file, {panel['bytes'] / 2**20:,.0f} MiB "
        f"(written in {panel['seconds']:.1f} s); stored Parquet {added['parquet_bytes'] / 2**20:,.1f} MiB"
    )
    out.print(
        f"add: {added['seconds']:.1f} s, peak {added['peak_mib']:,.0f} MiB; "
        f"publish: {published['seconds']:.2f} s, peak {published['peak_mib']:,.0f} MiB"
    )
    grid = Table(title=f"Data functions (warm: best of {result['repeat']})", caption=result["note"])
    for head in (
        "function",
        "cold s",
        "warm s",
        "peak MiB",
        "MemorySize",
        "fits",
        "vs peer cold",
        "vs peer warm",
    ):
        grid.add_column(head, justify="left" if head == "function" else "right")
    for worker, f in result["functions"].items():
        grid.add_row(
            worker,
            f"{f['cold']['seconds']:.2f}",
            " ".join(f"{s:.3f}" for s in f["warm_seconds"].values()),
            f"{f['peak_mib']:,.0f}",
            f"{f['memory_size_mb']} MB",
            "yes" if f["fits"] else "[red]no[/]",
            f"{f['cold_ratio_vs_peer']:.0f}x",
            " ".join(f"{r:.1f}x" for r in f["warm_ratio_vs_peer"].values()),
        )
    out.print(grid)
    for worker, f in result["functions"].items():
        cold = f["cold"]
        out.print(
            f"{worker} cold: fetch {cold['fetch_seconds']:.2f} s, load and check "
            f"{cold['load_and_check_seconds']:.2f} s, first answer {cold['first_answer_seconds']:.2f} s"
        )
    out.print(
        f"peer ({peer['name']}): cold {' '.join(f'{s:.3f}' for s in peer['cold_seconds'].values())} s, "
        f"warm {' '.join(f'{s:.3f}' for s in peer['warm_seconds'].values())} s, "
        f"peak {peer['peak_mib']:,.0f} MiB; "
        f"largest count difference from the SQL writer: {max(peer['max_count_diff_vs_sql_writer'].values())}"
    )
