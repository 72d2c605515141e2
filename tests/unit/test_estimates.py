"""Weighted estimates: point estimates, linearised standard errors, bases, flags, refusals."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from panelbrain.data.catalog import load_dataset, weight_dataset
from panelbrain.data.estimates import ALL, weighted_means, weighted_shares
from panelbrain.data.weighting import RakeResult, rake
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


# Calibration-aware standard errors (issue 11) -------------------------------------------------


def r_raked_se(y: np.ndarray, w: np.ndarray, in_domain: np.ndarray, margins: list[np.ndarray]) -> float:
    """R survey's svyrecvar for a raked design, row by row as R writes it.

    Influence values of the domain mean, then ten backfitting passes of
    ``x <- x - w * ave(x / w, margin)`` over the margins, then n/(n-1) times the sum of squares
    about the mean over every respondent (a subset of a calibrated design keeps all rows).
    """
    total = w[in_domain].sum()
    mean = (w * y)[in_domain].sum() / total
    x = np.where(in_domain, w * (y - mean) / total, 0.0)
    for _ in range(10):
        for margin in margins:
            x = x - w * pd.Series(x / w).groupby(margin).transform("mean").to_numpy()
    n = len(x)
    return float(np.sqrt(n / (n - 1) * ((x - x.mean()) ** 2).sum()))


@pytest.fixture
def raked_frame() -> tuple[pd.DataFrame, RakeResult]:
    rng = np.random.default_rng(11)
    n = 600
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["f", "m"], size=n, p=[0.6, 0.4]),
            "age": rng.choice(["young", "mid", "old"], size=n, p=[0.2, 0.3, 0.5]),
            "region": rng.choice(["n", "s", "e", "w"], size=n),
            "base": rng.uniform(0.5, 3.0, size=n),
        }
    )
    # The answer depends on the weighting variables, as in real surveys: calibration matters.
    p_yes = 0.2 + 0.3 * (frame.sex == "f") + 0.2 * (frame.age == "old")
    frame["answer"] = np.where(rng.random(n) < p_yes, "yes", "no")
    frame.loc[frame.index[:15], "answer"] = None  # some did not answer
    frame["income"] = rng.normal(40, 8, size=n) + 10 * (frame.age == "mid")
    targets = {
        "sex": {"f": 0.5, "m": 0.5},
        "age": {"young": 0.3, "mid": 0.35, "old": 0.35},
        "region": {"n": 0.1, "s": 0.2, "e": 0.3, "w": 0.4},
    }
    return frame, rake(frame, targets, base_weight="base", tol=1e-14)


def test_calibrated_se_is_r_raked_design_row_by_row(raked_frame: tuple[pd.DataFrame, RakeResult]) -> None:
    # GIVEN a frame raked on three margins from unequal base weights, with missing answers
    frame, raked = raked_frame
    w = raked.weights.to_numpy()
    margins = [frame[c].to_numpy() for c in ("sex", "age", "region")]
    women = (frame.sex == "f").to_numpy()
    # WHEN shares are estimated by region among women (a domain), with the default SE
    table = weighted_shares(frame, "answer", values=["yes"], by="region", weights=raked, domain=women)
    # THEN it is the calibrated SE, labelled, and each is R's computation done row by row: the
    # cell sums are an exact rewriting of it, to rounding
    assert table.se_method == "calibrated" and "calibrated to the raking margins" in table.method
    y = (frame.answer == "yes").to_numpy(float)
    answered = frame.answer.notna().to_numpy() & women
    for row in table.rows:
        group = answered if row.group == ALL else answered & (frame.region == row.group).to_numpy()
        assert row.se == pytest.approx(r_raked_se(y, w, group, margins), rel=1e-9), row.group
        if row.group != ALL:
            # The test against everyone else uses the calibrated SE of the rest of the domain too.
            rest = answered & ~group
            rest_mean = (w * y)[rest].sum() / w[rest].sum()
            z = abs(row.estimate - rest_mean) / np.hypot(row.se, r_raked_se(y, w, rest, margins))
            assert row.p_vs_rest == pytest.approx(2 * (1 - NormalDist().cdf(z)), rel=1e-9)
    # AND the same holds for means, over the whole sample
    means = weighted_means(frame, "income", by="sex", weights=raked)
    income = frame.income.to_numpy()
    for row in means.rows:
        group = np.ones(len(frame), bool) if row.group == ALL else (frame.sex == row.group).to_numpy()
        assert row.se == pytest.approx(r_raked_se(income, w, group, margins), rel=1e-9), row.group


def test_calibrated_se_shrinks_for_a_weighting_variable(raked_frame: tuple[pd.DataFrame, RakeResult]) -> None:
    # GIVEN weights raked to sex: the weighted share of women is fixed by construction
    frame, raked = raked_frame
    # WHEN its SE is asked for THEN calibrated it is 0 (the raking fixes it), fixed it is not
    calibrated = weighted_shares(frame, "sex", values=["f"], weights=raked)
    fixed = weighted_shares(frame, "sex", values=["f"], weights=raked, se="fixed")
    assert calibrated.rows[0].se == pytest.approx(0.0, abs=1e-12)
    assert fixed.rows[0].se > 0.01


# Today's fixed-weight figures for CES11 (weight_dataset's weights), computed before issue 11 by
# the code of the time: se="fixed" (and `panelbrain tabulate --se fixed`) must keep giving them.
FIXED_CES11 = {
    ("importance", None, ALL, "very"): 0.01270661727309257,
    ("importance", "province", "PE", "very"): 0.06468177078250739,
    ("abortion", "province", "PE", "No"): 0.09820825952408435,  # among urban respondents
}


def test_fixed_se_keeps_the_figures_from_before_calibration() -> None:
    # GIVEN CES11 raked to its default targets
    data = load_dataset("ces11")
    raked = weight_dataset(data)
    urban = (data.frame.urban == "urban").to_numpy()
    for (measure, by, group, category), expected in FIXED_CES11.items():
        domain = urban if measure == "abortion" else None
        # WHEN the fixed-weight SE is asked for
        table = weighted_shares(data.frame, measure, by=by, weights=raked, domain=domain, se="fixed")
        # THEN it is the figure from before, and the table says the weights were taken as fixed
        row = next(r for r in table.rows if r.group == group and r.category == category)
        assert row.se == pytest.approx(expected, rel=1e-12), (measure, by, group)
        assert table.se_method == "fixed" and "weights taken as fixed" in table.method
        # AND bare weights on the filtered rows (the pre-issue-11 call) give the same figure
        rows = np.ones(len(data.frame), bool) if domain is None else domain
        bare = weighted_shares(data.frame[rows], measure, by=by, weights=raked.weights.to_numpy()[rows])
        assert next(r for r in bare.rows if r.group == group and r.category == category).se == row.se


def test_calibrated_se_needs_the_margins(frame: pd.DataFrame) -> None:
    # GIVEN bare weights (no raking margins) THEN a calibrated SE is refused with what to pass
    with pytest.raises(EstimateError, match="pass the RakeResult of rake"):
        weighted_shares(frame, "answer", weights="w", se="calibrated")
    # AND without asking, bare weights give the fixed SE and unweighted tables say so too
    assert weighted_shares(frame, "answer", weights="w").se_method == "fixed"
    assert weighted_shares(frame, "answer").se_method == "fixed"
    with pytest.raises(EstimateError, match="domain must be one True/False per row"):
        weighted_shares(frame, "answer", domain=np.ones(3, dtype=bool))


def test_calibrated_se_for_hundreds_of_groups(raked_frame: tuple[pd.DataFrame, RakeResult]) -> None:
    # GIVEN a breakdown with more groups than are computed at once (a breakdown by respondent
    # has thousands), some groups empty in the domain
    frame, raked = raked_frame
    frame = frame.assign(pair=np.arange(len(frame)) % 290)
    w = raked.weights.to_numpy()
    margins = [frame[c].to_numpy() for c in ("sex", "age", "region")]
    domain = (frame.pair != 7).to_numpy()
    # WHEN estimated by that column
    table = weighted_means(frame, "income", by="pair", weights=raked, domain=domain)
    rows = {r.group: r for r in table.rows}
    # THEN empty groups are left out and groups of every chunk are R's computation
    assert "7" not in rows and len(rows) == 290
    income = frame.income.to_numpy()
    for pair in (0, 1, 255, 256, 257, 289):
        in_group = (frame.pair == pair).to_numpy() & domain
        assert rows[str(pair)].se == pytest.approx(r_raked_se(income, w, in_group, margins), rel=1e-9)
