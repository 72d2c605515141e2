"""Documented CES11 questions answered offline, checked against the data plane's own estimates.

Each case pins how the offline provider reads the question (measure, values, breakdown, filters,
weighting) and the route; the table must equal what the data plane computes directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from panelbrain.agents.context import dataset, default_weights
from panelbrain.data.estimates import weighted_means, weighted_shares
from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine

# question, measure, values, breakdown, filters, weighted, route
QUESTIONS: list[tuple[str, str, list[str], str | None, dict[str, list[str]], bool, str]] = [
    ("What share support a ban on abortion?", "abortion", ["Yes"], None, {}, True, "formatter"),
    (
        "What share support a ban on abortion by province?",
        "abortion",
        ["Yes"],
        "province",
        {},
        True,
        "formatter",
    ),
    ("Share of Yes of abortion by gender", "abortion", ["Yes"], "gender", {}, True, "formatter"),
    (
        "What share oppose a ban on abortion by education?",
        "abortion",
        ["No"],
        "education",
        {},
        True,
        "formatter",
    ),
    (
        "Share of support a ban among rural respondents",
        "abortion",
        ["Yes"],
        None,
        {"urban": ["rural"]},
        True,
        "formatter",
    ),
    ("What share say religion is very important?", "importance", ["very"], None, {}, True, "formatter"),
    (
        "What share say religion is very important by province?",
        "importance",
        ["very"],
        "province",
        {},
        True,
        "formatter",
    ),
    (
        "What share say religion is very important among women?",
        "importance",
        ["very"],
        None,
        {"gender": ["Female"]},
        True,
        "formatter",
    ),
    ("Share of not important by urban", "importance", ["not"], "urban", {}, True, "formatter"),
    ("Distribution of education by gender", "education", [], "gender", {}, True, "formatter"),
    ("Distribution of importance of religion", "importance", [], None, {}, True, "formatter"),
    ("Unweighted share of rural by province", "urban", ["rural"], "province", {}, False, "formatter"),
    ("Unweighted distribution of education", "education", [], None, {}, False, "formatter"),
    (
        "Share of women among rural respondents by education",
        "gender",
        ["Female"],
        "education",
        {"urban": ["rural"]},
        True,
        "formatter",
    ),
    (
        "What share of people in Ontario support a ban on abortion",
        "abortion",
        ["Yes"],
        None,
        {"province": ["ON"]},
        True,
        "formatter",
    ),
    ("Share of graduates by gender", "education", ["higher"], "gender", {}, True, "formatter"),
    (
        "What share support a ban on abortion among men by urban",
        "abortion",
        ["Yes"],
        "urban",
        {"gender": ["Male"]},
        True,
        "formatter",
    ),
]


def expected_rows(
    measure: str, values: list[str], by: str | None, filters: dict[str, list[str]], weighted: bool
) -> list[dict[str, Any]]:
    data = dataset("ces11")
    keep = np.ones(len(data.frame), dtype=bool)
    for column, allowed in filters.items():
        keep &= data.frame[column].astype("string").isin(allowed).to_numpy(dtype=bool)
    weights = default_weights("ces11").weights.to_numpy()[keep] if weighted else None
    table = weighted_shares(data.frame[keep], measure, values=values or None, by=by, weights=weights)
    return [r.model_dump() for r in table.rows]


@pytest.mark.parametrize(
    ("question", "measure", "values", "by", "filters", "weighted", "route"),
    QUESTIONS,
    ids=[q[0][:48] for q in QUESTIONS],
)
def test_documented_question(
    engine: LocalEngine,
    question: str,
    measure: str,
    values: list[str],
    by: str | None,
    filters: dict[str, list[str]],
    weighted: bool,
    route: str,
) -> None:
    result = ask(engine, question, review="approve" if route == "review" else None)
    plan_route = "review_approved" if route == "review" else route
    assert result["route"] == plan_route, result["confidence_reasons"]
    assert result["status"] == "answered"
    want = expected_rows(measure, values, by, filters, weighted)
    got = result["table"]
    assert [(r["group"], r["category"]) for r in got] == [(r["group"], r["category"]) for r in want]
    for g, w in zip(got, want, strict=True):
        assert g["estimate"] == pytest.approx(w["estimate"], abs=1e-12)
        assert g["unweighted_base"] == w["unweighted_base"]
        assert g["weighted_base"] == pytest.approx(w["weighted_base"], rel=1e-12)
    assert (result["weighting"] is not None) is weighted


def test_there_are_at_least_fifteen_documented_questions() -> None:
    assert len(QUESTIONS) >= 15


def test_means_over_the_synthetic_panel(engine: LocalEngine) -> None:
    result = ask(engine, "Average of income by education", dataset="synthetic")
    assert result["status"] == "answered"
    data = dataset("synthetic")
    want = weighted_means(data.frame, "income", by="education", weights=default_weights("synthetic").weights)
    assert [r["estimate"] for r in result["table"]] == pytest.approx(
        [r.estimate for r in want.rows], rel=1e-12
    )
