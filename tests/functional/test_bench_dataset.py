"""``panelbrain bench dataset`` at a tiny size: what it refuses, and the document it prints.
No timing is asserted (ADR 0007): only that every figure is there and the answers agree."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", "bench", "dataset", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--rows", "10"], "--rows must be at least 100"),
        (["--columns", "5"], "--columns must be at least 8"),
        (["--repeat", "0"], "--repeat must be at least 1"),
    ],
)
def test_a_size_too_small_is_refused_in_one_line_before_any_work(args: list[str], named: str) -> None:
    # GIVEN a panel too small to hold the benchmark's questions (or no timed run)
    # WHEN the benchmark is asked for it
    result = run(*args, "--json")
    # THEN it exits 2 with one error line naming the option, and prints no document
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], result.stderr


def test_a_tiny_panel_is_added_published_and_answered_by_each_data_function() -> None:
    # GIVEN a 2,000 x 10 panel
    # WHEN the benchmark runs with --json
    result = run("--rows", "2000", "--columns", "10", "--repeat", "1", "--json")
    # THEN it prints one JSON document (progress, if any, on stderr)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["rows"], document["columns"]) == (2000, 10)
    assert document["panel_file"]["columns"] == 10
    # AND the panel passed its check when added, and was published as a version
    assert document["add"]["problems"] == []
    assert document["publish"]["data_version"].startswith("sha256-")
    # AND each data function answered cold and warm, its peak held against its MemorySize
    assert set(document["functions"]) == {"sql_writer", "data_processor", "weight_applier"}
    for figures in document["functions"].values():
        assert figures["memory_size_mb"] >= 128
        assert figures["peak_mib"] > 0 and isinstance(figures["fits"], bool)
        assert set(figures["warm_seconds"]) == set(document["questions"])
        assert set(figures["warm_ratio_vs_peer"]) == set(document["questions"])
    # AND the peer (DuckDB over the same Parquet) counted exactly what the SQL writer counted
    assert document["peer"]["max_count_diff_vs_sql_writer"] == dict.fromkeys(document["questions"], 0)
    # AND what a columnar scan of each question reads is a part of the file, never more
    scanned = document["parquet_columns"]["scanned_bytes_per_question"]
    assert 0 < max(scanned.values()) < document["parquet_columns"]["total_compressed_bytes"]
