"""Weighted estimates: shares and means, overall and by group, with 95 % confidence intervals.

The weighted mean (a share is the mean of a 0/1 indicator) is a ratio estimator; its standard
error comes from Taylor linearisation for a single-stage, with-replacement design,
``var = n/(n-1) * sum((x_i - xbar)^2)`` over the ``n`` respondents of the design, with influence
values ``x_i = w_i (y_i - ybar) / sum(w)`` for respondents in the group (0 for the others).

Two standard errors (``se=``):

- ``"calibrated"`` (the default for raked weights): R survey's raked design (``rake()`` then
  ``svymean`` / ``svyby``, domains by ``subset()``). The weights were calibrated to the raking
  margins, so the influence values are first replaced by their residuals on the margins'
  indicators (R's ``svyrecvar``: ten backfitting passes, margin by margin, of
  ``x <- x - w * ave(x / w, margin)``), and ``n`` is the whole raked sample, domains included.
  Equal to R to 1e-6 and better (tests/functional/test_against_r.py). It needs the margins,
  so it needs the :class:`~panelbrain.data.weighting.RakeResult` rather than bare weights.
- ``"fixed"``: the weights taken as given, ``n`` the respondents of the domain: what R gives for
  ``svydesign(ids = ~1, weights = ~w)`` on the domain's rows. Not conservative: for variables
  related to the weighting variables it can be narrower as well as wider than the calibrated
  one (CES11: 20 % narrower to 4 % wider; ADR 0005).

A group is flagged when it differs from all other respondents at the 5 % level (two-sided z-test
of the difference, the two groups taken as independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from panelbrain.data.weighting import Calibration, RakeResult
from panelbrain.errors import EstimateError

Weights = str | np.ndarray | pd.Series | RakeResult | None

SeMethod = Literal["calibrated", "fixed"]
METHOD = (
    "Taylor linearisation of the weighted ratio mean (single stage, with replacement); "
    "95 % normal intervals; groups flagged when different from the rest at p < 0.05"
)
METHOD_CALIBRATED = (
    "Taylor linearisation of the weighted ratio mean, calibrated to the raking margins as R "
    "survey's raked design (rake + svymean/svyby; single stage, with replacement); "
    "95 % normal intervals; groups flagged when different from the rest at p < 0.05"
)
METHOD_FIXED = (
    "Taylor linearisation of the weighted ratio mean, weights taken as fixed (single stage, "
    "with replacement); 95 % normal intervals; groups flagged when different from the rest at p < 0.05"
)
# R survey's svyrecvar backfits the raking margins a fixed ten passes, converged or not.
_BACKFIT_PASSES = 10
_GROUP_CHUNK = 256
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
    # "calibrated" only for raked weights with their margins; unweighted tables are "fixed".
    se_method: SeMethod = "fixed"


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


def _weights(
    frame: pd.DataFrame, weights: Weights, se: SeMethod | None
) -> tuple[np.ndarray, Calibration | None, SeMethod]:
    """Row weights, the calibration the estimate accounts for, and the SE method that follows."""
    calibration = weights.calibration if isinstance(weights, RakeResult) else None
    if isinstance(weights, RakeResult):
        weights = weights.weights
    if se not in (None, "calibrated", "fixed"):
        raise EstimateError(f"se must be 'calibrated' or 'fixed', got {se!r}")
    if se == "calibrated" and calibration is None:
        raise EstimateError(
            "calibrated standard errors need the margins the weights were raked to: pass the "
            "RakeResult of rake() / weight_dataset() as weights, or ask for se='fixed'"
        )
    method: SeMethod = "fixed" if se == "fixed" or calibration is None else "calibrated"
    if weights is None:
        return np.ones(len(frame)), None, "fixed"
    if method == "calibrated":
        assert calibration is not None
        raked_rows = int(calibration.cell_count.sum())
        if raked_rows != len(frame):
            raise EstimateError(
                f"the weights were raked on {raked_rows:,} rows but the data has {len(frame):,}: "
                "pass the whole raked frame and select the respondents with domain= rather than "
                "filtering the rows (a calibrated design keeps every respondent, as R's subset() does)"
            )
    values = (
        frame[weights].to_numpy(dtype=float) if isinstance(weights, str) else np.asarray(weights, dtype=float)
    )
    if len(values) != len(frame) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise EstimateError("weights must be one finite, non-negative number per row")
    return values, calibration if method == "calibrated" else None, method


def _method_text(method: SeMethod, weighted: bool) -> str:
    if method == "calibrated":
        return METHOD_CALIBRATED
    return METHOD_FIXED if weighted else METHOD


def _domain(frame: pd.DataFrame, domain: np.ndarray | pd.Series | None) -> np.ndarray:
    if domain is None:
        return np.ones(len(frame), dtype=bool)
    mask = np.asarray(domain)
    if mask.dtype != bool or mask.shape != (len(frame),):
        raise EstimateError(f"domain must be one True/False per row ({len(frame):,} rows), got {mask.shape}")
    return mask


@dataclass(frozen=True)
class _CalibratedSE:
    """Calibration-aware SEs: the whole base, each group, and everyone in the base but the group."""

    overall: np.ndarray
    group: np.ndarray
    rest: np.ndarray


def _calibrated_se(
    y: np.ndarray,
    w: np.ndarray,
    answered: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    calibration: Calibration,
) -> _CalibratedSE:
    """Calibration-aware SE of the weighted mean of ``y`` over the base and its groups.

    R's residual ``x - w * ave(x / w, margin)`` changes every row of one raking cell by the
    same amount, ``w_i * a_c``, so the backfitting runs on cell sums: ``x_i = w_i (u_i - a_c)``
    with ``u_i = (y_i - ybar) / W`` in the domain and 0 elsewhere, and the variance's sums of
    ``x`` and ``x^2`` expand into per-cell sums of ``u``, ``w u``, ``w^2 u`` (domain rows) and
    ``w``, ``w^2`` (all rows). Those sums are linear in the domain: a group's complement in the
    base is the base's sums minus the group's. Every respondent of the raked sample counts in
    ``n``, as in R, where a subset of a calibrated design keeps all its rows.
    """
    cells = calibration.row_cells()
    n_cells = calibration.cells
    inside = np.flatnonzero(answered)
    # Rows of the base sorted by group, so that a run of groups is one slice of rows.
    order = inside[np.argsort(group[inside], kind="stable")]
    row_group = group[order]
    row_cell = cells[order]
    wm = w[order]
    total_w = wm.sum()
    ym = y[order] - (
        float(np.dot(wm, y[order])) / total_w if total_w > 0 else 0.0
    )  # centred: no cancellation
    w2 = wm * wm
    quantities: list[np.ndarray | None] = [None, ym, wm, wm * ym, w2, w2 * ym, w2 * ym * ym]
    whole = [np.bincount(row_cell, weights=q, minlength=n_cells)[:, None] for q in quantities]
    residuals = _MarginResiduals(calibration, cells, w)
    overall = residuals.se(whole)
    group_se = np.full(n_groups, np.nan)
    rest_se = np.full(n_groups, np.nan)
    bounds = np.searchsorted(row_group, np.arange(n_groups + 1))
    present = np.flatnonzero(np.diff(bounds) > 0)
    # Groups a chunk at a time: a breakdown by respondent has thousands, and a cells x groups
    # table for all of them at once would not fit in a Lambda's memory.
    for start in range(0, len(present), _GROUP_CHUNK):
        chunk = present[start : start + _GROUP_CHUNK]
        lo, hi = bounds[chunk[0]], bounds[chunk[-1] + 1]
        key = row_cell[lo:hi] * len(chunk) + np.searchsorted(chunk, row_group[lo:hi])
        columns = []
        for q, base in zip(quantities, whole, strict=True):
            sums = np.bincount(key, weights=None if q is None else q[lo:hi], minlength=n_cells * len(chunk))
            sums = sums.reshape(n_cells, len(chunk))
            columns.append(np.hstack([sums, base - sums]))  # each group, then everyone else
        se = residuals.se(columns)
        group_se[chunk] = se[: len(chunk)]
        rest_se[chunk] = se[len(chunk) :]
    return _CalibratedSE(overall=overall, group=group_se, rest=rest_se)


class _MarginResiduals:
    """R's svyrecvar for a raked design, on per-cell sums of a domain's rows (one column each)."""

    def __init__(self, calibration: Calibration, cells: np.ndarray, w: np.ndarray) -> None:
        n_cells = calibration.cells
        self.n = len(w)
        self.cell_n = calibration.cell_count
        self.cell_w = np.bincount(cells, weights=w, minlength=n_cells)
        self.cell_w2 = np.bincount(cells, weights=w * w, minlength=n_cells)
        # Per margin: the cells in category order and where each category starts (a category's
        # sum is one np.add.reduceat: no BLAS threads, which a busy Lambda cannot spare), the
        # respondents of each category (R's ave() divides by them), and each cell's category.
        self.margins = []
        for cats in calibration.margins:
            order = np.argsort(cats, kind="stable")
            starts = np.searchsorted(cats[order], np.arange(int(cats.max()) + 1))
            size = np.add.reduceat(self.cell_n[order], starts)
            self.margins.append((order, starts, size, cats))

    def se(self, sums: list[np.ndarray]) -> np.ndarray:
        """SE per column from the cells' sums of 1, y, w, w y, w^2, w^2 y, w^2 y^2 (y centred)."""
        count, s_y, s_w, s_wy, s_w2, s_w2y, s_w2y2 = sums
        total = s_w.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s_wy.sum(axis=0) / total
            u = np.nan_to_num((s_y - count * mean) / total)  # per cell: sum of u
            wu = np.nan_to_num((s_wy - s_w * mean) / total)  # sum of w u: 0 over the domain, up to rounding
            w2u = np.nan_to_num((s_w2y - s_w2 * mean) / total)  # sum of w^2 u
            w2u2 = (s_w2y2.sum(axis=0) - 2 * mean * s_w2y.sum(axis=0) + mean * mean * s_w2.sum(axis=0)) / (
                total * total
            )
        adjustment = np.zeros_like(u)
        for _ in range(_BACKFIT_PASSES):
            for order, starts, size, cats in self.margins:
                left = u - self.cell_n[:, None] * adjustment  # per cell: sum of the current residual
                adjustment += (np.add.reduceat(left[order], starts, axis=0) / size[:, None])[cats]
        sum_x = wu.sum(axis=0) - self.cell_w @ adjustment
        sum_x2 = w2u2 - 2 * np.einsum("cj,cj->j", adjustment, w2u) + self.cell_w2 @ (adjustment * adjustment)
        n = self.n
        variance = np.maximum(sum_x2 - sum_x * sum_x / n, 0.0) * n / max(n - 1, 1)
        result: np.ndarray = np.where(total > 0, np.sqrt(variance), np.nan)
        return result


