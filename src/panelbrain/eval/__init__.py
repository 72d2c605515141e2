"""``panelbrain eval``: a gold set through the real pipeline, scored against the data plane.

See ``docs/eval.md`` for what it measures and how to run it on Bedrock.
"""

from panelbrain.eval.gold import GoldQuestion, GoldSet, Reading, load_set, set_names
from panelbrain.eval.report import report_lines
from panelbrain.eval.runner import run_eval

__all__ = ["GoldQuestion", "GoldSet", "Reading", "load_set", "report_lines", "run_eval", "set_names"]
