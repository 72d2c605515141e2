"""Token prices from the dated table beside this module."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from panelbrain.errors import PanelbrainError


class UnpricedModelError(PanelbrainError):
    """A model id matches no row of the price table."""


@cache
def price_table() -> dict[str, Any]:
    text = (resources.files("panelbrain.pricing") / "bedrock_prices.yaml").read_text(encoding="utf-8")
    table: dict[str, Any] = yaml.safe_load(text)
    return table


def cost_usd(
    model_id: str, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
) -> float:
    """USD for one call; ``input_tokens`` excludes cache reads and writes (priced apart).

    Examples
    --------
    >>> round(cost_usd("global.anthropic.claude-sonnet-4-5", 1_000_000, 0, 0, 0), 2)
    3.0
    """
    table = price_table()
    lowered = model_id.lower()
    row = next((m for m in table["models"] if m["match"] in lowered), None)
    if row is None:
        raise UnpricedModelError(
            f"no price for model {model_id!r} in the price table (as of {table['as_of']})"
        )
    premium = 0.0 if lowered.startswith("global.") else float(table["regional_premium"])
    per_million = (
        input_tokens * row["input"]
        + output_tokens * row["output"]
        + cache_read * row["cache_read"]
        + cache_write * row["cache_write"]
    )
    return float(per_million) / 1_000_000 * (1 + premium)