@dataclass(frozen=True)
class _Stats:
    """Per group: weighted mean, linearised SE and bases; and the same for everyone else."""

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


def _estimate(
    y: np.ndarray,
    answered: np.ndarray,
    w: np.ndarray,
    group: np.ndarray,
    group_labels: list[str],
    by: str | None,
    category: str | None,
    calibration: Calibration | None,
) -> list[Estimate]:
    """Rows for one measure (one category's indicator, or a number): overall, then by group.

    ``answered`` selects the respondents in the base (the domain, with the measure known). With
    a calibration every raked respondent stays in the variance, as a domain of R's raked design.
    """
    inside = np.flatnonzero(answered)
    yd, wd, gd = y[inside], w[inside], group[inside]
    n_groups = len(group_labels)
    overall = _stats(yd, wd, np.zeros(len(yd), dtype=np.int64), 1)
    by_group = _stats(yd, wd, gd, n_groups) if by is not None else None
    if calibration is not None:
        calibrated = _calibrated_se(y, w, answered, group, n_groups, calibration)
        overall = replace(overall, se=calibrated.overall)
        if by_group is not None:
            by_group = replace(by_group, se=calibrated.group, rest_se=calibrated.rest)
    rows = _rows([ALL], category, overall, compare=False)
    if by_group is not None:
        rows += _rows(group_labels, category, by_group, compare=True)
    return rows


