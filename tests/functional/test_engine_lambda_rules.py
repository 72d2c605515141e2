"""The local engine holds Lambda's invocation rules that moto does not: the alias a function must
be invoked through, provisioned instances vs on demand at the schedule's time, and the
function's Timeout. Each test shows the engine refusing or reporting what AWS would."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from panelbrain.aws.store import DynamoQueryStore
from panelbrain.local.ask import PIPELINE, ask, new_query_id
from panelbrain.local.engine import LambdaContext, LambdaEnvironmentStoppedError, LocalEngine, find_template
from panelbrain.local.lambda_rules import ExecutionEnvironments
from panelbrain.local.server import LocalServer
from panelbrain.models import TerminalRecord
from tests.agents import AGENTS

CONFIDENT = "What share support a ban on abortion by province?"
ZONE = ZoneInfo("America/Toronto")  # not UTC, so a schedule read in the wrong zone shows
WEDNESDAY_10 = datetime(2026, 12, 2, 10, 0, tzinfo=ZONE)
SATURDAY_03 = datetime(2026, 12, 5, 3, 0, tzinfo=ZONE)


def scheduled_minimum(engine: LocalEngine, function: str, action: str) -> int:
    """The MinCapacity the template's scheduled action ``action`` sets for ``function``."""
    target = engine.template.resources[f"{function}Concurrency"]["Properties"]
    (found,) = (a for a in target["ScheduledActions"] if a["ScheduledActionName"] == action)
    return int(found["ScalableTargetAction"]["MinCapacity"])


# -- the template's schedule and provisioned concurrency ----------------------------------------


@pytest.fixture(scope="class")
def engine() -> Iterator[LocalEngine]:
    with LocalEngine.running(parameters={"ScheduleTimezone": "America/Toronto"}) as running:
        yield running


