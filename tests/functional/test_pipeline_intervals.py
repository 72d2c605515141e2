"""The pipeline's intervals are R's raked design by default; PANELBRAIN_SE=fixed keeps the old ones.

The data processor and weight applier are called as the workflow calls them (a Plan in, a
WorkerResult out); the expected figures are R's (tests/fixtures/r, scripts/r/reference_ces11.R).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from panelbrain.agents import data_processor, weight_applier
from panelbrain.errors import BadInputError
from panelbrain.models import Filter, Plan

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "r"


def plan(**fields: object) -> Plan:
    base: dict[str, object] = {
        "query_id": "q-intervals",
        "question": "abortion by province among urban respondents",
        "dataset": "ces11",
        "intent": "distribution",
        "measure": "abortion",
        "breakdown": "province",
        "filters": [Filter(column="urban", values=["urban"])],
        "needs": {"sql_writer": False, "weight_applier": True, "data_processor": True},
        "confidence": 1.0,
        "provider": "offline",
    }
    return Plan.model_validate(base | fields)


def r_domain(measure: str, by: str, conditions: str) -> pd.DataFrame:
    reference = pd.read_csv(FIXTURES / "ces11_rake_domains.csv", keep_default_na=False)
    chosen = reference[
        (reference.measure == measure) & (reference.by == by) & (reference["filter"] == conditions)
    ]
    assert len(chosen) > 0
    return chosen


def test_filtered_answer_has_r_raked_design_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the default setting and a question filtered to urban respondents, by province
    monkeypatch.delenv("PANELBRAIN_SE", raising=False)
    # WHEN the data processor computes the table
    table = data_processor.run(plan()).output
    # THEN its standard errors are R's for svyby(~abortion, ~province, subset(raked, urban ==
    # "urban"), svymean) to 1e-6, and the table says which method it used
    assert table["se_method"] == "calibrated"
    assert "R survey's raked design" in table["method"]
    ours = {(r["group"], r["category"]): r for r in table["rows"]}
    for row in r_domain("abortion", "province", "urban=urban").itertuples():
        got = ours[(row.group, row.category)]
        assert got["estimate"] == pytest.approx(row.estimate, abs=1e-9)
        assert got["se"] == pytest.approx(row.se, abs=1e-6), (row.group, row.category)
    # AND the weighting diagnostics that travel with the answer name the same method
    weighting = weight_applier.run(plan()).output
    assert weighting["standard_errors"] == "calibrated"
    assert weighting["intervals"] == table["method"]


def test_fixed_setting_keeps_the_intervals_from_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN PANELBRAIN_SE=fixed (what `panelbrain ask --se fixed` sets for the local engine)
    monkeypatch.setenv("PANELBRAIN_SE", "fixed")
    # WHEN the same filtered question is computed
    table = data_processor.run(plan()).output
    # THEN the intervals treat the weights as fixed, as before issue 11 (urban Prince Edward
    # Island: 0.0982 against R's 0.1316), and say so
    assert table["se_method"] == "fixed" and "weights taken as fixed" in table["method"]
    pe = next(r for r in table["rows"] if r["group"] == "PE" and r["category"] == "No")
    assert pe["se"] == pytest.approx(0.09820825952408435, rel=1e-12)
    assert weight_applier.run(plan()).output["standard_errors"] == "fixed"


def test_unweighted_questions_are_labelled_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANELBRAIN_SE", raising=False)
    table = data_processor.run(plan(weighted=False)).output
    assert table["se_method"] == "fixed" and table["weighted"] is False


def test_a_bad_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANELBRAIN_SE", "robust")
    with pytest.raises(BadInputError, match="PANELBRAIN_SE must be calibrated or fixed, got 'robust'"):
        data_processor.run(plan())
