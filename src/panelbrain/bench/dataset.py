"""``panelbrain bench dataset``: an analyst's large survey added, published and queried.

A seeded, labelled SPSS file of ROWS x COLUMNS is written (``.sav`` is what fieldwork delivers:
variable labels, value labels, user-missing codes, measurement levels, all of which ``datasets
add`` drafts the dictionary from; a Parquet file carries none of them and would skip the
drafting that real input costs). Then each step runs in a fresh process of its own, as a
Lambda container is one:

- ``add``: :func:`panelbrain.data.importer.add_dataset` (read, draft, store Parquet, check).
- ``publish``: :func:`panelbrain.data.remote.publish` to an in-process moto S3 bucket, versioned.
- each data function (SQL writer, data processor, weight applier): its agent's ``run`` on a plan,
  cold (nothing in /tmp or memory: fetch from S3, load and check, first answer) then warm (the
  same container, each question again; best of ``repeat``).
- the peer (ADR 0007): plain DuckDB over the same stored Parquet file, the same questions as SQL,
  in a fresh process, cold and warm; its counts are compared with the SQL writer's.

Peak memory is the process's resident high-water mark (``VmHWM``), reset just before the
measured step (``/proc/self/clear_refs``), so native memory (DuckDB, numpy, pandas) counts, and
what set the process up (moto, the publish) does not. It is held against each function's
``MemorySize`` in template.yaml.
"""

from __future__ import annotations

import math
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

NAME = "bench_panel"
BUCKET = "panelbrain-bench-datasets"
MIN_COLUMNS = 8  # id, weight, four demographics, two questions
MIN_ROWS = 100

# Population margins (the targets) and how the sample leans away from them, as an opt-in panel does.
DEMOGRAPHICS: dict[str, tuple[str, list[str], list[float], list[float]]] = {
    # column: (label, categories, population shares, sample shares)
    "region": (
        "Region of residence",
        ["North", "South", "East", "West", "Central"],
        [0.20, 0.25, 0.20, 0.15, 0.20],
        [0.16, 0.27, 0.20, 0.18, 0.19],
    ),
    "gender": ("Gender", ["Female", "Male"], [0.51, 0.49], [0.58, 0.42]),
    "age_group": (
        "Age group",
        ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"],
        [0.12, 0.18, 0.17, 0.17, 0.16, 0.20],
        [0.06, 0.14, 0.17, 0.21, 0.22, 0.20],
    ),
    "education": (
        "Highest education",
        ["None", "Secondary", "Vocational", "Bachelor", "Postgraduate"],
        [0.10, 0.40, 0.20, 0.20, 0.10],
        [0.05, 0.32, 0.20, 0.28, 0.15],
    ),
}
LIKERT: dict[int | float, str] = {
    1: "Strongly disagree",
    2: "Disagree",
    3: "Neither",
    4: "Agree",
    5: "Strongly agree",
    9: "Don't know",
}
YES_NO: dict[int | float, str] = {1: "Yes", 2: "No", 9: "Don't know"}
DONT_KNOW = 9
NUMERIC_EVERY = 10  # one question in ten is a 0-10 score (scale), the rest coded answers

Say = Callable[[str], None]


def _progress(text: str) -> None:
    """Progress for the person running the bench (each step runs in a process of its own)."""
    from rich.console import Console

    Console(stderr=True, highlight=False, markup=False).print(text)


def _quiet(_: str) -> None:
    return None


# -- the panel file ----------------------------------------------------------------------------


