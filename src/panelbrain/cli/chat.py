"""``panelbrain chat``: a conversation in the terminal over the local engine, and the local
conversation files that let ``panelbrain ask --conversation ID`` follow up from a script.

Each question goes the way ``ask`` sends it (API, queue, poller, pipeline) with the
conversation's id, so a follow-up ("and by province?", "only women", "unweighted") refines the
previous reading. The local engine keeps its tables in memory for one command; a conversation
that ``ask`` started or continued is written to ``$PANELBRAIN_STATE_DIR/conversations/ID.json``
(its turns as the conversations table holds them, expiry included) and put back into the next
engine that asks with ``--conversation ID``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from panelbrain.cli.common import DatasetOption, emit_json, err, out
from panelbrain.errors import BadInputError, PanelbrainError

if TYPE_CHECKING:
    from panelbrain.local.engine import LocalEngine

TABLE = "ConversationsTable"
_ID = re.compile(r"c-[0-9a-f]{16}")
HELP = (
    "Ask a question, then follow it up: 'and by province?', 'only women', 'what about Quebec?', "
    "'unweighted', 'same for men', 'drop the gender filter'.\n"
    ":weighted  switch the current question between weighted and unweighted\n"
    ":sql       show or hide the SQL after each answer\n"
    ":json      show each answer as its JSON document, or not\n"
    ":history   the conversation so far      :new  start a new conversation\n"
    "Ctrl-D leaves."
)


def _folder() -> Path:
    from panelbrain.local.logs import session_log_file

    return session_log_file().parent / "conversations"


def load(conversation_id: str) -> list[dict[str, Any]]:
    """A kept conversation's turns, as the conversations table held them."""
    if not _ID.fullmatch(conversation_id):
        raise BadInputError(f"--conversation must be an id like c-0123456789abcdef, got {conversation_id!r}")
    path = _folder() / f"{conversation_id}.json"
    if not path.is_file():
        raise BadInputError(
            f"--conversation: no conversation {conversation_id} in {path.parent} "
            "(ask without --conversation to start one)"
        )
    items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return items


def restore(engine: LocalEngine, items: list[dict[str, Any]]) -> str:
    """Put a kept conversation's turns back into ``engine``'s table; returns its dataset."""
    table = engine.template.resolve({"Ref": TABLE})
    for item in items:
        engine.clients["dynamodb"].put_item(TableName=table, Item=item)
    return str(items[-1]["dataset"]["S"]) if items else "ces11"


def keep(engine: LocalEngine, conversation_id: str) -> Path:
    """Write the conversation's turns from ``engine`` to its local file."""
    table = engine.template.resolve({"Ref": TABLE})
    items = engine.clients["dynamodb"].query(
        TableName=table,
        KeyConditionExpression="conversation_id = :c",
        ExpressionAttributeValues={":c": {"S": conversation_id}},
    )["Items"]
    path = _folder() / f"{conversation_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
    return path


def chat(
    dataset: DatasetOption = "ces11",
    provider: Annotated[str, typer.Option(help="offline (default) or bedrock.")] = "offline",
) -> None:
    """Ask questions and follow them up, in the terminal, over the local engine."""
    from panelbrain.local.engine import LocalEngine
    from panelbrain.local.logs import session_log_file

    if provider not in ("offline", "bedrock"):
        raise BadInputError(f"--provider must be offline or bedrock, got {provider!r}")
    with LocalEngine.running(log_file=session_log_file()) as engine:
        err.print(f"[dim]panelbrain chat on {dataset} ({provider}); :help for commands, Ctrl-D to leave[/]")
        Session(engine, dataset, provider).run()


