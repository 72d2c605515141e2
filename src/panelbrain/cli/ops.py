"""``panelbrain ops``: what the runbooks (docs/runbooks/) tell an operator to run.

Without ``--stack`` each command acts on the local engine of a running ``panelbrain serve``
(``--url``, default http://127.0.0.1:3000): the emulator's queues and tables live in that
process, so the server runs the operation (``POST /local/ops/{command}``) and returns its
document. With ``--stack NAME`` (and ``--region``, ``--profile`` or the AWS environment) it acts
on the deployed stack through boto3. The logic is one module either way:
:mod:`panelbrain.ops.operate`. ``PANELBRAIN_STACK`` and ``PANELBRAIN_URL`` stand in for the
options, so a runbook's commands run as written against either.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from panelbrain.cli.common import LOCAL_URL, post_to_serve, stack_errors
from panelbrain.errors import BadInputError, PanelbrainError

ops_app = typer.Typer(
    help="Operate panelbrain: dead letters, stuck queries, replays, reviews, intake, today's cost. "
    "Acts on a running `panelbrain serve`, or on a deployed stack with --stack.",
    no_args_is_help=True,
)

out = Console(highlight=False)

StackOption = Annotated[
    str | None,
    typer.Option(
        "--stack",
        envvar="PANELBRAIN_STACK",
        help="A deployed stack's name: act on it (AWS credentials needed). Unset: the local server.",
    ),
]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="The stack's region (default: the AWS environment's).")
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="An AWS profile (default: the environment's).")
]
UrlOption = Annotated[
    str,
    typer.Option(
        "--url", envvar="PANELBRAIN_URL", help="A `panelbrain serve` on this machine (without --stack)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout.")]


class OpsServerError(PanelbrainError):
    """No `panelbrain serve` answered, or it failed the operation (exit 1)."""


def _local(url: str, command: str, arguments: dict[str, Any], timeout_s: float = 120.0) -> dict[str, Any]:
    return post_to_serve(
        url,
        f"/local/ops/{command}",
        arguments,
        error=OpsServerError,
        unreachable="start one (the ops commands act on the engine it runs), or pass --stack NAME for "
        "a deployed stack",
        route="ops",
        failed=f"`ops {command}`",
        timeout_s=timeout_s,
    )


def _run(
    command: str,
    arguments: dict[str, Any],
    stack: str | None,
    region: str | None,
    profile: str | None,
    url: str,
) -> dict[str, Any]:
    if not stack:
        return _local(url, command, arguments)
    from panelbrain.ops import operate

    with stack_errors(stack):
        return operate.run(operate.stack_target(stack, region, profile), command, arguments)


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _queries_table(title: str, rows: list[dict[str, Any]], extra: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("query", "status", "in status", "question", extra):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["query_id"]),
            str(row["status"]),
            _age(row["in_status_s"]),
            str(row.get("question") or "")[:60],
            str(row.get("why") or row.get("reason") or ""),
        )
    return table


@ops_app.command()
def dlq(
    redrive: Annotated[
        bool, typer.Option("--redrive", help="Move the messages back to the query queue (each starts once).")
    ] = False,
    peek: Annotated[int, typer.Option(help="Messages to show (0-10), left in the queue.")] = 5,
    limit: Annotated[int, typer.Option(help="Most messages one redrive moves.")] = 1000,
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Count and peek the dead-letter queue; --redrive moves its messages to the query queue."""
    document = _run("dlq", {"peek": peek, "redrive": redrive, "limit": limit}, stack, region, profile, url)
    if as_json:
        _emit(document)
        return
    depth = document["dead_letter_queue"]
    out.print(
        f"Dead-letter queue, {document['where']}: {depth['visible']} waiting, {depth['in_flight']} in flight"
    )
    if document["messages"]:
        table = Table(title="First messages (left in the queue)", title_justify="left")
        for column in ("query", "status", "route", "age", "reason"):
            table.add_column(column)
        for m in document["messages"]:
            table.add_row(
                str(m["query_id"]),
                str(m["status"]),
                str(m["route"]),
                _age(m["age_s"]),
                str(m["reason"] or ""),
            )
        out.print(table)
    if "redriven" in document:
        after = document["dead_letter_queue_after"]
        moved = document["redriven"]
        out.print(f"Redrove {len(moved)} message(s) to the query queue: {', '.join(moved) or 'none'}")
        out.print(f"Dead-letter queue now: {after['visible']} waiting, {after['in_flight']} in flight")