@pytest.fixture
def fresh(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> LocalEngine:
    """No warm on-demand environments left by earlier tests, no injected faults."""
    monkeypatch.setattr(engine, "environments", ExecutionEnvironments())
    engine.faults.clear()
    engine.clear_table("ResultCacheTable")
    return engine


class TestProvisionedConcurrency:
    def test_capacity_follows_the_schedule_in_its_time_zone(self, engine: LocalEngine) -> None:
        target = engine.provisioned["SqlWriterFunction"]
        assert target.alias == "live"
        expected = {
            WEDNESDAY_10: "business-hours",
            datetime(2026, 12, 2, 20, 0, tzinfo=ZONE): "off-hours",
            SATURDAY_03: "weekends",
            # The weekend minimum holds until Monday's business-hours action fires at 09:00.
            datetime(2026, 12, 7, 8, 59, tzinfo=ZONE): "weekends",
            # 10:00 UTC on a Wednesday is 05:00 in Toronto: still off hours there.
            datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("UTC")): "off-hours",
        }
        for when, action in expected.items():
            assert target.capacity_at(when) == scheduled_minimum(engine, "SqlWriterFunction", action), when

    def test_business_hours_run_is_served_by_provisioned_instances(
        self, fresh: LocalEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN the engine's clock at a weekday 10:00 in the schedule's time zone
        monkeypatch.setattr(fresh, "clock", lambda: WEDNESDAY_10)
        before = len(fresh.invocations)
        # WHEN a question runs the whole pipeline
        result = ask(fresh, CONFIDENT)
        run = fresh.invocations[before:]
        # THEN every agent invocation took a provisioned instance of the live alias
        agents = [i for i in run if i.function in AGENTS]
        assert {i.function for i in agents} == set(AGENTS)
        assert all((i.qualifier, i.served_by, i.cold_start) == ("live", "provisioned", False) for i in agents)
        # and functions without provisioned concurrency (API, poller, persist) ran on demand, cold once
        others = [i for i in run if i.function not in AGENTS]
        assert others and all(i.served_by == "on_demand" for i in others)
        assert result["invocations"] == {
            "provisioned": len(agents),
            "on_demand": len(others),
            "cold_starts": len({i.function for i in others}),
        }
        rows = {row["state"]: row["served_by"] for row in result["trace"]}
        assert rows["BrainPlan"] == rows["SqlWriter"] == rows["Formatter"] == "provisioned"
        assert rows["PersistAnswered"] == "on_demand" and rows["ConfidenceCheck"] is None

    def test_parallel_beyond_the_weekend_minimum_spills_over_on_demand(
        self, fresh: LocalEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN Saturday 03:00, when the weekend action leaves `provisioned` instances
        monkeypatch.setattr(fresh, "clock", lambda: SATURDAY_03)
        provisioned = fresh.provisioned["FormatterFunction"].capacity_at(SATURDAY_03)
        assert provisioned == scheduled_minimum(fresh, "FormatterFunction", "weekends")
        # and a Parallel state whose branches invoke the formatter's alias all at once
        branches = provisioned + 2
        together = threading.Barrier(branches, timeout=30)

        def formatter(event: dict[str, Any], context: Any) -> dict[str, Any]:
            together.wait()  # every branch in flight before any returns
            return {"branch": event["branch"]}

        monkeypatch.setitem(fresh.handlers, "FormatterFunction", formatter)
        alias_arn = fresh.template.alias_arn("FormatterFunction")
        definition = {
            "StartAt": "Fan",
            "States": {
                "Fan": {
                    "Type": "Parallel",
                    "End": True,
                    "Branches": [
                        {
                            "StartAt": f"Format{n}",
                            "States": {
                                f"Format{n}": {
                                    "Type": "Task",
                                    "Resource": alias_arn,
                                    "Parameters": {"branch": n},
                                    "End": True,
                                }
                            },
                        }
                        for n in range(branches)
                    ],
                }
            },
        }
        sfn = fresh.clients["stepfunctions"]
        machine = sfn.create_state_machine(
            name="FanOut", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/FanOut"
        )["stateMachineArn"]

        def run(name: str) -> list[Any]:
            before = len(fresh.invocations)
            execution = sfn.start_execution(stateMachineArn=machine, name=name, input="{}")["executionArn"]
            assert fresh.wait(execution, timeout_s=60)["status"] == "SUCCEEDED"
            return fresh.invocations[before:]

        # WHEN the machine runs
        first = run("first")
        # THEN the provisioned instances serve as many as they can, the rest run on demand, cold
        assert sorted(i.served_by for i in first) == ["on_demand"] * 2 + ["provisioned"] * provisioned
        assert sum(i.cold_start for i in first) == 2
        # and the next run reuses those on-demand environments: on demand again, but warm
        second = run("second")
        assert sorted(i.served_by for i in second) == ["on_demand"] * 2 + ["provisioned"] * provisioned
        assert not any(i.cold_start for i in second)

    def test_handler_is_stopped_at_its_timeout_and_the_catch_path_runs(
        self, fresh: LocalEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN a SQL writer that would run far past its (shortened) timeout
        monkeypatch.setitem(fresh.timeout_overrides, "SqlWriterFunction", 0.2)
        release = threading.Event()

        def stuck(function: str, event: dict[str, Any]) -> None:
            if function == "SqlWriterFunction":
                release.wait(30)

        fresh.faults.append(stuck)
        try:
            # WHEN a question needs it
            result = ask(fresh, CONFIDENT)
        finally:
            release.set()
        # THEN Step Functions saw Lambda's timeout error, and the Catch persisted the failure
        assert (result["status"], result["route"]) == ("failed", "error")
        assert re.fullmatch(
            r"Sandbox\.Timedout: RequestId: \S+ Error: Task timed out after 0\.20 seconds", result["reason"]
        )
        assert "ErrorHandler" in [row["state"] for row in result["trace"]]
        timed_out = [i for i in fresh.invocations if i.function == "SqlWriterFunction"][-1]
        assert timed_out.error == "Sandbox.Timedout"

    def test_a_handler_past_its_timeout_changes_nothing_afterwards(
        self, fresh: LocalEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN a Persist that is still running when its (shortened) timeout ends the invocation
        monkeypatch.setitem(fresh.timeout_overrides, "PersistFunction", 0.2)
        release, finished = threading.Event(), threading.Event()
        refused: list[BaseException] = []
        query_id = new_query_id()

        def late_write(event: dict[str, Any], context: Any) -> None:
            release.wait(30)
            try:
                record = TerminalRecord(query_id=query_id, status="failed", route="error")
                DynamoQueryStore().put_record(record)
            except BaseException as exc:
                refused.append(exc)
            finally:
                finished.set()

        monkeypatch.setitem(fresh.handlers, "PersistFunction", late_write)
        _, error = fresh._run("PersistFunction", "live", {})
        assert error is not None and error["errorType"] == "Sandbox.Timedout"
        # WHEN the handler goes on to write after the timeout
        release.set()
        assert finished.wait(30)
        # THEN the write was not sent (Lambda had stopped the invocation; before, it landed)
        assert [type(e) for e in refused] == [LambdaEnvironmentStoppedError]
        assert DynamoQueryStore().get(query_id) is None

    def test_context_counts_down_from_the_template_timeout(
        self, fresh: LocalEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        seen: list[LambdaContext] = []
        monkeypatch.setitem(fresh.handlers, "PersistFunction", lambda event, context: seen.append(context))
        fresh.call("PersistFunction", {})
        (context,) = seen
        properties = fresh.template.resources["PersistFunction"]["Properties"]
        assert 0 < context.get_remaining_time_in_millis() <= int(properties["Timeout"]) * 1000
        assert context.invoked_function_arn == fresh.template.alias_arn("PersistFunction")
        memory = properties.get("MemorySize", fresh.template.body["Globals"]["Function"]["MemorySize"])
        assert context.memory_limit_in_mb == int(memory)


# -- a template that regressed to the unqualified ARN -------------------------------------------


def regressed_template(folder: Path) -> Path:
    """A copy of the project's template where the state machine gets BrainPlanFunction's
    unqualified ARN and GET /queries/{query_id} integrates ApiFunction unqualified."""
    source = find_template()
    shutil.copytree(source.parent / "statemachines", folder / "statemachines")
    text = source.read_text(encoding="utf-8")
    text, plans = re.subn(
        r"BrainPlanFunctionArn: !Ref BrainPlanFunction\.Alias",
        "BrainPlanFunctionArn: !GetAtt BrainPlanFunction.Arn",
        text,
    )
    head, marker, tail = text.partition("/queries/{query_id}:")
    tail, uris = re.subn(r"!Ref ApiFunction\.Alias|\$\{ApiFunction\.Alias\}", _unqualified, tail, count=1)
    assert plans == 1 and uris == 1, "the template's shape changed: update regressed_template"
    (folder / "template.yaml").write_text(head + marker + tail, encoding="utf-8")
    return folder / "template.yaml"


def _unqualified(match: re.Match[str]) -> str:
    return "!GetAtt ApiFunction.Arn" if match.group(0).startswith("!Ref") else "${ApiFunction.Arn}"


@pytest.fixture(scope="class")
def regressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    with LocalEngine.running(regressed_template(tmp_path_factory.mktemp("regressed"))) as running:
        yield running


class TestUnqualifiedInvocations:
    def test_strict_engine_refuses_a_task_on_the_unqualified_arn(self, regressed: LocalEngine) -> None:
        assert regressed.strict  # the default: every test fails if the template regresses
        result = ask(regressed, CONFIDENT)
        assert (result["status"], result["route"]) == ("failed", "error")
        assert result["reason"].startswith("UnqualifiedInvocationError: BrainPlanFunction was invoked")
        assert "!Ref BrainPlanFunction.Alias" in result["reason"]
        assert not any(i.function == "BrainPlanFunction" for i in regressed.invocations)  # never ran

    def test_lenient_engine_serves_it_on_demand_as_latest_and_reports_it(
        self, regressed: LocalEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(regressed, "strict", False)
        monkeypatch.setattr(regressed, "clock", lambda: WEDNESDAY_10)
        regressed.clear_table("ResultCacheTable")
        reported = len(regressed.violations)
        result = ask(regressed, CONFIDENT)
        assert result["status"] == "answered"  # AWS runs it ...
        plan = [i for i in regressed.invocations if i.function == "BrainPlanFunction"][-1]
        # ... on $LATEST, on demand, while business hours keep instances provisioned on `live`
        assert (plan.qualifier, plan.served_by) == ("$LATEST", "on_demand")
        assert regressed.provisioned["BrainPlanFunction"].capacity_at(WEDNESDAY_10) > 0
        assert {row["state"]: row["served_by"] for row in result["trace"]}["BrainPlan"] == "on_demand"
        assert any(
            "BrainPlanFunction was invoked by its unqualified ARN" in v
            for v in regressed.violations[reported:]
        )

    def test_api_integration_on_the_unqualified_arn_answers_500(self, regressed: LocalEngine) -> None:
        server = LocalServer(regressed, port=0, poll_s=0.02).start()
        try:
            request = urllib.request.Request(server.url + "/queries/q-anything", method="GET")
            with pytest.raises(urllib.error.HTTPError) as answered:
                urllib.request.urlopen(request, timeout=30)
            body = json.loads(answered.value.read())
        finally:
            server.stop()
        assert answered.value.code == 500 and body["message"] == "Internal server error"
        assert body["error"].startswith(
            "QueryApi GET /queries/{query_id}: the integration URI invokes ApiFunction"
        )
        assert "${ApiFunction.Alias}" in body["error"]


def test_a_schedule_range_that_wraps_is_refused_by_name_not_read_as_never() -> None:
    from panelbrain.local.lambda_rules import Cron
    from panelbrain.local.template import TemplateError

    # GIVEN weekday schedules WHEN the engine reads them THEN a forward range allows its days
    assert Cron.parse("cron(0 8 ? * MON-FRI *)").weekdays == frozenset({2, 3, 4, 5, 6})
    # AND one that wraps past Saturday is named, with how to write it (it allowed no day at all)
    with pytest.raises(TemplateError, match=r"FRI-MON runs backwards.*FRI-SAT,SUN-MON"):
        Cron.parse("cron(0 8 ? * FRI-MON *)")


def test_an_execution_running_when_its_engine_stops_writes_nothing_into_the_next_one() -> None:
    # GIVEN an engine stopping while a pipeline runs (its Persist still to come)
    release = threading.Event()

    def slow_synthesis(function: str, event: dict[str, Any]) -> None:
        if function == "BrainSynthesiseFunction":
            release.wait(2)

    query_id = new_query_id()
    with LocalEngine.running() as first:
        first.faults.append(slow_synthesis)
        question = {"question": CONFIDENT, "dataset": "ces11", "provider": "offline", "query_id": query_id}
        first.start(PIPELINE, query_id, {"query": question})
    # WHEN the next engine runs while the old execution would have gone on
    with LocalEngine.running() as second:
        release.set()
        time.sleep(2.5)
        # THEN the old execution wrote neither an answer nor a cached result into it (before: a
        # test found another test's answer in its cold result cache)
        assert DynamoQueryStore().get(query_id) is None
        assert second.clients["dynamodb"].scan(TableName="ResultCacheTable")["Count"] == 0