def write_panel_file(path: Path, *, rows: int, columns: int, seed: int, say: Say = _quiet) -> dict[str, Any]:
    """Write a labelled SPSS panel of ``rows`` x ``columns`` to ``path``; return its shape."""
    import numpy as np
    import pandas as pd
    import pyreadstat

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {"respondent_id": np.arange(1, rows + 1, dtype=np.int64)}
    labels: dict[str, str | None] = {"respondent_id": "Respondent ID", "weight": "Design weight"}
    value_labels: dict[str, Any] = {}  # pyreadstat wants int codes for int columns
    measures = {"respondent_id": "scale", "weight": "scale"}
    missing: dict[str, list[Any]] = {}
    data["weight"] = rng.uniform(0.5, 2.0, rows).round(4)
    for column, (label, categories, _, sample) in DEMOGRAPHICS.items():
        data[column] = rng.choice(len(categories), size=rows, p=sample).astype(np.int8) + 1
        labels[column] = label
        value_labels[column] = {i + 1: c for i, c in enumerate(categories)}
        measures[column] = "nominal"
    questions = columns - 2 - len(DEMOGRAPHICS)
    # Answers lean with age, so weighted and unweighted shares differ as on a real panel.
    lean = (data["age_group"].astype(np.float64) - 3.5) / 5.0
    for i in range(1, questions + 1):
        name = f"q{i:03d}"
        if i % NUMERIC_EVERY == 0:
            score = np.clip(np.round(rng.normal(5.0 + lean, 2.0)), 0, 10)
            score[rng.random(rows) < 0.02] = np.nan  # a blank: not asked
            data[name] = score
            labels[name] = f"Question {i}: score from 0 to 10"
            measures[name] = "scale"
            continue
        codes: dict[int | float, str] = YES_NO if i % 7 == 0 else LIKERT
        answers = len(codes) - 1
        drawn = np.clip(np.floor(rng.random(rows) * answers + lean * (i % 3)), 0, answers - 1).astype(np.int8)
        drawn += 1
        drawn[rng.random(rows) < 0.03] = DONT_KNOW
        data[name] = drawn
        labels[name] = f"Question {i}: agreement" if codes is LIKERT else f"Question {i}: yes or no"
        value_labels[name] = dict(codes)
        measures[name] = "ordinal" if codes is LIKERT else "nominal"
        missing[name] = [DONT_KNOW]
        if i % 50 == 0:
            say(f"  drew {i:,} of {questions:,} questions")
    frame = pd.DataFrame(data)
    say(f"writing {path.name} ({rows:,} x {columns:,})...")
    pyreadstat.write_sav(
        frame,
        str(path),
        file_label="Benchmark panel",
        column_labels=labels,
        variable_value_labels=value_labels,
        variable_measure=measures,
        missing_ranges=missing,
    )
    return {"rows": rows, "columns": int(frame.shape[1]), "bytes": path.stat().st_size}


