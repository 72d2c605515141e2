"""Dictionaries, the vendored CES11 data, the synthetic generator and default targets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from panelbrain.data.catalog import default_targets, load_dataset, weight_dataset
from panelbrain.data.dictionary import Dataset, dataset_names, load_dictionary
from panelbrain.data.synthetic import generate_panel
from panelbrain.errors import BadInputError, DatasetNotFoundError


def test_shipped_datasets_are_listed() -> None:
    assert dataset_names() == ["ces11", "synthetic"]


def test_unknown_dataset_names_the_alternatives() -> None:
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'ces12'; available: ces11, synthetic"):
        load_dictionary("ces12")


@pytest.mark.parametrize("name", ["ces11", "synthetic"])
def test_every_categorical_value_in_the_data_is_in_the_dictionary(name: str) -> None:
    data = load_dataset(name, rows=5_000) if name == "synthetic" else load_dataset(name)
    for column in data.table.columns:
        series = data.frame[column.name]
        assert series.notna().all(), column.name
        if column.type == "categorical":
            assert list(series.cat.categories) == [v.value for v in column.values]


def test_ces11_is_the_published_2231_respondents() -> None:
    frame = load_dataset("ces11").frame
    assert frame.shape == (2231, 9)
    assert frame.province.value_counts()["ON"] == 687
    assert frame.gender.value_counts().to_dict() == {"Female": 1244, "Male": 987}


def test_ces11_targets_are_documented_and_sum_to_one() -> None:
    spec = load_dictionary("ces11")
    assert spec.weighting is not None
    for var in spec.weighting.variables:
        assert "Statistics Canada" in var.source or "population column" in var.source
    targets, frame = default_targets(load_dataset("ces11"))
    for name, shares in targets.items():
        assert math.fsum(shares.values()) == pytest.approx(1.0, abs=1e-6), name
    # Province targets come from the population column: Ontario 9,439,960 of 24,649,530.
    assert targets["province"]["ON"] == pytest.approx(9_439_960 / 24_649_530)
    assert set(frame.education.cat.categories) == {"lessHS", "HS_or_somePS", "college", "university"}


def test_ces11_default_weighting_converges_from_the_design_weight() -> None:
    result = weight_dataset(load_dataset("ces11"))
    assert result.report.base_weight == "weight"
    assert result.report.converged
    assert result.weights.mean() == pytest.approx(1.0)
    for var in result.report.variables:
        assert var.max_abs_error < 1e-9


def test_synthetic_panel_is_reproducible_and_seed_dependent() -> None:
    a, b, c = generate_panel(2_000, seed=5), generate_panel(2_000, seed=5), generate_panel(2_000, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_synthetic_panel_is_skewed_against_its_targets() -> None:
    data = load_dataset("synthetic", rows=200_000, seed=11)
    targets, frame = default_targets(data)
    observed = frame.age_group.value_counts(normalize=True)
    assert observed["18-24"] < targets["age_group"]["18-24"] * 0.7  # the young are scarce
    assert observed["65+"] > targets["age_group"]["65+"]
    # ... and weighting corrects it while moving an opinion estimate.
    result = weight_dataset(data)
    young = result.weights[frame.age_group == "18-24"].sum() / result.weights.sum()
    assert young == pytest.approx(targets["age_group"]["18-24"], abs=1e-9)
    unweighted = (data.frame.vote_intention == "Party C").mean()
    weighted = result.weights[data.frame.vote_intention == "Party C"].sum() / len(frame)
    assert weighted > unweighted + 0.01


def test_synthetic_generator_refuses_impossible_sizes() -> None:
    with pytest.raises(BadInputError, match="rows must be between 1 and 20,000,000, got 0"):
        generate_panel(0)


def test_dictionary_rejects_weighting_on_unknown_columns() -> None:
    raw = load_dictionary("synthetic").model_dump()
    raw["weighting"]["variables"][0]["column"] = "planet"
    with pytest.raises(ValueError, match="weighting refers to 'planet', not a column of 'panel'"):
        Dataset.model_validate(raw)


def test_generated_columns_have_the_dictionary_types() -> None:
    frame = generate_panel(1_000, seed=1)
    assert frame.income.dtype == np.float64
    assert (frame.income > 0).all()
    assert frame.respondent_id.is_unique