@ops_app.command()
def stuck(
    limit: Annotated[int, typer.Option(help="Most queries listed per status.")] = 100,
    closed_within: Annotated[
        float, typer.Option(help="Also list queries the sweeper closed as past deadline in these last hours.")
    ] = 24.0,
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Queries unfinished past their deadline, and those the sweeper closed for it lately."""
    if closed_within <= 0:
        raise BadInputError(f"--closed-within must be a positive number of hours, got {closed_within:g}")
    arguments = {"limit": limit, "closed_within_s": closed_within * 3600}
    document = _run("stuck", arguments, stack, region, profile, url)
    if as_json:
        _emit(document)
        return
    deadlines = ", ".join(f"{status} {_age(s)}" for status, s in document["deadlines_s"].items())
    out.print(f"Queries past their deadline, {document['where']} (deadlines: {deadlines})")
    if document["past_deadline"]:
        out.print(_queries_table("Unfinished past their deadline", document["past_deadline"], "why"))
    else:
        out.print("  none unfinished past their deadline")
    closed = document["closed_by_sweeper"]
    hours = document["closed_within_s"] / 3600
    if closed:
        out.print(_queries_table(f"Closed by the sweeper in the last {hours:g} h", closed, "reason"))
        out.print(
            "Replay one with `panelbrain ops replay QUERY_ID` (a new query; the closed id stays failed)."
        )
    else:
        out.print(f"  none closed by the sweeper in the last {hours:g} h")


@ops_app.command()
def replay(
    query_id: Annotated[str, typer.Argument(help="The failed or stuck query whose question to ask again.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also a rejected, dead-lettered, or still-running query (never an answered one)."
        ),
    ] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Ask a failed or stuck query's question again, as a new query through the queue."""
    document = _run("replay", {"query_id": query_id, "force": force}, stack, region, profile, url)
    if as_json:
        _emit(document)
        return
    was = document["was"]
    out.print(
        f"Replayed {document['replayed']} ({was['status']}, {was['route']}) as {document['query_id']}, "
        f"queued on {document['where']}; follow it at {document['status_url']}"
    )


@ops_app.command()
def reviews(
    limit: Annotated[int, typer.Option(help="Most reviews listed.")] = 100,
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Open reviews, oldest first: how long each has waited and has left."""
    document = _run("reviews", {"limit": limit}, stack, region, profile, url)
    if as_json:
        _emit(document)
        return
    out.print(
        f"Open reviews, {document['where']}: {document['open']}"
        + (f", oldest waited {_age(document['oldest_waited_s'])}" if document["open"] else "")
    )
    if document["reviews"]:
        table = Table(title_justify="left")
        for column in ("review", "query", "status", "level", "waited", "left", "heartbeats", "question"):
            table.add_column(column)
        for r in document["reviews"]:
            table.add_row(
                str(r["review_id"]),
                str(r["query_id"]),
                str(r["status"]),
                str(r["level"]),
                _age(r["waited_s"]),
                _age(r["left_s"]),
                str(r["heartbeats"]),
                str(r["question"])[:50],
            )
        out.print(table)


def _intake(
    enabled: bool | None, stack: str | None, region: str | None, profile: str | None, url: str, as_json: bool
) -> None:
    arguments = {} if enabled is None else {"enabled": enabled}
    document = _run("intake", arguments, stack, region, profile, url)
    if as_json:
        _emit(document)
        return
    queue = document["query_queue"]
    changed = f" (was {document['was']})" if enabled is not None else ""
    out.print(
        f"Intake {document['intake']}{changed}, {document['where']}; "
        f"query queue: {queue['visible']} waiting, {queue['in_flight']} in flight"
    )


@ops_app.command("intake")
def intake_state(
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Whether the poller takes questions off the queue, and the queue's depth (changes nothing)."""
    _intake(None, stack, region, profile, url, as_json)


@ops_app.command("pause-intake")
def pause_intake(
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Stop the poller taking questions off the queue; they wait there (14 days' retention)."""
    _intake(False, stack, region, profile, url, as_json)


@ops_app.command("resume-intake")
def resume_intake(
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Let the poller take questions off the queue again."""
    _intake(True, stack, region, profile, url, as_json)


@ops_app.command("cost-today")
def cost_today(
    stack: StackOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    url: UrlOption = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Today's (UTC) model spend: the token usage the finished queries recorded, priced."""
    document = _run("cost-today", {}, stack, region, profile, url)
    if as_json:
        _emit(document)
        return
    finished = document["finished"]
    out.print(
        f"Model cost on {document['day']} (UTC), {document['where']}: USD {document['usd']:.4f} "
        f"over {sum(finished.values())} finished queries "
        f"({', '.join(f'{n} {s}' for s, n in finished.items())}; {document['from_cache']} from the cache)"
    )
    if document["models"]:
        table = Table(title_justify="left")
        for column in ("model", "calls", "input", "output", "cache read", "cache write", "USD"):
            table.add_column(column)
        for model, t in document["models"].items():
            table.add_row(
                model,
                str(t["calls"]),
                f"{t['input_tokens']:,}",
                f"{t['output_tokens']:,}",
                f"{t['cache_read_tokens']:,}",
                f"{t['cache_write_tokens']:,}",
                f"{t['usd']:.4f}",
            )
        out.print(table)
    if document["not_priced"]:
        out.print(
            f"{document['not_priced']} finished queries recorded no token usage (rejected or failed: "
            "a record "
            "keeps usage with its answer); their model calls are not in this figure. The AWS/Bedrock "
            "InputTokenCount and OutputTokenCount metrics count every call."
        )


@ops_app.command("failover-drill")
def failover_drill(
    queries: Annotated[int, typer.Option(help="Questions to send.")] = 40,
    rate: Annotated[float, typer.Option(help="Questions a second.")] = 10.0,
    fail_after: Annotated[
        int, typer.Option(help="The primary fails right after accepting this many questions.")
    ] = 10,
    outage_queries: Annotated[
        int, typer.Option(help="It returns once the secondary has accepted this many.")
    ] = 10,
    interval: Annotated[
        float, typer.Option(help="Seconds between health probes (Route 53: 10 or 30).")
    ] = 0.5,
    threshold: Annotated[int, typer.Option(help="Failed probes in a row before failing over.")] = 3,
    ttl: Annotated[float, typer.Option(help="Seconds the client keeps a DNS answer.")] = 0.5,
    as_json: JsonOption = False,
) -> None:
    """Two local engines as two regions (us-east-1 PRIMARY, us-west-2 SECONDARY), load through the
    API, the primary failed mid-load and brought back: what each region answered, that no query was
    lost, and the time to fail over (docs/multi-region.md). Exits 1 if any query was lost."""
    from panelbrain.ops.failover import DrillSettings, run_drill

    settings = DrillSettings(
        queries=queries,
        rate_per_s=rate,
        fail_after=fail_after,
        outage_queries=outage_queries,
        check_interval_s=interval,
        failure_threshold=threshold,
        dns_ttl_s=ttl,
    )
    report = run_drill(settings, progress=None if as_json else out.print)
    if as_json:
        _emit(report.to_dict())
    else:
        p, s = settings.primary_region, settings.secondary_region
        table = Table(title="Failover drill", title_justify="left")
        for column in (
            "region",
            "role",
            "accepted",
            "terminal in its store",
            "ids read terminal via its API",
        ):
            table.add_column(column)
        for name, role in ((p, "PRIMARY"), (s, "SECONDARY")):
            statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.answered_by[name].items()))
            table.add_row(
                name, role, str(report.accepted_by[name]), statuses or "-", str(report.readable_in[name])
            )
        out.print(table)
        out.print(
            f"Failed over in {report.failover_s} s (Route 53 saw the primary unhealthy after "
            f"{report.detected_after_s} s: {threshold} probes x {interval:g} s; then a DNS TTL of "
            f"{ttl:g} s); "
            f"{report.refused_while_failing_over} attempts refused meanwhile, each retried."
        )
        out.print(
            f"In flight in the primary when it failed: {report.in_flight_at_failure} "
            f"({report.held_in_queue_at_failure} still in its queue); unfinished when it returned: "
            f"{report.unfinished_at_return}, drained by it since: {report.drained_after_return}."
        )
        out.print(
            f"Lost: {len(report.lost)} of {report.submitted} query ids"
            + (f" ({', '.join(report.lost)})" if report.lost else "")
            + f"; every id terminal in both regions' stores: {not any(report.not_replicated.values())}."
        )
    if report.lost:
        raise typer.Exit(1)
