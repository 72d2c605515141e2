"""Which answers a person sees before they go out: the routing rules, from configuration.

- confidence at or above ``answer``: answered, unless a rule below sends it to review;
- confidence at or above ``review``: reviewed;
- below ``review``: not answered (the low-confidence path);
- always reviewed (when otherwise answered): the smallest weighted base shown is below
  ``min_weighted_base``, or the weighting efficiency is below ``min_efficiency``;
- a sample of ``sample_rate`` of the confident answers goes to review as a quality check. The
  draw is a hash of the query id, so a repeated delivery of the same query routes the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Route = Literal["answer", "review", "low_confidence"]


class ReviewPolicy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    answer: float = Field(default=0.8, ge=0.0, le=1.0)
    review: float = Field(default=0.5, ge=0.0, le=1.0)
    min_weighted_base: float = Field(default=0.0, ge=0.0)
    min_efficiency: float = Field(default=0.0, ge=0.0, le=1.0)
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    def route(
        self, query_id: str, confidence: float, table: list[dict[str, Any]], weighting: dict[str, Any] | None
    ) -> tuple[Route, list[str]]:
        """The route and, for a review, every reason it goes there."""
        if confidence < self.review:
            return "low_confidence", []
        reasons: list[str] = []
        if confidence < self.answer:
            reasons.append(
                f"confidence {confidence:.2f} is between the review threshold {self.review:g} "
                f"and the answer threshold {self.answer:g}"
            )
        bases = [float(r["weighted_base"]) for r in table if r.get("weighted_base") is not None]
        if bases and min(bases) < self.min_weighted_base:
            reasons.append(
                f"the smallest weighted base shown is {min(bases):,.1f}, below the review rule's "
                f"{self.min_weighted_base:g}"
            )
        efficiency = (weighting or {}).get("efficiency")
        if efficiency is not None and float(efficiency) < self.min_efficiency:
            reasons.append(
                f"weighting efficiency {float(efficiency):.0%} is below the review rule's "
                f"{self.min_efficiency:.0%}"
            )
        if not reasons and _draw(query_id) < self.sample_rate:
            reasons.append(f"sampled for a quality check ({self.sample_rate:.0%} of confident answers are)")
        return ("review" if reasons else "answer"), reasons


def _draw(query_id: str) -> float:
    """A number in [0, 1) fixed by the query id."""
    digest = hashlib.sha256(query_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
