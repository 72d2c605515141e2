"""Several filters, negations and value lists, answered end to end on the local engine.

Each case pins the SQL the offline provider writes (its WHERE clause, through the guard) and the
table, which must equal the data plane's own estimates over the same respondents. The first
case is the issue's: today's reader answered it with the urban filter silently dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from panelbrain.agents.context import dataset, default_weights
from panelbrain.data.estimates import weighted_means, weighted_shares
from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine

# A filter: (column, values, negated).
F = tuple[str, list[str], bool]
# dataset, question, measure, values ([] and a numeric measure: a mean), by, filters, WHERE clause
QUESTIONS: list[tuple[str, str, str, list[str], str | None, list[F], str]] = [
    (
        "ces11",
        "What share say religion is very important among women among urban respondents?",
        "importance",
        ["very"],
        None,
        [("gender", ["Female"], False), ("urban", ["urban"], False)],
        "WHERE gender IN ('Female') AND urban IN ('urban')",
    ),
    (
        "ces11",
        "What share of women in rural Quebec support a ban on abortion?",
        "abortion",
        ["Yes"],
        None,
        [("gender", ["Female"], False), ("urban", ["rural"], False), ("province", ["QC"], False)],
        "WHERE gender IN ('Female') AND urban IN ('rural') AND province IN ('QC')",
    ),
    (
        "ces11",
        "What share of men with a graduate degree in Ontario support a ban?",
        "abortion",
        ["Yes"],
        None,
        [("gender", ["Male"], False), ("education", ["higher"], False), ("province", ["ON"], False)],
        "WHERE gender IN ('Male') AND education IN ('higher') AND province IN ('ON')",
    ),
    (
        "ces11",
        "What share support a ban on abortion not in Quebec, by gender?",
        "abortion",
        ["Yes"],
        "gender",
        [("province", ["QC"], True)],
        "WHERE NOT province IN ('QC')",
    ),
    (
        "ces11",
        "What share say religion is very important, except men?",
        "importance",
        ["very"],
        None,
        [("gender", ["Male"], True)],
        "WHERE NOT gender IN ('Male')",
    ),
    (
        "ces11",
        "What share say religion is very important in Ontario or Quebec by urban?",
        "importance",
        ["very"],
        "urban",
        [("province", ["ON", "QC"], False)],
        "WHERE province IN ('ON', 'QC')",
    ),
    (
        "ces11",
        "What share support a ban in Ontario and Quebec?",
        "abortion",
        ["Yes"],
        None,
        [("province", ["ON", "QC"], False)],
        "WHERE province IN ('ON', 'QC')",
    ),
    (
        "ces11",
        "What share of women outside Ontario or Quebec support a ban?",
        "abortion",
        ["Yes"],
        None,
        [("gender", ["Female"], False), ("province", ["ON", "QC"], True)],
        "WHERE gender IN ('Female') AND NOT province IN ('ON', 'QC')",
    ),
    (
        "synthetic",
        "What share intend to vote Party A among women aged 65 and over?",
        "vote_intention",
        ["Party A"],
        None,
        [("gender", ["Female"], False), ("age_group", ["65+"], False)],
        "WHERE gender IN ('Female') AND age_group IN ('65+')",
    ),
    (
        "synthetic",
        "Share of Party A among rural respondents except seniors by region",
        "vote_intention",
        ["Party A"],
        "region",
        [("urban", ["rural"], False), ("age_group", ["65+"], True)],
        "WHERE urban IN ('rural') AND NOT age_group IN ('65+')",
    ),
    (
        "synthetic",
        "Average hours online of people aged 18 to 24 not in the South or North",
        "hours_online",
        [],
        None,
        [("age_group", ["18-24"], False), ("region", ["South", "North"], True)],
        "WHERE age_group IN ('18-24') AND NOT region IN ('South', 'North')",
    ),
]


def expected_rows(
    name: str, measure: str, values: list[str], by: str | None, filters: list[F]
) -> list[dict[str, Any]]:
    data = dataset(name)
    keep = np.ones(len(data.frame), dtype=bool)
    for column, allowed, negate in filters:
        chosen = data.frame[column].astype("string").isin(allowed).to_numpy(dtype=bool)
        keep &= ~chosen if negate else chosen
    weights = default_weights(name).weights.to_numpy()[keep]
    subset = data.frame[keep]
    if data.spec.main_table.column(measure).type != "categorical":
        return [r.model_dump() for r in weighted_means(subset, measure, by=by, weights=weights).rows]
    table = weighted_shares(subset, measure, values=values or None, by=by, weights=weights)
    return [r.model_dump() for r in table.rows]


@pytest.mark.parametrize(
    ("name", "question", "measure", "values", "by", "filters", "where"),
    QUESTIONS,
    ids=[q[1][:56] for q in QUESTIONS],
)
def test_filters_reach_the_sql_and_the_estimates(
    engine: LocalEngine,
    name: str,
    question: str,
    measure: str,
    values: list[str],
    by: str | None,
    filters: list[F],
    where: str,
) -> None:
    result = ask(engine, question, dataset=name)
    assert (result["status"], result["route"]) == ("answered", "formatter"), result["confidence_reasons"]
    assert where in result["sql"]
    assert "the SQL's bases agree with the estimates' bases" in result["confidence_reasons"]
    want = expected_rows(name, measure, values, by, filters)
    got = result["table"]
    assert [(r["group"], r["category"]) for r in got] == [(r["group"], r["category"]) for r in want]
    for g, w in zip(got, want, strict=True):
        assert g["estimate"] == pytest.approx(w["estimate"], abs=1e-12)
        assert g["unweighted_base"] == w["unweighted_base"]


def test_a_word_it_cannot_place_sends_the_answer_to_a_person(engine: LocalEngine) -> None:
    result = ask(engine, "What share of left-handed women support a ban?", review="approve")
    assert result["route"] == "review_approved"
    assert any("'left-handed'" in r for r in result["confidence_reasons"])
