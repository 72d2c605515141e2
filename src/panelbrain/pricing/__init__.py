"""Token prices from the dated table beside this module."""

from __future__ import annotations

import os
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
    priced = base_model(model_id)
    lowered = priced.lower()
    row = next((m for m in table["models"] if m["match"] in lowered), None)
    if row is None:
        hint = (
            f"; {model_id!r} is an ARN: set PANELBRAIN_BRAIN_BASE_MODEL_ID or "
            "PANELBRAIN_WORKER_BASE_MODEL_ID to the model it serves"
            if model_id.startswith("arn:") and priced == model_id
            else ""
        )
        raise UnpricedModelError(
            f"no price for model {priced!r} in the price table (as of {table['as_of']}){hint}"
        )
    premium = 0.0 if lowered.startswith("global.") else float(table["regional_premium"])
    per_million = (
        input_tokens * row["input"]
        + output_tokens * row["output"]
        + cache_read * row["cache_read"]
        + cache_write * row["cache_write"]
    )
    return float(per_million) / 1_000_000 * (1 + premium)


def base_model(model_id: str) -> str:
    """The model to price ``model_id`` by. An ARN (provisioned throughput, an application
    inference profile) names no model family; the role whose model it is names its base model
    in ``PANELBRAIN_<ROLE>_BASE_MODEL_ID`` (template.yaml sets both). Provisioned throughput is
    billed per model unit and hour, not per token: its token price is the on-demand equivalent
    (https://aws.amazon.com/bedrock/pricing/), what the same calls would cost without it.

    Examples
    --------
    >>> base_model("us.anthropic.claude-haiku-4-5-20251001-v1:0")
    'us.anthropic.claude-haiku-4-5-20251001-v1:0'
    """
    if not model_id.startswith("arn:"):
        return model_id
    for role in ("BRAIN", "WORKER"):
        if os.environ.get(f"PANELBRAIN_{role}_MODEL_ID") == model_id:
            return os.environ.get(f"PANELBRAIN_{role}_BASE_MODEL_ID") or model_id
    return model_id
