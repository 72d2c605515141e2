"""Weighted estimates: shares and means, overall and by group, with 95 % confidence intervals.

Method: the weighted mean (a share is the mean of a 0/1 indicator) is a ratio estimator; its
standard error comes from Taylor linearisation for a single-stage, with-replacement design,
``var = n/(n-1) * sum(z_i^2)`` with ``z_i = w_i (y_i - ybar) / sum(w)`` over the respondents in
the group. This is what R survey's ``svymean`` gives for ``svydesign(ids = ~1, weights = ~w)``.
It treats the weights as fixed, so for raked weights it is slightly conservative (R's calibrated
design shrinks the standard errors of variables correlated with the weighting variables).
A group is flagged when it differs from all other respondents at the 5 % level (two-sided z-test
of the difference, the two groups taken as independent).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from panelbrain.errors import EstimateError

METHOD = (
    "Taylor linearisation of the weighted ratio mean (single stage, with replacement); "
    "95 % normal intervals; groups flagged when different from the rest at p < 0.05"
)
_Z = NormalDist().inv_cdf(0.975)
ALL = "All"


class Estimate(BaseModel):
    """One cell of a weighted table."""

    model_config = ConfigDict(frozen=True)

    group: str
    category: str | None
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    weighted_base: float
    unweighted_base: int
    p_vs_rest: float | None = None
    significant: bool = False


class EstimateTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["share", "mean"]
    measure: str
    by: str | None
    weighted: bool
    method: str = METHOD
    rows: list[Estimate]


def _codes(frame: pd.DataFrame, column: str, role: str) -> tuple[np.ndarray, list[str]]:
    if column not in frame.columns:
        raise EstimateError(
            f"{role} {column!r} is not a column (columns: {', '.join(map(str, frame.columns))})"
        )
    series = frame[column]
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes, labels = series.cat.codes.to_numpy(), [str(c) for c in series.cat.categories]
    else:
        codes, uniques = pd.factorize(series, sort=True)
        labels = [str(u) for u in uniques]
    return codes.astype(np.int64), labels


def _weights(frame: pd.DataFrame, weights: str | np.ndarray | pd.Series | None) -> np.ndarray:
    if weights is None:
        return np.ones(len(frame))
    values = (
        frame[weights].to_numpy(dtype=float) if isinstance(weights, str) else np.asarray(weights, dtype=float)
    )
    if len(values) != len(frame) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise EstimateError("weights must be one finite, non-negative number per row")
    return values


class _Stats(BaseModel):
    """Per group: weighted mean, linearised SE and bases; and the same for everyone else."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    mean: np.ndarray
    se: np.ndarray
    wsum: np.ndarray
    count: np.ndarray
    rest_mean: np.ndarray
    rest_se: np.ndarray


