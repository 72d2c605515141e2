"""Run a gold set through the real pipeline on the local engine, and score it.

Every question goes the way ``panelbrain ask`` sends it (API, queue, poller, the Step Functions
pipeline, the agents), on one engine for the whole set. Each outcome is scored against the gold:

- the reading: the plan's intent, measure, values, breakdown, filters and weighting;
- the estimate: the pipeline's table against the data plane's answer for the gold reading
  (:mod:`panelbrain.eval.reference`);
- must-fail questions: the run fails and its reason names the words the set lists; must-flag
  questions: not answered, and the reasons name the words;
- confidently wrong: at or above the answer threshold and wrong (a must-fail or must-flag
  question answered that confidently is wrong by definition).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError, PanelbrainError
from panelbrain.eval.gold import GoldQuestion, GoldSet, load_set, reading_of_plan
from panelbrain.eval.reference import DataPlane, estimate_error

# The pipeline and the reference compute the same estimator over the same rows: a correct
# reading agrees to floating-point noise; anything larger is a different computation.
ESTIMATE_TOLERANCE = 1e-9
READING_TARGET = 0.95
# Reliability-table bins: the low-confidence, review and answer ranges, the last split in two.
BINS = (0.0, 0.5, 0.8, 0.9, 1.0)
ROUTES = ("answered", "review", "low_confidence", "failed")


@dataclass
class Outcome:
    """One question's run and its score."""

    id: str
    dataset: str
    question: str
    kind: str
    tags: list[str]
    status: str
    route: str  # one of ROUTES
    reason: str | None
    confidence: float | None
    confidence_reasons: list[str]
    provider: str | None
    reading: dict[str, Any] | None
    reading_ok: bool | None = None
    differences: list[str] = field(default_factory=list)
    estimate_error: float | None = None
    estimate_ok: bool | None = None
    failed_clearly: bool | None = None  # must-fail questions
    flagged: bool | None = None  # must-flag questions
    missing_words: list[str] = field(default_factory=list)
    correct: bool = False
    confidently_wrong: bool = False
    elapsed_ms: float = 0.0
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    cost_usd: float = 0.0


def _route(status: str, route: str) -> str:
    if status == "answered":
        return "answered"
    if status == "needs_review":
        return "review"
    return "low_confidence" if route == "low_confidence" else "failed"


