"""Rim weighting: the numbers, the cap, and every refusal with its exact message."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import panelbrain
from panelbrain.data.weighting import rake
from panelbrain.errors import BadInputError, ConvergenceError, TargetsError, UnreachableTargetsError

TARGETS = {"sex": {"f": 0.5, "m": 0.5}, "age": {"young": 0.3, "old": 0.7}}


@pytest.fixture
def frame() -> pd.DataFrame:
    # 10 respondents, women and the young over-represented, the two variables correlated.
    return pd.DataFrame(
        {
            "sex": ["f", "f", "f", "f", "f", "f", "m", "m", "m", "m"],
            "age": ["young", "young", "young", "old", "old", "old", "young", "old", "old", "old"],
            "score": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        }
    )


def shares(frame: pd.DataFrame, weights: pd.Series, column: str) -> dict[str, float]:
    return (weights.groupby(frame[column]).sum() / weights.sum()).to_dict()


def test_weights_meet_every_target_and_have_mean_one(frame: pd.DataFrame) -> None:
    result = rake(frame, TARGETS)
    assert result.weights.mean() == pytest.approx(1.0, abs=1e-12)
    assert shares(frame, result.weights, "sex") == pytest.approx(TARGETS["sex"], abs=1e-10)
    assert shares(frame, result.weights, "age") == pytest.approx(TARGETS["age"], abs=1e-10)
    assert result.report.converged and result.report.iterations > 1


def test_weights_are_aligned_with_the_frame_index(frame: pd.DataFrame) -> None:
    frame.index = [f"r{i}" for i in range(len(frame))]
    result = rake(frame, TARGETS)
    assert list(result.weights.index) == list(frame.index)
    assert result.weights.name == "weight"


def test_report_diagnostics_follow_their_definitions(frame: pd.DataFrame) -> None:
    result = rake(frame, TARGETS)
    w = result.weights.to_numpy()
    report = result.report
    kish = w.sum() ** 2 / (w**2).sum()
    assert report.n == 10
    assert report.weighted_total == pytest.approx(10.0)
    assert report.effective_n == pytest.approx(kish)
    assert report.efficiency == pytest.approx(kish / 10)
    assert report.design_effect == pytest.approx(10 / kish)
    assert report.min_weight == pytest.approx(w.min())
    assert report.max_weight == pytest.approx(w.max())
    sex = next(v for v in report.variables if v.variable == "sex")
    female = next(c for c in sex.categories if c.category == "f")
    assert (female.target, female.unweighted, female.respondents) == (0.5, 0.6, 6)
    assert female.weighted == pytest.approx(0.5, abs=1e-10)


def test_base_weights_are_the_starting_point(frame: pd.DataFrame) -> None:
    # A single target already met by the base weights leaves them unchanged (up to scale).
    frame["design"] = [2.0, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    base_share_f = frame.loc[frame.sex == "f", "design"].sum() / frame.design.sum()
    result = rake(frame, {"sex": {"f": base_share_f, "m": 1 - base_share_f}}, base_weight="design")
    expected = frame.design / frame.design.mean()
    np.testing.assert_allclose(result.weights, expected, rtol=1e-12)


def test_numeric_codes_match_json_string_keys() -> None:
    frame = pd.DataFrame({"region": [1, 1, 2, 2, 2, 3]})
    result = rake(frame, {"region": {"1": 0.2, "2": 0.5, "3": 0.3}})
    assert shares(frame, result.weights, "region") == pytest.approx({1: 0.2, 2: 0.5, 3: 0.3})


def test_categorical_columns_with_unused_categories_are_fine() -> None:
    frame = pd.DataFrame({"sex": pd.Categorical(["f", "m", "m"], categories=["f", "m", "x"])})
    result = rake(frame, {"sex": {"f": 0.5, "m": 0.5}})
    assert result.weights.tolist() == pytest.approx([1.5, 0.75, 0.75])


def test_cells_are_right_whatever_the_width_of_each_variables_codes() -> None:
    # Small categoricals (int8 codes, combined in int8 runs), one with 200 categories (int16
    # codes), a string column and an integer column (factorised to intp codes), interleaved, over
    # more rows than one block: each row must land in its own cell and keep its weight.
    rng = np.random.default_rng(7)
    rows = 300_000
    frame = pd.DataFrame(
        {
            "a": pd.Categorical(rng.choice(list("pqr"), rows)),
            "b": pd.Categorical(rng.choice(list("xy"), rows)),
            "wide": pd.Categorical(rng.integers(0, 200, rows)),
            "c": pd.Categorical(rng.choice(list("uvwxz"), rows)),
            "d": pd.Categorical(rng.choice(list("st"), rows)),
            "text": rng.choice(["one", "two", "three"], rows),
            "number": rng.integers(1, 3, rows),
        }
    )
    targets = {
        column: {str(k): 1 / frame[column].nunique() for k in sorted(frame[column].unique())}
        for column in frame.columns
    }
    result = rake(frame, targets)
    for variable in result.report.variables:
        counts = frame[variable.variable].astype(str).value_counts()
        assert {c.category: c.respondents for c in variable.categories} == counts.to_dict()
        assert variable.max_abs_error < 1e-10
    # Rows with the same codes everywhere share a weight.
    assert (result.weights.groupby([frame[c] for c in frame.columns], observed=True).nunique() == 1).all()
    assert shares(frame, result.weights, "wide") == pytest.approx({k: 1 / 200 for k in range(200)}, abs=1e-10)


def test_cap_bounds_every_weight_and_still_meets_targets(frame: pd.DataFrame) -> None:
    uncapped = rake(frame, TARGETS)
    cap = 1.3
    assert uncapped.report.max_weight > cap
    capped = rake(frame, TARGETS, cap=cap)
    assert capped.weights.max() <= cap + 1e-12
    assert shares(frame, capped.weights, "sex") == pytest.approx(TARGETS["sex"], abs=1e-10)
    assert shares(frame, capped.weights, "age") == pytest.approx(TARGETS["age"], abs=1e-10)


def test_lower_and_upper_cap() -> None:
    frame = pd.DataFrame(
        {"g": ["a"] * 2 + ["b"] * 8, "h": ["x", "y", "x", "y", "x", "y", "x", "y", "x", "y"]}
    )
    result = rake(frame, {"g": {"a": 0.3, "b": 0.7}, "h": {"x": 0.5, "y": 0.5}}, cap=(0.8, 1.6))
    assert result.weights.min() >= 0.8 - 1e-12
    assert result.weights.max() <= 1.6 + 1e-12
    assert result.report.cap == (0.8, 1.6)


def test_public_api_is_importable_from_the_package() -> None:
    assert panelbrain.rake is rake


# Every refusal: (targets, frame change, keyword arguments, exact message).
BAD_INPUT = [
    pytest.param(
        {"sex": {"f": 0.5, "m": 0.4}},
        {},
        "targets for 'sex' sum to 0.9, not 1 (tolerance 1e-06); give proportions that add up to 1",
        TargetsError,
        id="targets-not-summing-to-one",
    ),
    pytest.param(
        {"sex": {"f": 0.5, "m": 0.4, "x": 0.1}},
        {},
        "target category 'sex'='x' has no respondents in the data; "
        "drop it or merge it with a neighbouring category",
        TargetsError,
        id="target-category-without-respondents",
    ),
    pytest.param(
        {"age": {"young": 1.0}},
        {},
        "'age'='old' appears in the data (6 respondents) but has no target; add a target for it or recode it",
        TargetsError,
        id="data-category-without-target",
    ),
    pytest.param(
        {"sex": {"f": 0.5, "m": 0.5}},
        {"sex": ["f", None, "f", "f", "f", "f", "m", None, "m", "m"]},
        "'sex' has 2 missing value(s) (first at row 1); impute or drop them before weighting",
        TargetsError,
        id="missing-value",
    ),
    pytest.param(
        {"gender": {"f": 0.5, "m": 0.5}},
        {},
        "unknown variable 'gender': not a column of the data (columns: sex, age, score)",
        TargetsError,
        id="unknown-variable",
    ),
    pytest.param(
        {"sex": {"f": -0.5, "m": 1.5}},
        {},
        "target 'sex'='f' is negative (-0.5)",
        TargetsError,
        id="negative-target",
    ),
    pytest.param(
        {"sex": {"f": "half", "m": 0.5}},
        {},
        "target 'sex'='f' must be a finite number, got 'half'",
        TargetsError,
        id="non-numeric-target",
    ),
    pytest.param(
        {"sex": {"f": 1.0, "m": 0.0}},
        {},
        "target 'sex'='m' is 0 but 4 respondents have it; drop those rows or give it a positive target",
        TargetsError,
        id="zero-target-with-respondents",
    ),
    pytest.param(
        {"sex": []},
        {},
        "targets for 'sex' must be a non-empty mapping of category to proportion",
        TargetsError,
        id="targets-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("targets", "change", "message", "error"), BAD_INPUT)
def test_bad_input_is_refused_with_a_message_naming_variable_and_category(
    frame: pd.DataFrame,
    targets: dict[str, dict[str, float]],
    change: dict[str, list[object]],
    message: str,
    error: type[Exception],
) -> None:
    frame = frame.assign(**change)
    with pytest.raises(error) as caught:
        rake(frame, targets)
    assert str(caught.value) == message
    assert isinstance(caught.value, BadInputError)


def test_no_convergence_within_max_iter_is_an_error(frame: pd.DataFrame) -> None:
    with pytest.raises(ConvergenceError) as caught:
        rake(frame, TARGETS, max_iter=1)
    message = str(caught.value)
    assert message.startswith("raking did not converge within 1 iterations: the largest gap between")
    assert re.search(r"its target is [0-9.e-]+ \('(sex|age)'='\w+'\)", message)
    assert caught.value.detail["residual"] > 1e-10


def test_structural_zero_makes_raking_fail_to_converge() -> None:
    # Nobody is both "a" and "y": targets that need them cannot be met, only approached.
    frame = pd.DataFrame({"g": ["a", "b", "b"], "h": ["x", "x", "y"]})
    with pytest.raises(ConvergenceError, match="did not converge within 200 iterations"):
        rake(frame, {"g": {"a": 0.6, "b": 0.4}, "h": {"x": 0.3, "y": 0.7}}, max_iter=200)


def test_cap_that_makes_targets_unreachable_gives_the_residual(frame: pd.DataFrame) -> None:
    # 4 of 10 are men; a 0.8 share for men needs weights of 2 on average: a cap of 1.5 forbids it.
    with pytest.raises(UnreachableTargetsError) as caught:
        rake(frame, {"sex": {"f": 0.2, "m": 0.8}}, cap=1.5)
    assert str(caught.value) == (
        "cap 1.5 makes the targets unreachable: 'sex'='m' has 4 of 10 respondents and a target "
        "of 0.8, which needs weights outside the bounds (residual 0.2); raise the cap"
    )
    assert caught.value.detail["residual"] == pytest.approx(0.2)


def test_cap_unreachable_only_jointly_is_detected_in_the_loop() -> None:
    # Each margin alone is reachable under the cap, but not both together.
    frame = pd.DataFrame({"g": ["a"] * 5 + ["b"] * 5, "h": ["x"] * 5 + ["y"] * 5})
    with pytest.raises(UnreachableTargetsError) as caught:
        rake(frame, {"g": {"a": 0.7, "b": 0.3}, "h": {"x": 0.3, "y": 0.7}}, cap=1.5)
    assert str(caught.value).startswith("cap 1.5 makes the targets unreachable: after ")
    assert caught.value.detail["residual"] > 0.1


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        (0.9, "cap: the upper bound must be a number above 1 (the mean weight), got 0.9"),
        ((1.2, 3.0), "cap: the lower bound must be at least 0 and below 1, got 1.2"),
    ],
)
def test_bad_cap_is_refused(frame: pd.DataFrame, cap: object, message: str) -> None:
    with pytest.raises(TargetsError) as caught:
        rake(frame, TARGETS, cap=cap)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_bad_base_weight_is_refused(frame: pd.DataFrame) -> None:
    frame["design"] = [1.0, 1, 0, 1, 1, 1, 1, 1, 1, 1]
    with pytest.raises(TargetsError) as caught:
        rake(frame, TARGETS, base_weight="design")
    assert str(caught.value) == (
        "base weight 'design' must be a positive number on every row; 1 row(s) are not (first at row 2)"
    )
    with pytest.raises(TargetsError, match="base weight 'nope' is not a column of the data"):
        rake(frame, TARGETS, base_weight="nope")


def test_empty_data_and_empty_targets_are_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(TargetsError, match="the data has no rows to weight"):
        rake(frame.iloc[:0], TARGETS)
    with pytest.raises(TargetsError, match="targets must be a non-empty mapping"):
        rake(frame, {})


def test_input_frame_is_not_modified(frame: pd.DataFrame) -> None:
    before = frame.copy()
    rake(frame, TARGETS, cap=3)
    pd.testing.assert_frame_equal(frame, before)
