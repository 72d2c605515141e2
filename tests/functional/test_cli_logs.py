"""``panelbrain logs``: what it says when there is nothing to show (exit 2, one line naming why),
and that ``panelbrain ask`` leaves a journey it can show, from another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PANELBRAIN_STATE_DIR": str(state),
        "PANELBRAIN_TEMPLATE": str(ROOT / "template.yaml"),
    }
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.stdout == "" and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("query_id", "written", "says"),
    [
        ("q-0123456789abcdef", False, "no local logs at"),
        ("q-0123456789abcdef", True, "no log lines for query q-0123456789abcdef in"),
        ("q-../../etc", True, "QUERY_ID must be a query id"),
    ],
)
def test_nothing_to_show_is_bad_input_naming_why(
    tmp_path: Path, query_id: str, written: bool, says: str
) -> None:
    if written:
        (tmp_path / "logs.jsonl").write_text(json.dumps({"source": "ApiFunction", "message": {}}) + "\n")
    assert says in one_line_error(run("logs", query_id, state=tmp_path))


def test_a_question_asked_in_one_command_is_traced_by_the_next(tmp_path: Path) -> None:
    # GIVEN a question asked with `panelbrain ask` (its own process and engine)
    asked = run("ask", "What share support a ban on abortion?", "--json", state=tmp_path)
    assert asked.returncode == 0, asked.stderr
    query_id = json.loads(asked.stdout)["query_id"]  # stdout holds the one document: no log line
    # WHEN another process asks for its logs THEN the journey is there, API first, persist last
    shown = run("logs", query_id, state=tmp_path)
    assert shown.returncode == 0, shown.stderr
    sources = [line.split()[1] for line in shown.stdout.splitlines()]
    assert sources[0] == "ApiFunction" and sources[-2:] == ["PersistFunction", "QueryPipelineStateMachine"]
    assert {"PollerFunction", "BrainPlanFunction", "BrainSynthesiseFunction", "FormatterFunction"} <= set(
        sources
    )
