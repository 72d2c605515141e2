"""``panelbrain bench rake``: panelbrain's raking against weightipy and ipfn on the same panel.

Every tool gets the same frame (categorical columns) and the same targets, and must return one
weight per row; the clock covers everything that takes: validation, the tool's own glue, the
weights mapped back onto the rows, and panelbrain's full report. ipfn is given the fastest glue
we know (cell counts by ``np.bincount``), so its figure is its best case. The best of ``repeat``
runs is kept, after one untimed warm-up run per tool, with the garbage collector paused
during the timed runs as ``timeit`` does.
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import platform
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd

from panelbrain.data.catalog import default_targets, load_dataset
from panelbrain.data.weighting import rake

NOTE = (
    "same frame and targets for every tool; best of N runs after a warm-up; "
    "ipfn at convergence_rate 1e-10, weightipy at its defaults"
)


class _Progress(Protocol):
    def print(self, *objects: Any) -> None: ...


def _weightipy(frame: pd.DataFrame, targets: dict[str, dict[str, float]]) -> np.ndarray:
    import weightipy

    scheme = weightipy.scheme_from_dict(
        {var: {cat: share * 100 for cat, share in spec.items()} for var, spec in targets.items()}
    )
    with contextlib.redirect_stdout(io.StringIO()):  # weightipy prints on non-convergence
        weights = weightipy.weight(frame[list(targets)], scheme)
    return np.asarray(weights, dtype=float)


def _ipfn(frame: pd.DataFrame, targets: dict[str, dict[str, float]]) -> np.ndarray:
    from ipfn import ipfn

    variables = list(targets)
    codes = [frame[v].array.codes for v in variables]
    sizes = [len(frame[v].cat.categories) for v in variables]
    cell = np.ravel_multi_index(codes, sizes)
    counts = np.bincount(cell, minlength=math.prod(sizes)).astype(float).reshape(sizes)
    n = float(len(frame))
    aggregates = [np.array([targets[v][str(c)] * n for c in frame[v].cat.categories]) for v in variables]
    dimensions = [[i] for i in range(len(variables))]
    with contextlib.redirect_stdout(io.StringIO()):  # ipfn prints on convergence
        fitted = ipfn.ipfn(
            counts.copy(), aggregates, dimensions, convergence_rate=1e-10, max_iteration=1000
        ).iteration()
    with np.errstate(invalid="ignore", divide="ignore"):
        per_row = np.where(counts > 0, fitted / counts, 0.0).ravel()
    return np.asarray(per_row[cell], dtype=float)


def _ipfn_pandas(frame: pd.DataFrame, targets: dict[str, dict[str, float]]) -> np.ndarray:
    """ipfn's pandas mode, as its README shows: a cell table from groupby, weights merged back."""
    from ipfn import ipfn

    variables = list(targets)
    table = frame.groupby(variables, observed=True).size().astype(float).rename("total").reset_index()
    n = float(len(frame))
    aggregates = [
        pd.Series({cat: share * n for cat, share in targets[v].items()}).rename_axis(v) for v in variables
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        fitted = ipfn.ipfn(
            table.copy(), aggregates, [[v] for v in variables], convergence_rate=1e-10, max_iteration=1000
        ).iteration()
    fitted["per_row"] = fitted["total"] / table["total"]
    merged = frame[variables].merge(fitted[[*variables, "per_row"]], on=variables, how="left")
    return np.asarray(merged["per_row"], dtype=float)


def _ipfn_core_only(frame: pd.DataFrame, targets: dict[str, dict[str, float]]) -> Callable[[], np.ndarray]:
    """ipfn's iterations on a prepared cell table: what ipfn costs without any glue."""
    from ipfn import ipfn

    variables = list(targets)
    sizes = [len(frame[v].cat.categories) for v in variables]
    cell = np.ravel_multi_index([frame[v].array.codes for v in variables], sizes)
    counts = np.bincount(cell, minlength=math.prod(sizes)).astype(float).reshape(sizes)
    n = float(len(frame))
    aggregates = [np.array([targets[v][str(c)] * n for c in frame[v].cat.categories]) for v in variables]
    dimensions = [[i] for i in range(len(variables))]

    def fit() -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            fitted: np.ndarray = ipfn.ipfn(
                counts.copy(), aggregates, dimensions, convergence_rate=1e-10, max_iteration=1000
            ).iteration()
        return fitted

    return fit


def _panelbrain(frame: pd.DataFrame, targets: dict[str, dict[str, float]]) -> np.ndarray:
    return rake(frame, targets).weights.to_numpy()


def _best_of(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    result = fn()  # warm-up: imports, caches, page faults
    best = math.inf
    # As timeit does: no garbage collection inside the timed runs.
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - started)
    finally:
        gc.enable()
    return best, result


def run_rake_benchmark(*, rows: int, repeat: int, seed: int, progress: _Progress | None) -> dict[str, Any]:
    """Time the three tools on one synthetic panel; return seconds, ratios and agreement."""
    say = progress.print if progress is not None else (lambda *_: None)
    say(f"generating a synthetic panel of {rows:,} rows (seed {seed})...")
    data = load_dataset("synthetic", rows=rows, seed=seed)
    targets, frame = default_targets(data)
    tools: list[tuple[str, Callable[[pd.DataFrame, dict[str, dict[str, float]]], np.ndarray]]] = [
        ("panelbrain", _panelbrain),
        ("weightipy 0.4.2", _weightipy),
        ("ipfn 1.4.4 (cell table, numpy glue)", _ipfn),
        ("ipfn 1.4.4 (cell table, pandas mode)", _ipfn_pandas),
    ]
    timings: list[dict[str, Any]] = []
    reference: np.ndarray | None = None
    for name, fn in tools:
        say(f"timing {name} ({repeat} runs)...")
        seconds, weights = _best_of(lambda fn=fn: fn(frame, targets), repeat)  # type: ignore[misc]
        weights = weights * (len(weights) / weights.sum())  # compare at mean 1
        reference = weights if reference is None else reference
        timings.append(
            {
                "name": name,
                "seconds": seconds,
                "max_abs_diff": float(np.max(np.abs(weights - reference))),
                "effective_n": float(weights.sum() ** 2 / np.dot(weights, weights)),
            }
        )
    # For context, not a peer: ipfn's fitting alone, with the cell table already built.
    say("timing ipfn's fitting alone (context)...")
    ipfn_core_seconds, _ = _best_of(_ipfn_core_only(frame, targets), repeat)
    ours = timings[0]["seconds"]
    for timing in timings:
        timing["ratio"] = timing["seconds"] / ours
    fastest = min(timings[1:], key=lambda t: t["seconds"])
    return {
        "benchmark": "rake",
        "rows": rows,
        "variables": len(targets),
        "repeat": repeat,
        "seed": seed,
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "tools": timings,
        "fastest_peer": fastest["name"],
        "speedup_vs_fastest_peer": fastest["seconds"] / ours,
        "ipfn_fitting_only_seconds": ipfn_core_seconds,
        "note": NOTE,
    }
