"""The failover drill's stand-in for Route 53's failover pair (docs/multi-region.md)."""

from __future__ import annotations

import re

import pytest

from panelbrain.errors import BadInputError
from panelbrain.ops.failover import DrillSettings, FailoverRecord


def test_the_primary_answers_until_it_fails_threshold_probes_in_a_row() -> None:
    # GIVEN a failover pair with a failure threshold of 3
    record = FailoverRecord("us-east-1", "us-west-2", threshold=3)
    # WHEN the primary fails twice, passes once, then fails three times
    outcomes = [record.answer()]
    for ok in (False, False, True, False, False):
        record.observe("us-east-1", ok)
        outcomes.append(record.answer())
    # THEN a broken streak resets the count: the primary still answers
    assert set(outcomes) == {"us-east-1"}
    # ... and the third failure in a row moves the answer to the secondary
    assert record.observe("us-east-1", False) is True
    assert record.answer() == "us-west-2"


def test_the_primary_answers_again_after_threshold_passes() -> None:
    record = FailoverRecord("us-east-1", "us-west-2", threshold=2)
    for _ in range(2):
        record.observe("us-east-1", False)
    assert record.answer() == "us-west-2"
    record.observe("us-east-1", True)
    assert record.answer() == "us-west-2"  # one pass is not enough
    record.observe("us-east-1", True)
    assert record.answer() == "us-east-1"


def test_with_both_regions_unhealthy_the_primary_answers() -> None:
    # Route 53 answers as if all were healthy when every record of the pair is unhealthy.
    record = FailoverRecord("us-east-1", "us-west-2", threshold=1)
    record.observe("us-east-1", False)
    record.observe("us-west-2", False)
    assert record.answer() == "us-east-1"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (DrillSettings(queries=5, fail_after=10), "must cover fail_after + outage_queries"),
        (DrillSettings(rate_per_s=0), "rate_per_s must be above 0"),
        (DrillSettings(secondary_region="us-east-1"), "the two regions must differ"),
    ],
)
def test_drill_settings_that_cannot_drill_are_refused_naming_why(
    settings: DrillSettings, problem: str
) -> None:
    with pytest.raises(BadInputError, match=re.escape(problem)):
        settings.check()
