"""panelbrain: plain-English questions over weighted survey data.

The public API loads lazily: importing :mod:`panelbrain` (as every Lambda handler does) costs
nothing; numpy and pandas load only when :func:`rake` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["RakeReport", "RakeResult", "rake"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from panelbrain.data.weighting import RakeReport, RakeResult, rake


def __getattr__(name: str) -> Any:
    if name in __all__:
        from panelbrain.data import weighting

        return getattr(weighting, name)
    raise AttributeError(f"module 'panelbrain' has no attribute {name!r}")