def _stats(y: np.ndarray, w: np.ndarray, group: np.ndarray, n_groups: int) -> _Stats:
    n = len(y)
    centre = float(np.average(y, weights=w)) if w.sum() > 0 else 0.0
    y = y - centre  # centring keeps the variance sums below from cancelling
    wy, w2, w2y, w2y2 = w * y, w * w, w * w * y, w * w * y * y
    sums = [np.bincount(group, weights=v, minlength=n_groups) for v in (w, wy, w2, w2y, w2y2)]
    rests = [float(v.sum()) - g for v, g in zip((w, wy, w2, w2y, w2y2), sums, strict=True)]

    def moments(
        s_w: np.ndarray, s_wy: np.ndarray, s_w2: np.ndarray, s_w2y: np.ndarray, s_w2y2: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s_wy / s_w
            ss = np.maximum(s_w2y2 - 2 * mean * s_w2y + mean * mean * s_w2, 0.0)
            se = np.sqrt(ss / (s_w * s_w) * n / max(n - 1, 1))
        return mean + centre, se

    mean, se = moments(*sums)
    rest_mean, rest_se = moments(*rests)
    count = np.bincount(group, minlength=n_groups)
    return _Stats(mean=mean, se=se, wsum=sums[0], count=count, rest_mean=rest_mean, rest_se=rest_se)


def _rows(labels: list[str], category: str | None, stats: _Stats, compare: bool) -> list[Estimate]:
    rows = []
    for g, label in enumerate(labels):
        if stats.count[g] == 0:
            continue
        mean, se = float(stats.mean[g]), float(stats.se[g])
        p_value: float | None = None
        scale = math.hypot(se, float(stats.rest_se[g]))
        if compare and np.isfinite(stats.rest_mean[g]) and scale > 0:
            z = abs(mean - float(stats.rest_mean[g])) / scale
            p_value = 2.0 * (1.0 - NormalDist().cdf(z))
        rows.append(
            Estimate(
                group=label,
                category=category,
                estimate=mean,
                se=se,
                ci_low=mean - _Z * se,
                ci_high=mean + _Z * se,
                weighted_base=float(stats.wsum[g]),
                unweighted_base=int(stats.count[g]),
                p_vs_rest=p_value,
                significant=p_value is not None and p_value < 0.05,
            )
        )
    return rows


def _grouping(frame: pd.DataFrame, by: str | None) -> tuple[np.ndarray, list[str]]:
    if by is None:
        return np.zeros(len(frame), dtype=np.int64), [ALL]
    codes, labels = _codes(frame, by, "breakdown")
    if (codes < 0).any():
        labels = [*labels, "(missing)"]
        codes = np.where(codes < 0, len(labels) - 1, codes)
    return codes, labels


def weighted_shares(
    frame: pd.DataFrame,
    column: str,
    *,
    values: list[str] | None = None,
    by: str | None = None,
    weights: str | np.ndarray | pd.Series | None = None,
) -> EstimateTable:
    """Share of each category of ``column`` (or only ``values``), overall and by ``by``.

    Respondents with a missing ``column`` are left out of the base, as survey tables do.

    Examples
    --------
    >>> frame = pd.DataFrame({"q": ["y", "n", "y", "y"], "w": [1.0, 1.0, 2.0, 0.0]})
    >>> table = weighted_shares(frame, "q", values=["y"], weights="w")
    >>> round(table.rows[0].estimate, 3)
    0.75
    """
    codes, labels = _codes(frame, column, "measure")
    chosen = labels if values is None else values
    unknown = [v for v in chosen if v not in labels]
    if unknown:
        raise EstimateError(f"{column!r} has no value {unknown[0]!r} (values: {', '.join(labels)})")
    w = _weights(frame, weights)
    answered = codes >= 0
    group, group_labels = _grouping(frame, by)
    group, w, codes = group[answered], w[answered], codes[answered]
    n = len(codes)
    rows: list[Estimate] = []
    for value in chosen:
        y = (codes == labels.index(value)).astype(float)
        rows += _rows([ALL], value, _stats(y, w, np.zeros(n, dtype=np.int64), 1), compare=False)
        if by is not None:
            rows += _rows(group_labels, value, _stats(y, w, group, len(group_labels)), compare=True)
    return EstimateTable(kind="share", measure=column, by=by, weighted=weights is not None, rows=rows)


def weighted_means(
    frame: pd.DataFrame,
    column: str,
    *,
    by: str | None = None,
    weights: str | np.ndarray | pd.Series | None = None,
) -> EstimateTable:
    """Mean of the numeric ``column``, overall and by ``by``; missing values are left out."""
    if column not in frame.columns:
        raise EstimateError(
            f"measure {column!r} is not a column (columns: {', '.join(map(str, frame.columns))})"
        )
    if not pd.api.types.is_numeric_dtype(frame[column]):
        raise EstimateError(f"{column!r} is not numeric: ask for shares of its values instead of a mean")
    y_all = frame[column].to_numpy(dtype=float)
    answered = np.isfinite(y_all)
    w = _weights(frame, weights)[answered]
    group, group_labels = _grouping(frame, by)
    group, y = group[answered], y_all[answered]
    rows = _rows([ALL], None, _stats(y, w, np.zeros(len(y), dtype=np.int64), 1), compare=False)
    if by is not None:
        rows += _rows(group_labels, None, _stats(y, w, group, len(group_labels)), compare=True)
    return EstimateTable(kind="mean", measure=column, by=by, weighted=weights is not None, rows=rows)
