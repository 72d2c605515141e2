"""The data plane's answer to a gold reading, computed without the pipeline.

The dataset is loaded and raked to its dictionary's targets here, and the estimate taken from
:mod:`panelbrain.data.estimates` over the rows the gold filters keep. Nothing of the pipeline
(planner, workers, their caches) is used, so a pipeline that reads the question right but
computes the wrong rows, weights or cells shows up as an estimate error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from panelbrain.data.catalog import LoadedDataset, load_dataset, weight_dataset
from panelbrain.data.estimates import weighted_means, weighted_shares
from panelbrain.eval.gold import Reading

Cell = tuple[str, str | None]  # (group, category)


@dataclass
class DataPlane:
    """Datasets and their default weights, loaded once for a whole eval run."""

    _data: dict[str, LoadedDataset] = field(default_factory=dict)
    _weights: dict[str, np.ndarray] = field(default_factory=dict)

    def _load(self, name: str) -> tuple[LoadedDataset, np.ndarray | None]:
        if name not in self._data:
            self._data[name] = data = load_dataset(name)
            if data.spec.weighting is not None:
                self._weights[name] = weight_dataset(data).weights.to_numpy(dtype=float)
        return self._data[name], self._weights.get(name)

    def answer(self, dataset: str, reading: Reading) -> dict[Cell, float]:
        """Every cell of the table the reading asks for: overall ("All") and per breakdown group."""
        data, weights = self._load(dataset)
        frame = data.frame
        keep = np.ones(len(frame), dtype=bool)
        for column, codes in reading.filters:
            keep &= frame[column].astype("string").isin(sorted(codes)).to_numpy(dtype=bool, na_value=False)
        rows = frame[keep]
        w = weights[keep] if reading.weighted and weights is not None else None
        # Only point estimates are compared: the rows subset with their weights (the pipeline
        # takes the domain of the whole raked frame; the estimates agree, the intervals need not).
        if reading.intent == "mean":
            table = weighted_means(rows, reading.measure, by=reading.breakdown, weights=w, se="fixed")
        else:
            # Values in the dictionary's order, as the estimate table lists its categories.
            order = [v.value for v in data.spec.main_table.column(reading.measure).values]
            values = [v for v in order if v in reading.values] if reading.intent == "share" else None
            table = weighted_shares(
                rows, reading.measure, values=values, by=reading.breakdown, weights=w, se="fixed"
            )
        return {(r.group, r.category): r.estimate for r in table.rows}


def estimate_error(reference: dict[Cell, float], table: list[dict[str, object]]) -> float | None:
    """The largest absolute difference between the pipeline's table and the reference, over
    the reference's cells; ``None`` when the two tables do not have the same cells (a cell
    missing or extra: the pipeline answered a different question)."""
    answered: dict[Cell, float] = {}
    for row in table:
        category = row.get("category")
        estimate = row.get("estimate")
        if not isinstance(estimate, int | float):
            return None
        answered[(str(row.get("group")), None if category is None else str(category))] = float(estimate)
    if set(answered) != set(reference):
        return None
    return max((abs(answered[c] - v) for c, v in reference.items()), default=0.0)
