"""Seeded synthetic panel: any size, skewed against known margins, opinions tied to demographics.

The population margins come from the ``synthetic`` data dictionary (its weighting targets), so the
dictionary, the generator and the default weighting can never disagree. The sample is drawn with
each margin multiplied by a skew (an opt-in online panel has too few young, rural and
less-educated people), and the opinions depend on the demographics, so unweighted and weighted
estimates differ the way they do on real panels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from panelbrain.data.dictionary import Dataset, load_dictionary
from panelbrain.errors import BadInputError

MAX_ROWS = 20_000_000

# Over- or under-representation of each category in the sample, relative to the population.
SAMPLE_SKEW: dict[str, dict[str, float]] = {
    "region": {"North": 0.8, "South": 1.1, "East": 1.0, "West": 1.2, "Central": 0.9},
    "gender": {"Female": 1.15, "Male": 0.85},
    "age_group": {"18-24": 0.5, "25-34": 0.8, "35-44": 1.0, "45-54": 1.2, "55-64": 1.3, "65+": 1.1},
    "education": {
        "none": 0.5,
        "secondary": 0.8,
        "vocational": 1.0,
        "bachelor": 1.5,
        "postgraduate": 1.7,
    },
    "urban": {"urban": 1.1, "rural": 0.6},
}


def _categorical(codes: np.ndarray, categories: list[str]) -> pd.Categorical:
    dtype = pd.CategoricalDtype(categories=categories)
    return pd.Categorical.from_codes(codes.astype(np.int8), dtype=dtype)


def _draw_by_age(rng: np.random.Generator, p: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Education drawn conditionally on age (the young hold more degrees), so the weighting
    variables are correlated and raking needs several passes, as on real data."""
    younger = (5 - np.arange(6)) / 5.0
    level = (np.arange(len(p)) - (len(p) - 1) / 2) / ((len(p) - 1) / 2)
    table = p[None, :] * np.exp(0.5 * np.outer(younger, level))
    cdf = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random(len(age))
    drawn: np.ndarray = (draws[:, None] > cdf[age, :-1]).sum(axis=1)
    return drawn


def generate_panel(rows: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """Draw a synthetic panel of ``rows`` respondents, reproducibly from ``seed``.

    Examples
    --------
    >>> frame = generate_panel(1_000, seed=1)
    >>> frame.shape
    (1000, 11)
    """
    spec: Dataset = load_dictionary("synthetic")
    assert spec.generated is not None and spec.weighting is not None
    rows = spec.generated.rows if rows is None else rows
    seed = spec.generated.seed if seed is None else seed
    if not 1 <= rows <= MAX_ROWS:
        raise BadInputError(f"rows must be between 1 and {MAX_ROWS:,}, got {rows:,}")
    rng = np.random.default_rng(seed)
    table = spec.main_table
    data: dict[str, object] = {"respondent_id": np.arange(1, rows + 1, dtype=np.int64)}
    codes: dict[str, np.ndarray] = {}
    for var in spec.weighting.variables:
        assert var.targets is not None
        categories = [v.value for v in table.column(var.column).values]
        skew = SAMPLE_SKEW[var.column]
        p = np.array([var.targets[c] * skew[c] for c in categories])
        if var.column == "education":
            codes[var.column] = _draw_by_age(rng, p, codes["age_group"])
        else:
            codes[var.column] = rng.choice(len(categories), size=rows, p=p / p.sum())
        data[var.column] = _categorical(codes[var.column], categories)

    age = codes["age_group"] / 5.0  # 0 = youngest band, 1 = oldest
    edu = codes["education"] / 4.0  # 0 = no qualification, 1 = postgraduate
    rural = codes["urban"].astype(float)  # categories are [urban, rural]
    female = (codes["gender"] == 0).astype(float)

    # Vote intention: multinomial logit by the Gumbel-max trick (vectorised, exact).
    utilities = np.column_stack(
        [
            0.2 + 1.4 * age + 0.9 * rural - 0.6 * edu,  # Party A: older, rural
            0.1 + 1.5 * edu - 0.5 * rural + 0.3 * female,  # Party B: educated, urban
            0.3 - 1.2 * age + 0.2 * edu,  # Party C: young
            -0.4 + 0.4 * female + np.zeros(rows),  # Undecided
        ]
    )
    vote = np.argmax(utilities + rng.gumbel(size=utilities.shape), axis=1)
    data["vote_intention"] = _categorical(vote, [v.value for v in table.column("vote_intention").values])

    # Satisfaction: an ordered probit on a latent score.
    latent = 0.6 * age + 0.4 * edu - 0.5 * rural + rng.normal(size=rows)
    satisfaction = np.searchsorted(np.array([-1.2, -0.3, 0.4, 1.3]), latent)
    data["satisfaction"] = _categorical(satisfaction, [v.value for v in table.column("satisfaction").values])

    trust_p = 1.0 / (1.0 + np.exp(-(-0.6 + 1.2 * edu + 0.5 * age - 0.3 * rural)))
    trusts = (rng.random(rows) >= trust_p).astype(np.int8)  # categories are [yes, no]
    data["trusts_media"] = _categorical(trusts, [v.value for v in table.column("trusts_media").values])

    data["income"] = np.round(
        np.exp(3.4 + 0.8 * edu + 0.4 * age - 0.2 * rural + 0.45 * rng.normal(size=rows)), 1
    )
    data["hours_online"] = np.round(rng.gamma(shape=4.0, scale=6.0 - 3.5 * age), 1)
    return pd.DataFrame(data, columns=list(table.column_names))