class Session:
    """One terminal conversation: the toggles and the conversation id between questions."""

    def __init__(self, engine: LocalEngine, dataset: str, provider: str) -> None:
        self.engine, self.dataset, self.provider = engine, dataset, provider
        self.conversation: str | None = None
        self.weighted = True
        self.show_sql = False
        self.as_json = False

    def run(self) -> None:
        while True:
            try:
                line = input("? ").strip()
            except EOFError:
                err.print()
                break
            except KeyboardInterrupt:
                err.print()
                break
            if line:
                self.handle(line)
        if self.conversation:
            keep(self.engine, self.conversation)
            err.print(
                f"[dim]conversation {self.conversation} kept: ask --conversation {self.conversation}[/]"
            )

    def handle(self, line: str) -> None:
        if line.startswith(":"):
            question = self.command(line)
            if question is None:
                return
        else:
            question = line
        self.ask(question)

    def command(self, line: str) -> str | None:
        """Run a ``:command``; returns the follow-up it asks, if any."""
        name = line[1:].strip().lower()
        if name == "sql":
            self.show_sql = not self.show_sql
            err.print(f"[dim]SQL {'shown' if self.show_sql else 'hidden'}[/]")
        elif name == "json":
            self.as_json = not self.as_json
            err.print(f"[dim]JSON {'on' if self.as_json else 'off'}[/]")
        elif name == "weighted":
            if self.conversation is None:
                err.print("[yellow]ask a question first: :weighted switches its weighting[/]")
                return None
            return "unweighted" if self.weighted else "weighted"
        elif name == "history":
            self.history()
        elif name == "new":
            self.conversation, self.weighted = None, True
            err.print("[dim]new conversation[/]")
        elif name == "help":
            err.print(HELP)
        else:
            err.print(f"[yellow]unknown command {line!r}[/]; :help lists them")
        return None

    def ask(self, question: str) -> None:
        from panelbrain.local.ask import ask

        try:
            result = ask(
                self.engine,
                question,
                dataset=self.dataset,
                provider=self.provider,
                conversation_id=self.conversation,
            )
        except PanelbrainError as exc:
            err.print(f"[red]error:[/] {exc.message}")
            return
        self.conversation = result.get("conversation_id", self.conversation)
        reading = result.get("reading")
        if isinstance(reading, dict):
            self.weighted = bool(reading.get("weighted", True))
        elif question in ("weighted", "unweighted"):
            self.weighted = question == "weighted"
        if self.as_json:
            emit_json(result)
        else:
            self.show(result)

    def show(self, result: dict[str, Any]) -> None:
        read = {"followup": "a follow-up", "new": "a new question", "question": "a question"}
        where = f"turn {result.get('turn')}, read as {read.get(str(result.get('read_as')), 'a question')}"
        cached = ", from the result cache" if result.get("cached") else ""
        out.rule(f"[bold]{result['status']}[/] [dim]({where}{cached})[/]")
        if result.get("answer"):
            out.print(result["answer"])
        if result.get("reason"):
            out.print(f"[bold]Why:[/] {result['reason']}")
        rows = result.get("table") or []
        if rows:
            out.print(_table(rows))
        if result.get("confidence") is not None:
            out.print(
                f"[dim]confidence {result['confidence']:.2f}: {'; '.join(result['confidence_reasons'])}[/]"
            )
        if self.show_sql and result.get("sql"):
            out.print(f"[dim]{result['sql']}[/]")
        if result["status"] == "needs_review":
            out.print("[yellow]This answer waits for a reviewer (panelbrain serve has the reviewer page).[/]")

    def history(self) -> None:
        from panelbrain.local.ask import api_gateway_event

        if self.conversation is None:
            err.print("[dim]no conversation yet[/]")
            return
        response = self.engine.api_call(api_gateway_event("GET", f"/conversations/{self.conversation}"))
        document = json.loads(response["body"])
        for turn in document.get("turns", []):
            about = f"{turn['status']}, {_reading(turn['reading'])}"
            out.print(f"{turn['turn']:>3}  {turn['question']}  [dim]{about}[/]", markup=True)


def _reading(reading: dict[str, Any] | None) -> str:
    from panelbrain.models import Reading

    return Reading.model_validate(reading).describe() if reading else "reading pending"


def _table(rows: list[dict[str, Any]]) -> Table:
    grid = Table(show_edge=False)
    columns = list(rows[0])
    for column in columns:
        grid.add_column(column, justify="right" if isinstance(rows[0][column], (int, float)) else "left")
    for row in rows:
        grid.add_row(*(_cell(row.get(c)) for c in columns))
    return grid


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return "" if value is None else str(value)
