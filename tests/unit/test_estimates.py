"""Weighted estimates: point estimates, linearised standard errors, bases, flags, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panelbrain.data.estimates import ALL, weighted_means, weighted_shares
from panelbrain.errors import EstimateError

Z95 = 1.959963984540054


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    group = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    # Group "c" answers "yes" far more often: it must be flagged.
    p_yes = np.where(group == "c", 0.8, 0.3)
    return pd.DataFrame(
        {
            "group": group,
            "answer": np.where(rng.random(n) < p_yes, "yes", "no"),
            "income": rng.normal(50, 10, size=n) + np.where(group == "a", 5.0, 0.0),
            "w": rng.uniform(0.5, 2.0, size=n),
        }
    )


def linearised(y: np.ndarray, w: np.ndarray, in_group: np.ndarray) -> tuple[float, float]:
    """The textbook formula, written out independently of the implementation."""
    n = len(y)
    total = w[in_group].sum()
    mean = (w[in_group] * y[in_group]).sum() / total
    z = np.where(in_group, w * (y - mean) / total, 0.0)
    return float(mean), float(np.sqrt(n / (n - 1) * ((z - z.mean()) ** 2).sum()))


def test_shares_by_group_match_the_textbook_formula(frame: pd.DataFrame) -> None:
    table = weighted_shares(frame, "answer", values=["yes"], by="group", weights="w")
    y = (frame.answer == "yes").to_numpy(float)
    w = frame.w.to_numpy()
    for row in table.rows:
        in_group = np.ones(len(frame), bool) if row.group == ALL else (frame.group == row.group).to_numpy()
        mean, se = linearised(y, w, in_group)
        assert row.estimate == pytest.approx(mean, abs=1e-12)
        assert row.se == pytest.approx(se, rel=1e-9)
        assert row.ci_low == pytest.approx(mean - Z95 * se, abs=1e-12)
        assert row.ci_high == pytest.approx(mean + Z95 * se, abs=1e-12)
        assert row.weighted_base == pytest.approx(w[in_group].sum())
        assert row.unweighted_base == int(in_group.sum())
        assert row.category == "yes"


def test_means_by_group_match_the_textbook_formula(frame: pd.DataFrame) -> None:
    table = weighted_means(frame, "income", by="group", weights="w")
    y, w = frame.income.to_numpy(), frame.w.to_numpy()
    assert [r.group for r in table.rows] == [ALL, "a", "b", "c"]
    for row in table.rows:
        in_group = np.ones(len(frame), bool) if row.group == ALL else (frame.group == row.group).to_numpy()
        mean, se = linearised(y, w, in_group)
        assert row.estimate == pytest.approx(mean, rel=1e-12)
        assert row.se == pytest.approx(se, rel=1e-9)


def test_a_group_that_differs_from_the_rest_is_flagged(frame: pd.DataFrame) -> None:
    table = weighted_shares(frame, "answer", values=["yes"], by="group", weights="w")
    flags = {r.group: r.significant for r in table.rows}
    assert flags["c"] is True
    assert flags[ALL] is False  # the overall row is never compared
    c = next(r for r in table.rows if r.group == "c")
    assert c.p_vs_rest is not None and c.p_vs_rest < 1e-6


def test_identical_groups_are_not_flagged() -> None:
    frame = pd.DataFrame({"g": ["a", "b"] * 50, "q": (["x", "x", "y", "y"] * 25)})
    table = weighted_shares(frame, "q", values=["x"], by="g")
    assert not any(r.significant for r in table.rows)


def test_every_category_is_estimated_and_shares_sum_to_one(frame: pd.DataFrame) -> None:
    table = weighted_shares(frame, "answer", by="group", weights="w")
    for group in [ALL, "a", "b", "c"]:
        total = sum(r.estimate for r in table.rows if r.group == group)
        assert total == pytest.approx(1.0, abs=1e-12)


def test_missing_answers_are_left_out_of_the_base(frame: pd.DataFrame) -> None:
    frame.loc[:9, "answer"] = None
    table = weighted_shares(frame, "answer", values=["yes"], weights="w")
    assert table.rows[0].unweighted_base == len(frame) - 10
    kept = frame.iloc[10:]
    expected = kept.w[kept.answer == "yes"].sum() / kept.w.sum()
    assert table.rows[0].estimate == pytest.approx(expected)


def test_unweighted_is_the_plain_proportion(frame: pd.DataFrame) -> None:
    table = weighted_shares(frame, "answer", values=["yes"])
    assert table.rows[0].estimate == pytest.approx((frame.answer == "yes").mean())
    assert table.weighted is False


def test_refusals_name_the_column_and_value(frame: pd.DataFrame) -> None:
    with pytest.raises(EstimateError, match=r"'answer' has no value 'maybe' \(values: no, yes\)"):
        weighted_shares(frame, "answer", values=["maybe"])
    with pytest.raises(EstimateError, match="'answer' is not numeric: ask for shares"):
        weighted_means(frame, "answer")
    with pytest.raises(EstimateError, match="breakdown 'region' is not a column"):
        weighted_shares(frame, "answer", by="region")
    with pytest.raises(EstimateError, match="weights must be one finite, non-negative number per row"):
        weighted_shares(frame, "answer", weights=np.full(len(frame), -1.0))