def weighted_shares(
    frame: pd.DataFrame,
    column: str,
    *,
    values: list[str] | None = None,
    by: str | None = None,
    weights: Weights = None,
    domain: np.ndarray | pd.Series | None = None,
    se: SeMethod | None = None,
) -> EstimateTable:
    """Share of each category of ``column`` (or only ``values``), overall and by ``by``.

    Respondents with a missing ``column`` are left out of the base, as survey tables do.

    Parameters
    ----------
    weights
        A :class:`~panelbrain.data.weighting.RakeResult` (its weights and margins: calibrated
        standard errors), a weight column, one weight per row, or None (unweighted).
    domain
        One bool per row: the respondents the table is about (a filter such as "among women").
        Give the whole raked frame and a domain rather than filtered rows: the calibrated
        standard error needs every raked respondent.
    se
        ``"calibrated"`` (the default when ``weights`` is a RakeResult) or ``"fixed"``.

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
    w, calibration, method = _weights(frame, weights, se)
    inside = _domain(frame, domain)
    group, group_labels = _grouping(frame, by)
    if calibration is None:
        # Weights taken as fixed: the design is the domain's respondents alone.
        codes, w, group, inside = codes[inside], w[inside], group[inside], inside[inside]
    answered = inside & (codes >= 0)
    rows: list[Estimate] = []
    for value in chosen:
        y = (codes == labels.index(value)).astype(float)
        rows += _estimate(y, answered, w, group, group_labels, by, value, calibration)
    return EstimateTable(
        kind="share",
        measure=column,
        by=by,
        weighted=weights is not None,
        method=_method_text(method, weights is not None),
        rows=rows,
        se_method=method,
    )


def weighted_means(
    frame: pd.DataFrame,
    column: str,
    *,
    by: str | None = None,
    weights: Weights = None,
    domain: np.ndarray | pd.Series | None = None,
    se: SeMethod | None = None,
) -> EstimateTable:
    """Mean of the numeric ``column``, overall and by ``by``; missing values are left out.

    ``weights``, ``domain`` and ``se`` as for :func:`weighted_shares`.
    """
    if column not in frame.columns:
        raise EstimateError(
            f"measure {column!r} is not a column (columns: {', '.join(map(str, frame.columns))})"
        )
    if not pd.api.types.is_numeric_dtype(frame[column]):
        raise EstimateError(f"{column!r} is not numeric: ask for shares of its values instead of a mean")
    y = frame[column].to_numpy(dtype=float)
    w, calibration, method = _weights(frame, weights, se)
    inside = _domain(frame, domain)
    group, group_labels = _grouping(frame, by)
    if calibration is None:
        y, w, group, inside = y[inside], w[inside], group[inside], inside[inside]
    answered = inside & np.isfinite(y)
    rows = _estimate(np.where(answered, y, 0.0), answered, w, group, group_labels, by, None, calibration)
    return EstimateTable(
        kind="mean",
        measure=column,
        by=by,
        weighted=weights is not None,
        method=_method_text(method, weights is not None),
        rows=rows,
        se_method=method,
    )
