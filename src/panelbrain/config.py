"""Settings read from the environment (``PANELBRAIN_*``), with defaults that suit a laptop."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        from panelbrain.errors import BadInputError

        raise BadInputError(f"environment variable {name} must be a whole number, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        from panelbrain.errors import BadInputError

        raise BadInputError(f"environment variable {name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class DataSettings:
    """Query engine settings.

    ``cache_dir`` holds the read-only DuckDB files built from the datasets; in Lambda only /tmp
    is writable, which is where the default (the system temp dir) points.
    """

    row_limit: int
    statement_timeout_s: float
    cache_dir: Path
    # Intervals of weighted estimates (PANELBRAIN_SE): "calibrated", R survey's raked design, or
    # "fixed", the weights taken as given (docs/adr/0005-standard-errors.md).
    standard_errors: Literal["calibrated", "fixed"] = "calibrated"

    @classmethod
    def from_env(cls) -> DataSettings:
        default_cache = Path(tempfile.gettempdir()) / "panelbrain-cache"
        return cls(
            row_limit=_int("PANELBRAIN_ROW_LIMIT", 10_000),
            statement_timeout_s=_float("PANELBRAIN_STATEMENT_TIMEOUT_S", 10.0),
            cache_dir=Path(os.environ.get("PANELBRAIN_CACHE_DIR", default_cache)),
            standard_errors=standard_errors(),
        )


def standard_errors() -> Literal["calibrated", "fixed"]:
    """PANELBRAIN_SE: which standard errors weighted estimates use (default calibrated)."""
    return parse_standard_errors(
        os.environ.get("PANELBRAIN_SE", "calibrated"), "environment variable PANELBRAIN_SE"
    )


def parse_standard_errors(value: str, where: str) -> Literal["calibrated", "fixed"]:
    if value == "calibrated":
        return "calibrated"
    if value == "fixed":
        return "fixed"
    from panelbrain.errors import BadInputError

    raise BadInputError(f"{where} must be calibrated or fixed, got {value!r}")
