"""The eval report as text: the figures first, then every question that missed, and why."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def report_lines(report: dict[str, Any]) -> list[str]:
    reading, estimate = report["reading"], report["estimate"]
    fail, flag, wrong = report["must_fail"], report["must_flag"], report["confidently_wrong"]
    routes, latency, calibration = report["routes"], report["latency_ms"], report["calibration"]
    threshold = report["answer_threshold"]
    datasets = ", ".join(f"{n} on {d}" for d, n in report["datasets"].items())
    lines = [
        f"panelbrain eval: set {report['set']!r}, provider {report['provider']}, "
        f"{report['questions']} questions ({datasets})",
        "",
        f"reading exact-match   {reading['exact']}/{reading['answerable']} ({_pct(reading['rate'])})",
        f"estimate error        {estimate['within_tolerance']}/{estimate['compared']} tables equal the data "
        f"plane's to {estimate['tolerance']:g}; largest error {_pp(estimate['max_abs_error'])}; "
        f"{estimate['not_comparable']} answered another question or none",
        f"routes                answered {routes['answered']} · review {routes['review']} · "
        f"low confidence {routes['low_confidence']} · failed {routes['failed']}",
        f"confidently wrong     {wrong['count']} (confidence >= {threshold:g} and wrong)"
        + (f": {', '.join(wrong['ids'])}" if wrong["ids"] else ""),
        f"must fail             {fail['failed_with_reason']}/{fail['total']} failed with a reason naming "
        "what is unknown" + (f"; missed {', '.join(fail['missed'])}" if fail["missed"] else ""),
        f"must be flagged       {flag['flagged']}/{flag['total']} not answered, the unplaced words named"
        + (f"; missed {', '.join(flag['missed'])}" if flag["missed"] else ""),
        f"latency               p50 {_ms(latency['p50'])}, p95 {_ms(latency['p95'])} per question "
        f"(end to end on the local engine)",
    ]
    tokens = report["usage"]
    if tokens:
        for model, counts in tokens.items():
            lines.append(
                f"tokens                {model}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            )
    else:
        lines.append("tokens                none (the offline provider calls no model)")
    lines.append(f"model cost            USD {report['cost_usd']:.4f}")
    if "recorded" in report:
        lines.append(f"recorded              {report['recorded']} model responses in {report['record_dir']}")
    if "replayed" in report:
        lines.append(
            f"replayed              {report['replayed']} model responses from {report['replay_dir']}"
        )
    if report.get("replay_misses"):
        lines.append(
            f"replay misses         {report['replay_misses']} model calls had no recorded response "
            "(the prompts or model ids changed since the recording): record again"
        )
    lines += [
        "",
        f"calibration (Brier {calibration['brier']}, {calibration['n']} questions with a confidence)",
    ]
    lines.append("  confidence      n   mean confidence   share correct")
    for b in calibration["bins"]:
        lines.append(
            f"  {b['low']:.1f}-{b['high']:.1f}    {b['n']:>5}   {_pct(b['mean_confidence']):>15}   "
            f"{_pct(b['share_correct']):>13}"
        )
    lines += ["", "reading exact-match by construct"]
    for tag, counts in report["by_tag"].items():
        lines.append(f"  {tag:<18}{counts['exact']:>3}/{counts['of']}")
    misses = [r for r in report["results"] if _missed(r)]
    if misses:
        lines += ["", f"questions that missed ({len(misses)})"]
        for r in misses:
            confidence = "-" if r["confidence"] is None else f"{r['confidence']:.2f}"
            flag_text = " CONFIDENTLY WRONG" if r["confidently_wrong"] else ""
            where = f"{r['id']} [{r['dataset']}] {r['question']!r}"
            lines.append(f"  {where}: {r['route']}, confidence {confidence}{flag_text}")
            for why in _why(r):
                lines.append(f"      {why}")
    lines += ["", "acceptance: " + ("PASSED" if report["acceptance"]["passed"] else "FAILED")]
    for check in report["acceptance"]["checks"]:
        value = check["value"]
        shown = _pct(value) if isinstance(value, float) else str(value)
        lines.append(
            f"  [{'x' if check['passed'] else ' '}] {check['check']}: {shown} (target {check['target']})"
        )
    return lines


def _pp(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} points"


def _missed(row: dict[str, Any]) -> bool:
    if row["kind"] == "answer":
        return not row["correct"]
    if row["kind"] == "fail":
        return not row["failed_clearly"]
    return not row["flagged"] or bool(row["confidently_wrong"])


def _why(row: dict[str, Any]) -> list[str]:
    if row["kind"] == "answer":
        out = list(row["differences"])
        if row["reading"] is None and row["reason"]:
            out.append(f"why: {row['reason']}")
        if not out and row["estimate_error"] is None:
            out.append("the table's cells differ from the data plane's")
        elif not out:
            out.append(f"estimate off by {_pp(row['estimate_error'])}")
        return out
    out = []
    if row["kind"] == "fail" and row["status"] != "failed":
        out.append(f"must fail, but ended {row['status']}")
    if row["kind"] == "flag" and row["route"] == "answered":
        out.append("must not be answered at the answer threshold, but was")
    if row["missing_words"]:
        out.append("the reasons do not name: " + ", ".join(row["missing_words"]))
    return out
