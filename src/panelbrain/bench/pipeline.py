"""``panelbrain bench pipeline``: end-to-end time on the local engine against the critical path.

The seed's agent latencies (plan 5 s, SQL writer 10 s, weight applier 8 s, data processor 8 s,
synthesise 5 s, formatter 3 s), times a scale, are slept inside the real handlers. A query that
needs all three workers has a critical path of plan + slowest worker + synthesise + formatter
(the seed's 23 s) and a sequential sum of every agent (31 s in the seed's example, which leaves
the data processor out; 39 s with it). The measured time, divided by the critical path, shows
what the orchestration adds; with no latency at all, the measured time *is* the overhead.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Protocol

from panelbrain.agents.latency import SEED_LATENCY_S
from panelbrain.local.ask import PIPELINE, ask, new_query_id, query_input
from panelbrain.local.engine import LocalEngine

QUESTION = "What share support a ban on abortion by province?"  # needs all three workers


class _Progress(Protocol):
    def print(self, *objects: Any) -> None: ...


def critical_path_s(scale: float) -> float:
    slowest = max(SEED_LATENCY_S[w] for w in ("sql_writer", "weight_applier", "data_processor"))
    return scale * (
        SEED_LATENCY_S["plan"] + slowest + SEED_LATENCY_S["synthesise"] + SEED_LATENCY_S["formatter"]
    )


def sequential_s(scale: float) -> float:
    return scale * sum(SEED_LATENCY_S.values())


def _timed_run(engine: LocalEngine, scale: float) -> float:
    """Seconds from StartExecution to the terminal state being observed (the persisted answer);
    reading the history for a trace afterwards is diagnostics, not pipeline, and is left out."""
    query = query_input(QUESTION, "ces11", "offline", scale, new_query_id())
    started = time.perf_counter()
    arn = engine.start(PIPELINE, query.query_id, {"query": query.model_dump(mode="json")})
    description = engine.wait(arn, poll_s=0.002)
    elapsed = time.perf_counter() - started
    if description["status"] != "SUCCEEDED":
        raise RuntimeError(f"benchmark query ended {description['status']}: {description.get('cause')}")
    return elapsed


def run_pipeline_benchmark(*, scale: float, repeat: int, progress: _Progress | None) -> dict[str, Any]:
    say = progress.print if progress is not None else (lambda *_: None)
    with LocalEngine.running() as engine:
        say("warming up (first query loads the dataset and seals its database)...")
        ask(engine, QUESTION)
        overhead = [_timed_run(engine, 0.0) for _ in range(repeat)]
        measured = []
        for i in range(repeat):
            say(f"query {i + 1}/{repeat} with the seed's latency x {scale:g}...")
            measured.append(_timed_run(engine, scale))
    critical = critical_path_s(scale)
    median = statistics.median(measured)
    return {
        "benchmark": "pipeline",
        "question": QUESTION,
        "latency_scale": scale,
        "repeat": repeat,
        "measured_s": median,
        "measured_runs_s": measured,
        "critical_path_s": critical,
        "sequential_s": sequential_s(scale),
        "ratio_to_critical_path": median / critical if critical else None,
        "overhead_no_latency_ms": statistics.median(overhead) * 1000,
        "overhead_runs_ms": [s * 1000 for s in overhead],
        "seed_seconds": {"critical_path": critical_path_s(1.0), "sequential": sequential_s(1.0)},
    }
