"""Functions and libraries log through Powertools Logger (panelbrain.observe), never print:
a bare print has no level, no query_id, and in Lambda lands in CloudWatch as an unkeyed line.
Only the command line prints, to the person at the terminal."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "panelbrain"
# The command line's own modules: its output is for the person who ran it.
CLI = ("cli/",)


def print_calls(source: str) -> list[int]:
    """Lines of calls to the built-in print (a method named print, say a console's, is not one)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]


def test_no_print_outside_the_cli() -> None:
    # GIVEN every module of the package but the command line's
    modules = [p for p in SRC.rglob("*.py") if not any(str(p.relative_to(SRC)).startswith(c) for c in CLI)]
    assert len(modules) > 50
    # WHEN their calls are read THEN none is a bare print
    calls = {str(p.relative_to(SRC)): print_calls(p.read_text(encoding="utf-8")) for p in modules}
    found = {module: lines for module, lines in calls.items() if lines}
    assert found == {}, f"print outside the CLI (use panelbrain.observe.logger): {found}"


def test_the_check_finds_a_print_and_ignores_a_console_method() -> None:
    assert print_calls('import json\nprint(json.dumps({"level": "INFO"}))\n') == [2]
    assert print_calls("console.print('x')\ndef print(self): ...\n") == []
