"""Rim weighting (raking) on collapsed cells, with an optional cap applied inside the loop.

Respondents who share a category on every weighting variable (and, with a cap, the same base
weight) always get the same weight, so iterative proportional fitting runs on the table of those
cells (hundreds of entries) instead of on every row (millions), and rows take their cell's weight
once at the end. Bad targets are hard errors: the traps that other raking tools fall into
silently (rescaling targets that do not sum to 1, ignoring empty categories, weighting missing
values as 1, stopping early) are each refused with a message naming the variable and category.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from panelbrain.errors import ConvergenceError, TargetsError, UnreachableTargetsError

SUM_TOLERANCE = 1e-6
# Above this many possible cells, the cell index is built by sorting rather than counting.
_DENSE_CELL_LIMIT = 1 << 22
# Rows per block when building cells: large enough that the dozen numpy calls per block cost
# little, small enough that a block's int8 and int16 intermediates stay in L2 cache.
_BLOCK_ROWS = 1 << 17
# With a cap, give up when the residual has not halved over this many iterations.
_STALL_WINDOW = 50

Targets = Mapping[str, Mapping[str, float]]
Cap = float | tuple[float, float] | None


class CategoryShare(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: str
    target: float
    unweighted: float
    weighted: float
    respondents: int


class VariableReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    variable: str
    max_abs_error: float
    categories: list[CategoryShare]


class RakeReport(BaseModel):
    """Diagnostics of one raking run; every figure is on weights normalised to mean 1."""

    model_config = ConfigDict(frozen=True)

    n: int
    weighted_total: float
    effective_n: float
    efficiency: float
    design_effect: float
    min_weight: float
    max_weight: float
    iterations: int
    converged: bool
    residual: float
    cells: int
    cap: tuple[float, float] | None
    base_weight: str | None
    variables: list[VariableReport]


@dataclass(frozen=True)
class Calibration:
    """The margins the weights were raked to, kept for calibration-aware standard errors.

    Respondents are grouped in raking cells (one combination of the weighting categories, and,
    under a cap, one base weight); ``margins`` gives, per weighting variable, the category of
    each cell. Every adjustment of a calibration residual is constant within a cell, so
    :mod:`panelbrain.data.estimates` works on these few hundred cells instead of the rows.
    """

    variables: tuple[str, ...]
    margins: tuple[np.ndarray, ...]  # per variable: per cell, index into its target categories
    cell_count: np.ndarray  # per cell: respondents
    _cell_ids: np.ndarray  # per row: cell id in ``_id_space`` (a dense id, or the cell itself)
    _occupied: np.ndarray  # the id of each cell

    @property
    def cells(self) -> int:
        return len(self.cell_count)

    def row_cells(self) -> np.ndarray:
        """Each row's cell (0 .. cells - 1), in the order of the raked frame's rows."""
        if len(self._occupied) and self._occupied[-1] == len(self._occupied) - 1:
            return self._cell_ids  # the ids are already the cells' positions
        position = np.zeros(int(self._occupied[-1]) + 1, dtype=np.intp)
        position[self._occupied] = np.arange(len(self._occupied))
        return position.take(self._cell_ids)


@dataclass(frozen=True)
class RakeResult:
    """Row weights (mean 1, aligned with the input frame's index) and their report.

    ``calibration`` holds the margins raked to, so that estimates from these weights can take
    the calibration into account, as R survey's raked designs do.
    """

    weights: pd.Series
    report: RakeReport
    calibration: Calibration | None = None


@dataclass(frozen=True)
class _Variable:
    name: str
    categories: list[str]  # target categories, in target order
    shares: np.ndarray  # target proportions
    codes: np.ndarray  # per row: code into labels (-1 never occurs: missing values are refused)
    labels: list[str]  # data label of each code


@dataclass(frozen=True)
class _Resolved:
    """A variable after checking its data against its targets, at the level of cells."""

    variable: _Variable
    cell_cats: np.ndarray  # per occupied cell: index into variable.categories
    counts: np.ndarray  # respondents per target category


def _label(value: Any) -> str:
    """Render a data value as a target key: 2.0 -> "2", so numeric codes match JSON keys."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _first_bad_row(frame: pd.DataFrame, mask: np.ndarray) -> str:
    return repr(frame.index[int(np.argmax(mask))])


def _normalise_cap(cap: Cap) -> tuple[float, float] | None:
    if cap is None:
        return None
    lower, upper = (0.0, float(cap)) if isinstance(cap, int | float) else map(float, cap)
    if not (math.isfinite(upper) and upper > 1.0):
        raise TargetsError(f"cap: the upper bound must be a number above 1 (the mean weight), got {upper}")
    if not (math.isfinite(lower) and 0.0 <= lower < 1.0):
        raise TargetsError(f"cap: the lower bound must be at least 0 and below 1, got {lower}")
    return lower, upper


def _check_target_values(variable: str, spec: Any) -> dict[str, float]:
    if not isinstance(spec, Mapping) or not spec:
        raise TargetsError(f"targets for {variable!r} must be a non-empty mapping of category to proportion")
    shares: dict[str, float] = {}
    for category, value in spec.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TargetsError(f"target {variable!r}={category!r} must be a finite number, got {value!r}")
        if value < 0:
            raise TargetsError(f"target {variable!r}={category!r} is negative ({value})")
        shares[str(category)] = float(value)
    total = math.fsum(shares.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise TargetsError(
            f"targets for {variable!r} sum to {total:.10g}, not 1 (tolerance {SUM_TOLERANCE:g}); "
            "give proportions that add up to 1"
        )
    return shares


def _codes_of(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes per row (-1 for missing) and the label of each code."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        # The Categorical's own codes array: a view, where ``.cat.codes`` builds a new Series.
        # ``dtype.categories`` is the same Index as ``.cat.categories``, without building the accessor.
        return column.array.codes, [_label(c) for c in column.dtype.categories.tolist()]
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    return codes, [_label(u) for u in uniques]


def _prepare_variable(frame: pd.DataFrame, name: str, spec: Any) -> _Variable:
    """Row-level checks only (cheap): the rest happens on the cell table."""
    shares = _check_target_values(name, spec)
    if name not in frame.columns:
        raise TargetsError(
            f"unknown variable {name!r}: not a column of the data "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    codes, labels = _codes_of(frame[name])
    if len(codes) and codes.min() < 0:
        missing = codes < 0
        raise TargetsError(
            f"{name!r} has {int(missing.sum()):,} missing value(s) (first at row "
            f"{_first_bad_row(frame, missing)}); impute or drop them before weighting"
        )
    categories = list(shares)
    return _Variable(name, categories, np.array([shares[c] for c in categories]), codes, labels)


def _resolve(variable: _Variable, raw_cell_codes: np.ndarray, cell_count: np.ndarray) -> _Resolved:
    """Match the data's categories to the targets', using counts from the cell table."""
    # A handful of labels: plain Python lists cost less here than a numpy call per step.
    present = np.bincount(raw_cell_codes, weights=cell_count, minlength=len(variable.labels)).tolist()
    position = {c: i for i, c in enumerate(variable.categories)}
    lookup = [-1] * len(variable.labels)
    tally = [0] * len(variable.categories)
    for code, label in enumerate(variable.labels):
        if label in position:
            lookup[code] = position[label]
            tally[lookup[code]] += int(present[code])
        elif present[code]:
            raise TargetsError(
                f"{variable.name!r}={label!r} appears in the data ({int(present[code]):,} "
                "respondents) but has no target; add a target for it or recode it"
            )
    counts = np.array(tally, dtype=np.int64)
    for i, category in enumerate(variable.categories):
        if counts[i] == 0 and variable.shares[i] > 0:
            raise TargetsError(
                f"target category {variable.name!r}={category!r} has no respondents in the data; "
                "drop it or merge it with a neighbouring category"
            )
        if counts[i] > 0 and variable.shares[i] == 0:
            raise TargetsError(
                f"target {variable.name!r}={category!r} is 0 but {int(counts[i]):,} respondents "
                "have it; drop those rows or give it a positive target"
            )
    return _Resolved(variable, np.array(lookup, dtype=np.intp).take(raw_cell_codes), counts)


def _base_weights(frame: pd.DataFrame, base_weight: str | None) -> np.ndarray | None:
    if base_weight is None:
        return None
    if base_weight not in frame.columns:
        raise TargetsError(f"base weight {base_weight!r} is not a column of the data")
    values = pd.to_numeric(frame[base_weight], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        raise TargetsError(
            f"base weight {base_weight!r} must be a positive number on every row; "
            f"{int(bad.sum()):,} row(s) are not (first at row {_first_bad_row(frame, bad)})"
        )
    return values


@dataclass(frozen=True)
class _Cells:
    of_row: np.ndarray  # per row: cell id
    count: np.ndarray  # per occupied cell: respondents
    occupied: np.ndarray  # cell ids that hold respondents (dense) or all (sparse)
    raw_codes: list[np.ndarray]  # per variable: data code of each occupied cell
    n_ids: int  # size of the id space of of_row


def _byte_groups(codes: list[np.ndarray], sizes: list[int]) -> list[list[int]]:
    """Runs of consecutive variables whose joint id still fits in an int8 (below 128).

    Categorical codes are int8 for up to 127 categories, and arithmetic on int8 arrays runs on
    the narrowest SIMD lanes with no casting, so a run such as 5 x 2 x 6 = 60 is combined there
    first, and the wider id type sees one operand per run rather than one per variable.
    """
    groups: list[list[int]] = []
    product = 128  # nothing to extend yet
    for i, (code, size) in enumerate(zip(codes, sizes, strict=True)):
        if code.dtype == np.int8 and product * size < 128:
            groups[-1].append(i)
            product *= size
        else:
            groups.append([i])
            product = size if code.dtype == np.int8 else 128  # a wider code starts no run
    return groups


def _cells(codes: list[np.ndarray], sizes: list[int]) -> _Cells:
    """Collapse rows into cells: the one pass over the rows that raking needs.

    The cell id is the mixed-radix number of the row's codes (Horner's rule), built a block of
    rows at a time so the block stays in the CPU cache: runs of int8 codes are combined in int8,
    the runs in the narrowest integer type that holds every id, and the result is widened once
    into ``of_row`` (intp), the index type that ``np.add.at`` (the count) and ``np.take`` (the
    final gather) read with no conversion. The count is ``np.add.at`` rather than ``np.bincount``:
    bincount converts its input to intp and scans it for its minimum and maximum before counting,
    and with those two extra passes it takes half as long again. These passes are memory-bound
    and most of the work; an occupied cell's codes are read back from its id, so no per-row work
    is repeated.
    """
    total = math.prod(sizes)
    dtype: type[np.signedinteger[Any]] = (
        np.int16 if total < 2**15 else np.int32 if total < 2**31 else np.int64
    )
    n = len(codes[0])
    dense = total <= _DENSE_CELL_LIMIT
    block_rows = min(_BLOCK_ROWS, n)
    # Dense: each block's narrow ids live in one reused buffer. Sparse (too many possible cells
    # to count by id): every row's narrow id is kept for ``np.unique``.
    cell: np.ndarray[Any, np.dtype[np.signedinteger[Any]]] = np.empty(block_rows if dense else n, dtype=dtype)
    of_row = np.empty(n if dense else 0, dtype=np.intp)
    count_all = np.zeros(total if dense else 0, dtype=np.intp)
    groups = _byte_groups(codes, sizes)
    radix = [dtype(math.prod(sizes[i] for i in group)) for group in groups]
    # Per run: its first variable's codes, then (size, codes) of each further variable.
    runs = [(codes[g[0]], [(np.int8(sizes[i]), codes[i]) for i in g[1:]]) for g in groups]
    byte = np.empty(block_rows, dtype=np.int8)
    widened = np.empty(block_rows, dtype=dtype)
    for lo in range(0, n, _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, n)
        block = cell[: hi - lo] if dense else cell[lo:hi]
        for k, (first, rest) in enumerate(runs):
            part = first[lo:hi]
            if rest:  # Horner's rule over the run, in int8 (its ids stay below 128)
                part = np.multiply(part, rest[0][0], out=byte[: hi - lo])
                for j, (_, code) in enumerate(rest):
                    part += code[lo:hi]
                    if j + 1 < len(rest):
                        part *= rest[j + 1][0]
            if k == 0:
                block[:] = part
                continue
            block *= radix[k]
            if part.dtype != dtype:
                # A plain copy then a same-type add: a ufunc given two integer types casts
                # through internal buffers, which costs more than both together.
                wide = widened[: hi - lo]
                wide[:] = part
                part = wide
            block += part
        if dense:
            ids = of_row[lo:hi]
            ids[:] = block
            np.add.at(count_all, ids, 1)
    if dense:
        occupied = np.flatnonzero(count_all)
        raw = [np.asarray(a) for a in np.unravel_index(occupied, sizes)]
        return _Cells(of_row, count_all[occupied].astype(float), occupied, raw, total)
    ids, inverse, count = np.unique(cell, return_inverse=True, return_counts=True)
    raw = [np.asarray(a) for a in np.unravel_index(ids, sizes)]
    of_row = inverse.astype(np.intp, copy=False)
    return _Cells(of_row, count.astype(float), np.arange(len(ids)), raw, len(ids))


def _gather(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[index]`` for an intp ``index`` that is in range (every id was counted into
    ``table``): ``mode="wrap"`` skips the bounds checks and the defensive copy that the default
    mode makes, and is the identity on in-range ids."""
    return table.take(index, mode="wrap")


def rake(
    frame: pd.DataFrame,
    targets: Targets,
    *,
    cap: Cap = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
    base_weight: str | None = None,
) -> RakeResult:
    """Rake ``frame`` to the marginal ``targets`` and return weights with mean 1.

    Parameters
    ----------
    frame
        One row per respondent. Weighting variables may be categorical, string or integer.
    targets
        ``{"variable": {"category": proportion, ...}, ...}``; categories as they appear in the
        data, proportions summing to 1 for each variable.
    cap
        Upper bound on any weight (relative to the mean weight, 1), or ``(lower, upper)``.
        Applied inside the loop, so the result meets the targets *and* the bounds.
    tol
        Largest absolute difference allowed between a weighted share and its target.
    max_iter
        Passes over all variables before giving up with :class:`ConvergenceError`.
    base_weight
        Column of design weights to start from (default: every row 1).

    Raises
    ------
    TargetsError
        Bad targets or data: they name the variable and category.
    ConvergenceError, UnreachableTargetsError
        The targets could not be met (the message gives the residual).

    Examples
    --------
    >>> frame = pd.DataFrame({"sex": ["f", "f", "m", "m", "m"]})
    >>> result = rake(frame, {"sex": {"f": 0.5, "m": 0.5}})
    >>> result.weights.round(4).tolist()
    [1.25, 1.25, 0.8333, 0.8333, 0.8333]
    """
    if not isinstance(targets, Mapping) or not targets:
        raise TargetsError("targets must be a non-empty mapping of variable to category proportions")
    if len(frame) == 0:
        raise TargetsError("the data has no rows to weight")
    bounds = _normalise_cap(cap)
    variables = [_prepare_variable(frame, str(name), spec) for name, spec in targets.items()]
    base = _base_weights(frame, base_weight)
    n = len(frame)

    codes = [v.codes for v in variables]
    sizes = [max(len(v.labels), 1) for v in variables]
    if base is not None and bounds is not None:
        # Under a cap, rows of one cell with different base weights hit the cap differently.
        base_codes, base_values = pd.factorize(base)
        codes.append(base_codes)
        sizes.append(len(base_values))
    cells = _cells(codes, sizes)
    resolved = [_resolve(v, raw, cells.count) for v, raw in zip(variables, cells.raw_codes, strict=False)]
    count = cells.count
    if base is None:
        mass = count.copy()
    else:
        mass_all = np.bincount(cells.of_row, weights=base, minlength=cells.n_ids)
        mass = mass_all[cells.occupied] * (n / mass_all.sum())
    if bounds is not None:
        _check_cap_reachable(resolved, bounds, n)

    cell_cats = [r.cell_cats for r in resolved]
    totals = [v.shares * n for v in variables]
    # All variables' margins in one bincount: category i of variable v sits at offset[v] + i.
    offsets = np.cumsum([0] + [len(t) for t in totals[:-1]])
    stacked = np.concatenate([cats + off for cats, off in zip(cell_cats, offsets, strict=True)])
    stacked_totals = np.concatenate(totals)
    # Which cell each entry of ``stacked`` belongs to: the cells, once per variable.
    stacked_cell = np.tile(np.arange(len(count)), len(variables))
    weight = mass.copy()
    residual = math.inf
    history: list[float] = []
    iterations = 0
    converged = False
    # A few hundred cells: each step is a handful of calls on tiny arrays, so their overhead
    # is the cost, hence the ``take`` method (no Python-level wrapper) over ``np.take``.
    for iterations in range(1, max_iter + 1):
        for cats, total in zip(cell_cats, totals, strict=True):
            current = np.bincount(cats, weights=weight, minlength=len(total))
            weight *= (total / current).take(cats)
        if bounds is not None:
            weight = np.clip(weight / count, bounds[0], bounds[1]) * count
        margins = np.bincount(stacked, weights=weight.take(stacked_cell), minlength=len(stacked_totals))
        residual = float(np.abs(margins - stacked_totals).max()) / n
        if residual <= tol:
            converged = True
            break
        history.append(residual)
        if bounds is not None and len(history) > _STALL_WINDOW and residual > history[-_STALL_WINDOW] / 2:
            raise UnreachableTargetsError(
                f"cap {_cap_text(bounds)} makes the targets unreachable: after {iterations} "
                f"iterations the largest gap between a weighted share and its target is "
                f"{residual:.3g} ({_worst(resolved, weight, n)}); raise the cap or coarsen the "
                "targets",
                residual=residual,
            )
    if not converged:
        raise ConvergenceError(
            f"raking did not converge within {max_iter} iterations: the largest gap between a "
            f"weighted share and its target is {residual:.3g} ({_worst(resolved, weight, n)}); "
            "check for categories that never occur together, or raise max_iter",
            residual=residual,
        )

    adjustment = np.zeros(cells.n_ids)
    adjustment[cells.occupied] = weight / mass
    if base is None:
        # Every row of a cell shares its weight, so the row statistics come from the cells, and
        # the rows are gathered last: the report is built while the small arrays are in cache.
        per_row = weight / count
        square_sum = float(np.dot(count, per_row * per_row))
        extremes = (float(per_row.min()), float(per_row.max()))
    else:
        base_row_weight = _gather(adjustment, cells.of_row) * (base * (n / base.sum()))
        square_sum = float(np.dot(base_row_weight, base_row_weight))
        extremes = (float(base_row_weight.min()), float(base_row_weight.max()))
    report = _report(
        resolved, weight, margins, offsets, n, square_sum, extremes, iterations, residual, bounds, base_weight
    )
    row_weight = _gather(adjustment, cells.of_row) if base is None else base_row_weight
    calibration = Calibration(
        variables=tuple(v.name for v in variables),
        margins=tuple(cell_cats),
        cell_count=count,
        _cell_ids=cells.of_row,
        _occupied=cells.occupied,
    )
    return RakeResult(
        pd.Series(row_weight, index=frame.index, name="weight", copy=False), report, calibration
    )


def _cap_text(bounds: tuple[float, float]) -> str:
    return f"{bounds[1]:g}" if bounds[0] == 0 else f"{bounds[0]:g}..{bounds[1]:g}"


def _check_cap_reachable(resolved: list[_Resolved], bounds: tuple[float, float], n: int) -> None:
    """Refuse at once a target that no weights within the bounds can reach."""
    lower, upper = bounds
    for r in resolved:
        v = r.variable
        reach_high = r.counts * upper / n
        reach_low = r.counts * lower / n
        for i, category in enumerate(v.categories):
            if v.shares[i] > reach_high[i] + SUM_TOLERANCE or v.shares[i] < reach_low[i] - SUM_TOLERANCE:
                gap = max(v.shares[i] - reach_high[i], reach_low[i] - v.shares[i])
                raise UnreachableTargetsError(
                    f"cap {_cap_text(bounds)} makes the targets unreachable: {v.name!r}={category!r} "
                    f"has {int(r.counts[i]):,} of {n:,} respondents and a target of {v.shares[i]:.4g}, "
                    f"which needs weights outside the bounds (residual {gap:.4g}); raise the cap",
                    residual=gap,
                )


def _worst(resolved: list[_Resolved], weight: np.ndarray, n: int) -> str:
    worst, where = -1.0, ""
    for r in resolved:
        v = r.variable
        gaps = np.abs(np.bincount(r.cell_cats, weights=weight, minlength=len(v.shares)) / n - v.shares)
        i = int(np.argmax(gaps))
        if gaps[i] > worst:
            worst, where = float(gaps[i]), f"{v.name!r}={v.categories[i]!r}"
    return where


def _report(
    resolved: list[_Resolved],
    weight: np.ndarray,
    margins: np.ndarray,
    offsets: np.ndarray,
    n: int,
    square_sum: float,
    extremes: tuple[float, float],
    iterations: int,
    residual: float,
    bounds: tuple[float, float] | None,
    base_weight: str | None,
) -> RakeReport:
    """``margins``: the last pass's weighted total of every target category, variable ``v``'s
    from ``offsets[v]``. They were summed from the final weights cell by cell, in the order a
    per-variable bincount would sum them, so they are reused rather than summed again."""
    total = float(weight.sum())
    effective = total * total / square_sum
    reports = []
    for r, margin in zip(resolved, np.split(margins, offsets[1:]), strict=True):
        v = r.variable
        weighted = margin / total
        unweighted = r.counts / n
        columns = (v.shares.tolist(), unweighted.tolist(), weighted.tolist(), r.counts.tolist())
        categories = zip(v.categories, *columns, strict=True)
        reports.append(
            {
                "variable": v.name,
                "max_abs_error": float(np.max(np.abs(weighted - v.shares))),
                "categories": [
                    {"category": c, "target": t, "unweighted": u, "weighted": w, "respondents": k}
                    for c, t, u, w, k in categories
                ],
            }
        )
    # One validation of the whole tree: pydantic-core builds the nested models in one call,
    # where a constructor per category would cross into Python for each of them.
    return RakeReport.model_validate(
        {
            "n": n,
            "weighted_total": total,
            "effective_n": effective,
            "efficiency": effective / n,
            "design_effect": n / effective,
            "min_weight": extremes[0],
            "max_weight": extremes[1],
            "iterations": iterations,
            "converged": True,
            "residual": residual,
            "cells": len(weight),
            "cap": bounds,
            "base_weight": base_weight,
            "variables": reports,
        }
    )
