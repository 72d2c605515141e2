"""Questions on the local engine: ``ask`` answers one, ``serve`` serves the API and reviewer page."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from panelbrain.cli.common import (
    DatasetOption,
    JsonOption,
    SeOption,
    emit_json,
    err,
    parse_latency,
    se_method,
)
from panelbrain.errors import BadInputError


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
    conversation: Annotated[
        str | None,
        typer.Option(
            help="Follow up this conversation (the conversation_id an earlier ask printed); "
            "its dataset unless --dataset names another."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Answer one question through the pipeline, on the local engine (no AWS needed)."""
    from panelbrain.cli.chat import keep, load, restore
    from panelbrain.cli.present import answer_view
    from panelbrain.local.ask import ask as run_question
    from panelbrain.local.engine import LocalEngine, StateTrace
    from panelbrain.local.logs import session_log_file

    if provider not in ("offline", "bedrock"):
        raise BadInputError(f"--provider must be offline or bedrock, got {provider!r}")
    # The engine runs the handlers in this process, and the data processor reads the setting.
    os.environ["PANELBRAIN_SE"] = se_method(se)
    if review not in (None, "approve", "reject"):
        raise BadInputError(f"--review must be approve or reject, got {review!r}")
    scale = parse_latency(latency)

    kept = load(conversation) if conversation is not None else None

    def progress(trace: StateTrace) -> None:
        if trace.ended_at is None:
            err.print(f"[dim]  ▸ {trace.state}[/]")

    with LocalEngine.running(log_file=session_log_file()) as engine:
        if not as_json:
            err.print(
                f"[dim]local engine: {len(engine.handlers)} functions, state machines from template.yaml[/]"
            )
        if kept is not None:
            about = restore(engine, kept)
            # The option's default is ces11: a follow-up keeps its conversation's dataset.
            dataset = about if dataset == "ces11" else dataset
        result = run_question(
            engine,
            question,
            dataset=dataset,
            provider=provider,
            review=review,  # type: ignore[arg-type]
            latency_scale=scale,
            on_state=None if as_json else progress,
            conversation_id=conversation,
        )
        keep(engine, result["conversation_id"])
    if as_json:
        emit_json(result)
        return
    answer_view(result)
    err.print(
        f"[dim]conversation {result['conversation_id']}, turn {result['turn']}: follow it up with "
        f'ask --conversation {result["conversation_id"]} "..."[/]'
    )


def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000,
    reviewers: Annotated[
        str, typer.Option(help="Comma-separated allow-list of who may decide reviews.")
    ] = "reviewer@example.com",
) -> None:
    """Serve the API on localhost over the local engine: queries, and the reviewer page."""
    run_server(port, reviewers)


def run_server(port: int, reviewers: str, *, mounts: bool = False) -> None:
    """The API over a running engine until interrupted; ``mounts`` lists the template's API
    routes first, as ``sam local start-api`` does."""
    import time

    from panelbrain.cli.present import serving_view
    from panelbrain.local.engine import LocalEngine
    from panelbrain.local.lambda_rules import api_routes
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
        serving_view(server.url, reviewers, api_routes(engine.template) if mounts else None)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            err.print("stopping")
        finally:
            server.stop()
