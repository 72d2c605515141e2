"""One error hierarchy for panelbrain.

Every error a user can cause is a :class:`BadInputError` (CLI exit 2, HTTP 4xx); everything
else is an internal failure (exit 1). Lambda reports an exception's class name as its error
type, so Step Functions Retry/Catch rules match on these class names: rename with care.
"""

from __future__ import annotations

from typing import Any


class PanelbrainError(Exception):
    """Base of every error panelbrain raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        """Structured form for ``--json`` output, API responses and LLM retries."""
        return {"error": type(self).__name__, "message": self.message, **self.detail}


class BadInputError(PanelbrainError):
    """The caller gave something we cannot use; nothing was changed."""

    exit_code = 2


class RefusedError(BadInputError):
    """A request refused before it changed anything; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status)
        self.status = status


class DatasetNotFoundError(BadInputError):
    """The named dataset is not in the catalogue."""


class DictionaryError(PanelbrainError):
    """A data dictionary shipped with the package is inconsistent with its data."""


class SqlGuardError(BadInputError):
    """A SQL statement broke a guard rule; ``rule`` names it, ``fragment`` shows where."""

    def __init__(self, rule: str, message: str, fragment: str = "") -> None:
        where = f" (at: {fragment})" if fragment else ""
        super().__init__(f"{rule}: {message}{where}", rule=rule, fragment=fragment)
        self.rule = rule
        self.fragment = fragment


class QueryExecutionError(BadInputError):
    """A guarded statement failed inside the engine (type error, division by zero, ...)."""


class QueryTimeoutError(PanelbrainError):
    """A statement ran past the engine's statement timeout and was interrupted."""


class TargetsError(BadInputError):
    """Weighting targets that cannot be applied to the data as given."""


class WeightingError(BadInputError):
    """Raking could not meet the targets (no convergence, or a cap makes them unreachable)."""


class ConvergenceError(WeightingError):
    """Raking did not converge within ``max_iter`` iterations."""


class UnreachableTargetsError(WeightingError):
    """The weight cap makes the targets impossible to meet; ``residual`` says by how much."""


class EstimateError(BadInputError):
    """An estimate was requested on a column or value that does not support it."""


class TransientError(PanelbrainError):
    """A failure worth retrying (a dependency hiccup); state machines retry on this name."""


class MalformedStateError(PanelbrainError):
    """A step's input lacks what it needs (a bug or a bad model answer upstream): a system
    fault, recorded as failed, never as a verdict on the answer. Not retried: the same input
    fails the same way."""


class ReviewRejectedError(PanelbrainError):
    """A reviewer rejected an answer; the review workflow catches this name."""


class PayloadTooLargeError(PanelbrainError):
    """A payload would not fit a workflow state or a DynamoDB item even with its bulk in S3;
    raised before Step Functions would fail the execution uncatchably (States.DataLimitExceeded),
    so the workflow's Catch records why."""