def write_targets(path: Path) -> None:
    """The population margins of the four demographics, as ``datasets add --targets`` reads."""
    import yaml

    document = {
        column: {category: share for category, share in zip(categories, population, strict=True)}
        for column, (_, categories, population, _) in DEMOGRAPHICS.items()
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


# -- the questions -----------------------------------------------------------------------------


def questions(columns: int) -> dict[str, dict[str, Any]]:
    """Three representative plans' fields: a share by a breakdown, a filtered share, weighted."""
    del columns  # q001 and q002 exist at every size the command accepts
    return {
        "share_by_region": {"measure": "q001", "breakdown": "region", "weighted": False},
        "share_among_women": {
            "measure": "q002",
            "filters": [{"column": "gender", "values": ["1"]}],
            "weighted": False,
        },
        "weighted_share_by_age": {"measure": "q001", "breakdown": "age_group", "weighted": True},
    }


def _plan(key: str, fields: dict[str, Any]) -> Any:
    from panelbrain.models import Plan

    return Plan(
        query_id=f"bench-{key}",
        question=key.replace("_", " "),
        dataset=NAME,
        intent="share",
        needs={"sql_writer": True, "weight_applier": True, "data_processor": True},
        confidence=1.0,
        provider="offline",
        **fields,
    )


def peer_sql(fields: dict[str, Any], parquet: str) -> str:
    """The question as plain DuckDB SQL over the stored Parquet: codes as the dictionary writes
    them, the Don't-know code read as missing (as the dictionary says), bases per category."""

    def code(column: str) -> str:
        return f"CAST(CAST(NULLIF({column}, {DONT_KNOW}) AS INTEGER) AS VARCHAR)"

    group = f"{code(fields['breakdown'])} AS grp, " if fields.get("breakdown") else ""
    where = " AND ".join(
        f"{code(f['column'])} IN ({', '.join(repr(v) for v in f['values'])})"
        for f in fields.get("filters", [])
    )
    keys = "grp, category" if fields.get("breakdown") else "category"
    sql = f"SELECT {group}{code(fields['measure'])} AS category, count(*) AS n FROM read_parquet('{parquet}')"
    return sql + (f" WHERE {where}" if where else "") + f" GROUP BY {keys} ORDER BY {keys}"


# -- measuring inside a child process ----------------------------------------------------------


def _status_kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(found.group(1))


def _reset_peak() -> float:
    """Reset the resident high-water mark (Linux: ``echo 5 > /proc/self/clear_refs``); return the
    resident MiB now, the baseline of the step about to run."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") / 1024


def _peak_mib() -> float:
    return _status_kib("VmHWM") / 1024


def _child_env(env: dict[str, str]) -> None:
    os.environ.update(env)
    # The emulated account: moto accepts any credentials, and nothing may reach a real one.
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[key] = value
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(key, None)


def _add_step(sav: str, targets: str, env: dict[str, str], verbose: bool) -> dict[str, Any]:
    _child_env(env)
    from panelbrain.data.importer import add_dataset

    def progress(stage: str, done: int, total: int | None) -> None:
        if verbose and (stage != "reading" or done % 500_000 == 0 or done == total):
            of = f" {done:,} of {total:,} rows" if total else ""
            _progress(f"  add: {stage}{of}")

    baseline = _reset_peak()
    started = time.perf_counter()
    added = add_dataset(
        Path(sav), NAME, weight="weight", id_column="respondent_id", targets=Path(targets), progress=progress
    )
    seconds = time.perf_counter() - started
    parquet = added.path / f"{added.spec.main_table.name}.parquet"
    return {
        "seconds": seconds,
        "peak_mib": _peak_mib(),
        "baseline_mib": baseline,
        "problems": [str(p) for p in added.problems],
        "parquet": str(parquet),
        "parquet_bytes": parquet.stat().st_size,
        "dataset_dir": str(added.path),
        "notes": len(added.notes),
    }


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def _function_step(worker: str, env: dict[str, str], repeat: int, verbose: bool) -> dict[str, Any]:
    """One data function's container: publish to the emulated bucket (set-up, not measured
    against the function), then cold and warm answers."""
    _child_env(env)
    import importlib

    # What the function's own container loads at init, before any emulator: the peak reported
    # is this plus what the step added above its baseline, so moto's own memory is not counted.
    agent = importlib.import_module(f"panelbrain.agents.{worker}")
    from panelbrain.agents import context
    from panelbrain.aws import clients
    from panelbrain.data import remote

    init_mib = _status_kib("VmRSS") / 1024
    from moto import mock_aws

    with mock_aws():
        s3 = clients.client("s3")
        s3.create_bucket(Bucket=env["DATASETS_BUCKET"])
        s3.put_bucket_versioning(Bucket=env["DATASETS_BUCKET"], VersioningConfiguration={"Status": "Enabled"})
        publish_baseline = _reset_peak()
        started = time.perf_counter()
        published = remote.publish(s3, env["DATASETS_BUCKET"], NAME, Path(env["BENCH_DATASET_DIR"]))
        publish = {
            "seconds": time.perf_counter() - started,
            "peak_mib": _peak_mib(),
            "baseline_mib": publish_baseline,
            "data_version": published["data_version"],
        }
        remote.forget()
        plans = {key: _plan(key, fields) for key, fields in questions(0).items()}
        first = next(iter(plans))
        if verbose:
            _progress(f"  {worker}: cold ({first})...")
        baseline = _reset_peak()
        started = time.perf_counter()
        remote.materialise(NAME)  # the fetch from S3 into /tmp, timed on its own
        fetched = time.perf_counter()
        context.dataset(NAME)  # read, check against the dictionary, type
        loaded = time.perf_counter()
        answer = agent.run(plans[first])
        done = time.perf_counter()
        cold = {
            "seconds": done - started,
            "fetch_seconds": fetched - started,
            "load_and_check_seconds": loaded - fetched,
            "first_answer_seconds": done - loaded,
            "peak_mib": _peak_mib(),
            "baseline_mib": baseline,
        }
        cold["function_peak_mib"] = init_mib + cold["peak_mib"] - baseline
        warm: dict[str, float] = {}
        rows: dict[str, Any] = {}
        for key, plan in plans.items():
            if verbose:
                _progress(f"  {worker}: warm ({key}, best of {repeat})...")
            seconds, answer = _best(partial(agent.run, plan), repeat)
            warm[key] = seconds
            if worker == "sql_writer":
                rows[key] = answer.output["rows"]
        peak = _peak_mib()  # since the cold step's reset: cold and warm
        return {
            "publish": publish,
            "cold": cold,
            "warm_seconds": warm,
            "init_mib": init_mib,
            "peak_mib": peak,
            "function_peak_mib": init_mib + peak - baseline,
            "rows": rows,
        }


def _fetch(con: Any, sql: str) -> list[Any]:
    return list(con.execute(sql).fetchall())


def _peer_step(parquet: str, repeat: int) -> dict[str, Any]:
    import duckdb

    baseline = _reset_peak()
    plans = questions(0)
    cold: dict[str, float] = {}
    warm: dict[str, float] = {}
    rows: dict[str, Any] = {}
    started = time.perf_counter()
    con = duckdb.connect()
    for key, fields in plans.items():
        sql = peer_sql(fields, parquet)
        begun = time.perf_counter()
        con.execute(sql).fetchall()
        cold[key] = time.perf_counter() - begun
        if key == next(iter(plans)):
            cold[key] = time.perf_counter() - started  # the first one pays for the connection
        warm[key], rows[key] = _best(partial(_fetch, con, sql), repeat)
    return {
        "cold_seconds": cold,
        "warm_seconds": warm,
        "peak_mib": _peak_mib(),
        "baseline_mib": baseline,
        "rows": rows,
    }


def column_bytes(parquet: Path) -> dict[str, int]:
    """Each column's compressed bytes in the Parquet file (all row groups): what a columnar
    engine reads from S3 for that column (Athena bills the bytes it scans)."""
    import duckdb

    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT path_in_schema, sum(total_compressed_size) FROM parquet_metadata(?) GROUP BY 1",
            [str(parquet)],
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


def scanned_bytes(fields: dict[str, Any], sizes: dict[str, int], weight: str = "weight") -> int:
    """The bytes a columnar scan of one question reads: its measure, breakdown, filter columns,
    and the weight when it is weighted (the raking variables too: the weights are raked on them)."""
    columns = {fields["measure"], *(f["column"] for f in fields.get("filters", []))}
    if fields.get("breakdown"):
        columns.add(fields["breakdown"])
    if fields.get("weighted"):
        columns |= {weight, *DEMOGRAPHICS}
    return sum(sizes[c] for c in columns)


def _in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    # spawn, not fork: a fresh interpreter, as a new Lambda container starts with nothing loaded.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# -- the benchmark -----------------------------------------------------------------------------


def memory_settings(template: Path) -> dict[str, int]:
    """Each data function's MemorySize (MB) as template.yaml declares it (or its Globals)."""
    from panelbrain.local.template import Template

    body = Template.load(template).body
    default = int(body.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    found: dict[str, int] = {}
    for resource in body["Resources"].values():
        properties = resource.get("Properties", {})
        handler = str(properties.get("Handler", ""))
        for worker in WORKERS:
            if handler == f"panelbrain.functions.{worker}.handler":
                found[worker] = int(properties.get("MemorySize", default))
    return found


WORKERS = ("sql_writer", "data_processor", "weight_applier")


def _counts(rows: list[list[Any]]) -> dict[tuple[str, ...], int]:
    return {tuple("" if v is None else str(v) for v in row[:-1]): int(row[-1]) for row in rows}


def run_dataset_benchmark(
    *, rows: int, columns: int, repeat: int, seed: int, template: Path, say: Say | None = None
) -> dict[str, Any]:
    """Generate, add, publish and query one panel; return seconds, peak memory and ratios.
    ``say`` receives progress lines (the child processes write theirs to stderr when it is set)."""
    verbose = say is not None
    say = say or _quiet
    if not Path("/proc/self/clear_refs").exists():
        from panelbrain.errors import BadInputError

        raise BadInputError("bench dataset reads peak memory from /proc (Linux, as Lambda runs)")
    settings = memory_settings(template)
    with tempfile.TemporaryDirectory(prefix="panelbrain-bench-dataset-") as temp:
        root = Path(temp)
        sav, targets = root / "panel.sav", root / "targets.yaml"
        say(f"generating a {rows:,} x {columns:,} labelled SPSS panel (seed {seed})...")
        started = time.perf_counter()
        panel = write_panel_file(sav, rows=rows, columns=columns, seed=seed, say=say)
        panel["seconds"] = time.perf_counter() - started
        write_targets(targets)
        env = {"PANELBRAIN_DATASETS": str(root / "datasets"), "XDG_DATA_HOME": str(root / "xdg")}
        say("add (a fresh process)...")
        added = _in_child(_add_step, str(sav), str(targets), env, verbose)
        say(f"  {added['seconds']:.1f} s, peak {added['peak_mib']:,.0f} MiB")
        functions: dict[str, Any] = {}
        for worker in WORKERS:
            say(f"{worker}: publish to the emulated bucket, then cold and warm answers (a fresh process)...")
            worker_env = env | {
                "DATASETS_BUCKET": BUCKET,
                "BENCH_DATASET_DIR": added["dataset_dir"],
                "PANELBRAIN_CACHE_DIR": str(root / f"tmp-{worker}"),  # the container's own /tmp
                "DATASETS_REFRESH_S": "3600",
            }
            functions[worker] = _in_child(_function_step, worker, worker_env, repeat, verbose)
            cold = functions[worker]["cold"]
            say(f"  cold {cold['seconds']:.2f} s, peak {cold['peak_mib']:,.0f} MiB")
        say("peer: plain DuckDB over the same Parquet file (a fresh process)...")
        peer = _in_child(_peer_step, added["parquet"], repeat)
        sizes = column_bytes(Path(added["parquet"]))
    publish = functions["sql_writer"]["publish"]
    ours = functions["sql_writer"]
    agreement = {
        key: max(
            (abs(_counts(ours["rows"][key]).get(k, 0) - n) for k, n in _counts(peer["rows"][key]).items()),
            default=0,
        )
        + abs(len(_counts(ours["rows"][key])) - len(_counts(peer["rows"][key])))
        for key in peer["rows"]
    }
    first = next(iter(peer["cold_seconds"]))
    report_functions = {}
    for worker, figures in functions.items():
        memory = settings.get(worker)
        report_functions[worker] = {
            "memory_size_mb": memory,
            "cold": figures["cold"],
            "warm_seconds": figures["warm_seconds"],
            "init_mib": figures["init_mib"],
            "process_peak_mib": figures["peak_mib"],
            "peak_mib": figures["function_peak_mib"],
            # MemorySize is in MB (10^6 bytes); the peak in MiB (2^20).
            "fits": memory is not None and figures["function_peak_mib"] * 2**20 <= memory * 10**6,
            "cold_ratio_vs_peer": figures["cold"]["seconds"] / peer["cold_seconds"][first],
            "warm_ratio_vs_peer": {
                key: seconds / peer["warm_seconds"][key] for key, seconds in figures["warm_seconds"].items()
            },
        }
    return {
        "benchmark": "dataset",
        "rows": rows,
        "columns": columns,
        "repeat": repeat,
        "seed": seed,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "panel_file": panel,
        "add": {k: v for k, v in added.items() if k not in ("parquet", "dataset_dir")},
        "publish": publish,
        "functions": report_functions,
        "peer": {
            "name": "DuckDB over the stored Parquet file (read_parquet, the same questions as SQL)",
            "cold_seconds": peer["cold_seconds"],
            "warm_seconds": peer["warm_seconds"],
            "peak_mib": peer["peak_mib"],
            "baseline_mib": peer["baseline_mib"],
            "max_count_diff_vs_sql_writer": agreement,
        },
        "questions": questions(columns),
        "parquet_columns": {
            "total_compressed_bytes": sum(sizes.values()),
            "largest_column_bytes": max(sizes.values()),
            "scanned_bytes_per_question": {
                key: scanned_bytes(fields, sizes) for key, fields in questions(columns).items()
            },
        },
        "note": (
            "each step in a fresh process; a function's peak = its resident memory after init "
            "(imports) + the high-water mark above the step's baseline (the emulator's memory "
            "excluded), in MiB, against its MemorySize (MB) in template.yaml; warm = best of N"
        ),
    }