def _run_one(
    engine: Any, question: GoldQuestion, provider: str, conversation_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``ask --json`` document and the plan the pipeline made (``None`` if it made none);
    with ``conversation_id``, asked as a follow-up in that conversation."""
    from panelbrain.aws.blobs import resolve_all
    from panelbrain.aws.store import DynamoQueryStore
    from panelbrain.local.ask import ask

    started = time.perf_counter()
    try:
        document = ask(
            engine,
            question.question,
            dataset=question.dataset,
            provider=provider,
            conversation_id=conversation_id,
        )
    except PanelbrainError as exc:  # refused at the API (bad input) or a pipeline that broke
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        failed = {"status": "failed", "route": "error", "reason": f"{type(exc).__name__}: {exc.message}"}
        return {
            **failed,
            "confidence": None,
            "confidence_reasons": [],
            "table": [],
            "elapsed_ms": elapsed,
        }, None
    record = DynamoQueryStore().get(document["query_id"]) or {}
    result = resolve_all(record.get("result") or {})
    synthesis = result.get("document") or result.get("synthesis") or {}
    plan = synthesis.get("plan")
    return document, plan if isinstance(plan, dict) else None


def score(
    question: GoldQuestion,
    document: dict[str, Any],
    plan: dict[str, Any] | None,
    plane: DataPlane,
    threshold: float,
) -> Outcome:
    """Score one run against its gold question."""
    from panelbrain.data.dictionary import load_dictionary

    confidence = document.get("confidence")
    status = str(document["status"])
    reasons = [document.get("reason") or "", *document.get("confidence_reasons", [])]
    reading = reading_of_plan(plan, load_dictionary(question.dataset)) if plan is not None else None
    outcome = Outcome(
        id=question.id,
        dataset=question.dataset,
        question=question.question,
        kind=question.kind,
        tags=list(question.tags),
        status=status,
        route=_route(status, str(document.get("route"))),
        reason=document.get("reason"),
        confidence=None if confidence is None else float(confidence),
        confidence_reasons=list(document.get("confidence_reasons") or []),
        provider=document.get("provider"),
        reading=reading.to_dict() if reading is not None else None,
        elapsed_ms=float(document.get("elapsed_ms") or 0.0),
        usage=dict(document.get("usage") or {}),
        cost_usd=float(document.get("cost_usd") or 0.0),
    )
    if question.kind == "answer":
        assert question.reading is not None
        outcome.reading_ok = reading == question.reading
        outcome.differences = question.reading.differences(reading) if reading is not None else ["no plan"]
        if plan is not None:
            reference = plane.answer(question.dataset, question.reading)
            outcome.estimate_error = estimate_error(reference, document.get("table") or [])
        outcome.estimate_ok = (
            outcome.estimate_error is not None and outcome.estimate_error <= ESTIMATE_TOLERANCE
        )
        outcome.correct = bool(outcome.reading_ok and outcome.estimate_ok)
    else:
        outcome.missing_words = question.names_every_word(" ".join(r for r in reasons if r))
        if question.kind == "fail":
            outcome.failed_clearly = status == "failed" and not outcome.missing_words
        else:
            outcome.flagged = outcome.route != "answered" and not outcome.missing_words
        # Any answer to a question that has none (or only part of one) is a wrong answer.
        outcome.correct = False
    outcome.confidently_wrong = (
        outcome.confidence is not None and outcome.confidence >= threshold and not outcome.correct
    )
    return outcome


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


def _calibration(outcomes: list[Outcome]) -> dict[str, Any]:
    scored = [(o.confidence, o.correct) for o in outcomes if o.confidence is not None]
    bins = []
    for i, (low, high) in enumerate(itertools.pairwise(BINS)):
        last = i == len(BINS) - 2
        inside = [(c, ok) for c, ok in scored if low <= c < high or (last and c == high)]
        bins.append(
            {
                "low": low,
                "high": high,
                "n": len(inside),
                "mean_confidence": round(sum(c for c, _ in inside) / len(inside), 4) if inside else None,
                "share_correct": round(sum(ok for _, ok in inside) / len(inside), 4) if inside else None,
            }
        )
    brier = sum((c - ok) ** 2 for c, ok in scored) / len(scored) if scored else None
    return {
        "n": len(scored),
        "bins": bins,
        "brier": None if brier is None else round(brier, 4),
        "note": "outcome = correct reading and estimate; must-fail and must-flag questions count as "
        "wrong whenever they get a confidence",
    }


def summarise(gold: GoldSet, outcomes: list[Outcome], provider: str, threshold: float) -> dict[str, Any]:
    """The report: every figure ``panelbrain eval`` prints, and the per-question rows."""
    answerable = [o for o in outcomes if o.kind == "answer"]
    must_fail = [o for o in outcomes if o.kind == "fail"]
    must_flag = [o for o in outcomes if o.kind == "flag"]
    exact = sum(bool(o.reading_ok) for o in answerable)
    compared = [o.estimate_error for o in answerable if o.estimate_error is not None]
    usage: dict[str, dict[str, int]] = {}
    for o in outcomes:
        for model, tokens in o.usage.items():
            slot = usage.setdefault(model, dict.fromkeys(tokens, 0))
            for key, count in tokens.items():
                slot[key] = slot.get(key, 0) + int(count)
    by_tag: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for o in answerable:
        for tag in o.tags:
            by_tag[tag][0] += bool(o.reading_ok)
            by_tag[tag][1] += 1
    rate = exact / len(answerable) if answerable else 1.0
    confidently_wrong = [o.id for o in outcomes if o.confidently_wrong]
    not_failed = [o.id for o in must_fail if not o.failed_clearly]
    latencies = [o.elapsed_ms for o in outcomes]
    checks = [
        {
            "check": "confidently wrong",
            "value": len(confidently_wrong),
            "target": "0",
            "passed": not confidently_wrong,
        },
        {
            "check": "reading exact-match",
            "value": round(rate, 4),
            "target": f">= {READING_TARGET:.0%}",
            "passed": rate >= READING_TARGET,
        },
        {
            "check": "must-fail questions fail with a reason",
            "value": f"{len(must_fail) - len(not_failed)}/{len(must_fail)}",
            "target": "all",
            "passed": not not_failed,
        },
    ]
    return {
        "set": gold.name,
        "provider": provider,
        "answer_threshold": threshold,
        "questions": len(outcomes),
        "datasets": dict(Counter(o.dataset for o in outcomes)),
        "reading": {"answerable": len(answerable), "exact": exact, "rate": round(rate, 4)},
        "estimate": {
            "compared": len(compared),
            "within_tolerance": sum(e <= ESTIMATE_TOLERANCE for e in compared),
            "tolerance": ESTIMATE_TOLERANCE,
            "max_abs_error": max(compared, default=None),
            "mean_abs_error": sum(compared) / len(compared) if compared else None,
            # No table, or a table with other cells than the gold reading's: another question.
            "not_comparable": len(answerable) - len(compared),
        },
        "routes": {r: sum(o.route == r for o in outcomes) for r in ROUTES},
        "confidently_wrong": {"count": len(confidently_wrong), "ids": confidently_wrong},
        "must_fail": {
            "total": len(must_fail),
            "failed_with_reason": len(must_fail) - len(not_failed),
            "missed": not_failed,
        },
        "must_flag": {
            "total": len(must_flag),
            "flagged": sum(bool(o.flagged) for o in must_flag),
            "missed": [o.id for o in must_flag if not o.flagged],
        },
        "calibration": _calibration(outcomes),
        "usage": usage,
        "cost_usd": round(sum(o.cost_usd for o in outcomes), 6),
        "latency_ms": {
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
            "max": max(latencies, default=None),
            "total": round(sum(latencies), 1),
        },
        "by_tag": {t: {"exact": e, "of": n} for t, (e, n) in sorted(by_tag.items())},
        "acceptance": {"passed": all(c["passed"] for c in checks), "checks": checks},
        "results": [asdict(o) for o in outcomes],
    }


def _live_client() -> Any:
    """The bedrock-runtime client the provider would build for itself (region, profile and
    adaptive retries as it asks), built before the emulator starts, so it carries the
    caller's credentials rather than the emulator's fake ones."""
    from panelbrain.agents import bedrock
    from panelbrain.aws import clients

    slowest = max(bedrock.STEP_LIMITS, key=lambda step: bedrock.STEP_LIMITS[step].read_timeout_s)
    return clients.client(
        "bedrock-runtime",
        region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
        profile=os.environ.get("PANELBRAIN_BEDROCK_PROFILE") or None,
        # The user-agent suffix keys it apart from the provider's own client, so the recording
        # hooks stay on this one (and the calls show as the eval's in CloudTrail).
        # One client serves every step here: the longest step's timeouts and the provider's
        # retry budget, so a recorded run waits as a deployed one would (no longer: the local
        # engine stops each handler at its function's Timeout).
        config={**bedrock.client_config(slowest), "user_agent_extra": "panelbrain-eval"},
    )


@contextmanager
def _model_responses(record: Path | None, replay: Path | None, notes: dict[str, Any]) -> Iterator[None]:
    from panelbrain.aws import clients
    from panelbrain.eval.replay import Player, Recorder, replay_client

    with ExitStack() as stack:
        if record is not None:
            recorder = Recorder(record)
            live = recorder.attach(_live_client())
            stack.callback(recorder.detach, live)
            stack.enter_context(clients.override("bedrock-runtime", live))
            stack.callback(lambda: notes.update(recorded=recorder.count, record_dir=str(record)))
        if replay is not None:
            player = Player(replay)
            stack.enter_context(clients.override("bedrock-runtime", player.attach(replay_client())))
            stack.callback(
                lambda: notes.update(
                    replayed=player.replayed, replay_misses=player.misses, replay_dir=str(replay)
                )
            )
        yield


def run_eval(
    set_name: str = "gold",
    provider: str | None = None,
    *,
    record: Path | None = None,
    replay: Path | None = None,
    only: Callable[[GoldQuestion], bool] | None = None,
    on_question: Callable[[Outcome], None] | None = None,
) -> dict[str, Any]:
    """Run the gold set ``set_name`` on a fresh local engine and return the report.

    ``provider`` defaults to offline, or bedrock with ``replay`` (a replay re-scores a Bedrock
    run). ``record`` keeps every Bedrock response in that folder; ``replay`` answers every
    Bedrock call from one. ``only`` picks questions (tests).
    """
    from panelbrain.local.engine import LocalEngine

    if record is not None and replay is not None:
        raise BadInputError("--record and --replay exclude each other: record a run, then replay it")
    chosen = provider or ("bedrock" if replay is not None else "offline")
    if chosen not in ("offline", "bedrock"):
        raise BadInputError(f"--provider must be offline or bedrock, got {chosen!r}")
    if (record is not None or replay is not None) and chosen != "bedrock":
        raise BadInputError(
            "--record and --replay keep and replay Bedrock's responses: use them with --provider bedrock "
            "(the offline provider calls no model)"
        )
    gold = load_set(set_name)
    questions = [q for q in gold.questions if only is None or only(q)]
    if not questions:
        raise BadInputError(f"gold set {set_name!r}: no question selected")
    plane = DataPlane()
    notes: dict[str, Any] = {}
    outcomes: list[Outcome] = []
    with _model_responses(record, replay, notes), LocalEngine.running() as engine:
        threshold = float(engine.template.parameters.get("AnswerConfidenceThreshold", "0.8"))
        # A chain's turns are one conversation: each turn follows up the one before it.
        conversations: dict[str, str] = {}
        for question in questions:
            # Each question is scored on its own run: a reading answered earlier in the set would
            # otherwise come from the result cache, with the earlier question's plan (and, with
            # --provider bedrock, a reading the offline planner keyed rather than the brain's).
            engine.clear_table("ResultCacheTable")
            follows = conversations.get(question.chain) if question.chain and question.turn > 1 else None
            document, plan = _run_one(engine, question, chosen, follows)
            if question.chain and document.get("conversation_id"):
                conversations[question.chain] = str(document["conversation_id"])
            outcome = score(question, document, plan, plane, threshold)
            outcomes.append(outcome)
            if on_question is not None:
                on_question(outcome)
    report = summarise(gold, outcomes, chosen, threshold)
    report.update(notes)
    if record is not None:
        import json

        (record / "report.json").write_text(
            json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
        )
    return report
