"""`panelbrain ops failover-drill`: two local engines as two regions, the primary failed mid-load."""

from __future__ import annotations

import pytest

from panelbrain import cli
from panelbrain.ops.failover import DrillSettings, run_drill
from panelbrain.ops.operate import FINISHED


def test_a_failover_drill_loses_no_query_and_both_regions_answer() -> None:
    # GIVEN two regions (PRIMARY with the global table, SECONDARY with its replica) and 20
    # questions, the primary failing right after accepting its 6th and returning once the
    # secondary has accepted 6
    settings = DrillSettings(queries=20, fail_after=6, outage_queries=6)
    # WHEN the drill runs
    report = run_drill(settings)
    primary, secondary = settings.primary_region, settings.secondary_region
    # THEN every question got a query id, and each region accepted and finished some of them
    assert report.submitted == 20
    for region in (primary, secondary):
        assert report.accepted_by[region] > 0, report.accepted_by
        finished = sum(n for status, n in report.answered_by[region].items() if status in FINISHED)
        assert finished == report.accepted_by[region], report.answered_by
    # ... Route 53 moved the load: the secondary took questions only after the failure
    assert report.failover_s is not None
    # ... the question the primary accepted as it failed waited in its queue and was answered by
    # its own poller when it returned
    assert report.held_in_queue_at_failure >= 1
    assert report.drained_after_return == report.unfinished_at_return >= 1
    # ... and none is lost: every id is terminal in both regions' stores and reads back through
    # either region's API (the global table)
    assert report.lost == []
    assert report.not_replicated == {primary: 0, secondary: 0}
    assert report.readable_in == {primary: 20, secondary: 20}
    assert report.passed


def test_a_drill_that_cannot_fail_over_is_refused_before_any_engine_starts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN fewer questions than the primary takes before failing plus the secondary's share
    monkeypatch.setattr("sys.argv", ["panelbrain", "ops", "failover-drill", "--queries", "5"])
    # WHEN the drill is asked for THEN it exits 2 with one line saying why
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: failover drill: queries (5) must cover fail_after + outage_queries")
