"""``panelbrain chat`` and ``ask --conversation``: follow-ups from the terminal and from scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run(*args: str, state: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PANELBRAIN_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=300,
        check=False,
    )


def test_a_script_follows_up_with_ask_conversation(tmp_path: Path) -> None:
    # GIVEN a question asked from a script
    first = run("ask", "What share say religion is very important?", "--json", state=tmp_path)
    assert first.returncode == 0, first.stderr
    opened = json.loads(first.stdout)
    assert opened["turn"] == 1
    # WHEN a later command follows it up by its conversation id
    second = run("ask", "by gender", "--conversation", opened["conversation_id"], "--json", state=tmp_path)
    # THEN the follow-up refines the first reading, in the same conversation
    assert second.returncode == 0, second.stderr
    followed = json.loads(second.stdout)
    assert (followed["conversation_id"], followed["turn"], followed["read_as"]) == (
        opened["conversation_id"],
        2,
        "followup",
    )
    assert followed["reading"]["breakdown"] == "gender" and followed["reading"]["values"] == ["very"]
    assert {row["group"] for row in followed["table"]} >= {"Female", "Male"}


def test_ask_refuses_an_unknown_conversation_in_one_line(tmp_path: Path) -> None:
    result = run("ask", "by gender", "--conversation", "c-0123456789abcdef", state=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --conversation: no conversation c-0123456789abcdef")
    assert result.stderr.count("\n") == 1


def test_chat_answers_follow_ups_with_tables_and_toggles(tmp_path: Path) -> None:
    # GIVEN a chat session fed a question, follow-ups and toggles, ended by end of input (Ctrl-D)
    typed = "\n".join(
        [
            "What share support a ban on abortion?",
            "only women",
            ":sql",
            ":weighted",
            ":json",
            "by gender",
            ":history",
        ]
    )
    result = run("chat", state=tmp_path, stdin=typed + "\n")
    # THEN each answer shows its turn and table, :sql shows the SQL, :weighted asks unweighted,
    # :json prints the JSON document, :history lists the turns, and the session ends cleanly
    assert result.returncode == 0, result.stderr
    assert "turn 1, read as a question" in result.stdout
    assert "turn 2, read as a follow-up" in result.stdout and "20.4% of women" in result.stdout
    assert "SELECT" in result.stdout and "unweighted)" in result.stdout
    assert '"read_as": "followup"' in result.stdout
    assert "  4  by gender" in result.stdout
    assert "kept: ask --conversation c-" in result.stderr
    assert len(list((tmp_path / "conversations").glob("c-*.json"))) == 1
