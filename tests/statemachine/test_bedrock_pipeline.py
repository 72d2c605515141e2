"""The bedrock provider inside the real pipeline: stubbed Converse responses drive every step,
and no model failure or unfaithful narration is published as a confident answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panelbrain.agents import providers
from panelbrain.agents.bedrock import STEP_LIMITS
from panelbrain.agents.providers import CircuitBreaker
from panelbrain.aws import clients
from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine
from panelbrain.pricing import cost_usd
from tests.bedrock_stubs import BRAIN, WORKER, RecordingClient, converse_tool_response

MODEL_SQL = (
    "SELECT province AS grp, abortion AS category, count(*) AS n FROM ces11 "
    "GROUP BY grp, category ORDER BY grp, category"
)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingClient]:
    # The agents' handlers read their models from the environment (the template's) and their
    # bedrock-runtime client from the builder, as deployed.
    monkeypatch.setenv("PANELBRAIN_BRAIN_MODEL_ID", BRAIN)
    monkeypatch.setenv("PANELBRAIN_WORKER_MODEL_ID", WORKER)
    monkeypatch.setattr(providers, "BREAKER", CircuitBreaker())
    recording = RecordingClient()
    with clients.override("bedrock-runtime", recording.client):
        yield recording


def test_structured_output_drives_the_pipeline(engine: LocalEngine, recorder: RecordingClient) -> None:
    plan = {
        "intent": "share",
        "measure": "abortion",
        "values": ["Yes"],
        "breakdown": "province",
        "filters": [],
        "weighted": True,
        "confidence": 0.95,
        "reasons": ["plain question"],
    }
    # Sonnet caches the planning prefix (over its 1,024-token minimum) and Haiku the SQL prefix
    # built past its 4,096; the narration prompt is under Sonnet's minimum: no cache point.
    recorder.respond(converse_tool_response("PlanDraft", plan, plain=200, out=80, write=1_300))
    recorder.respond(converse_tool_response("SqlDraft", {"sql": MODEL_SQL}, plain=300, out=50, read=4_800))
    recorder.respond(
        converse_tool_response("Narrative", {"answer": "One in five back a ban."}, plain=900, out=40)
    )
    result = ask(engine, "Who backs an abortion ban, province by province?", provider="bedrock")

    assert (result["status"], result["route"], result["provider"]) == ("answered", "formatter", "bedrock")
    assert result["answer"] == "One in five back a ban."
    assert result["sql"].startswith("SELECT province AS grp, abortion AS category")
    assert [r["modelId"] for r in recorder.requests] == [BRAIN, WORKER, BRAIN]
    assert [r["system"][-1] == {"cachePoint": {"type": "default"}} for r in recorder.requests] == [
        True,
        True,
        False,
    ]
    assert [r["inferenceConfig"]["maxTokens"] for r in recorder.requests] == [
        STEP_LIMITS[step].max_tokens for step in ("plan", "sql", "narrate")
    ]
    assert result["usage"] == {
        BRAIN: {
            "input_tokens": 1_100,
            "output_tokens": 120,
            "cache_read_tokens": 0,
            "cache_write_tokens": 1_300,
        },
        WORKER: {
            "input_tokens": 300,
            "output_tokens": 50,
            "cache_read_tokens": 4_800,
            "cache_write_tokens": 0,
        },
    }
    expected = cost_usd(BRAIN, 1_100, 120, 0, 1_300) + cost_usd(WORKER, 300, 50, 4_800, 0)
    assert result["cost_usd"] == pytest.approx(expected, abs=1e-6)
    groups = {r["group"] for r in result["table"]}
    assert "QC" in groups and len(groups) == 11


def test_refused_model_sql_is_retried_with_the_reason_then_written_offline(
    engine: LocalEngine, recorder: RecordingClient
) -> None:
    plan = {
        "intent": "share",
        "measure": "abortion",
        "values": ["Yes"],
        "breakdown": None,
        "filters": [],
        "weighted": True,
        "confidence": 0.95,
        "reasons": [],
    }
    hostile = {"sql": "SELECT * FROM read_csv('/etc/passwd')"}
    recorder.respond(converse_tool_response("PlanDraft", plan, plain=10, out=10))
    recorder.respond(converse_tool_response("SqlDraft", hostile, plain=10, out=10))
    recorder.respond(converse_tool_response("SqlDraft", hostile, plain=10, out=10))
    recorder.respond(converse_tool_response("Narrative", {"answer": "About a fifth."}, plain=10, out=10))
    result = ask(engine, "Share backing a ban?", provider="bedrock")
    assert result["status"] == "answered"
    assert "refused: table_function" in recorder.requests[2]["messages"][0]["content"][0]["text"]
    assert any("the model's SQL was refused twice" in r for r in result["confidence_reasons"])
    assert result["sql"].startswith("SELECT abortion AS category")


PLAN = {
    "intent": "share",
    "measure": "abortion",
    "values": ["Yes"],
    "breakdown": None,
    "filters": [],
    "weighted": True,
    "confidence": 0.95,
    "reasons": ["plain question"],
}
BAN_SQL = "SELECT abortion AS category, count(*) AS n FROM ces11 GROUP BY category ORDER BY category"


def test_a_narration_with_a_wrong_number_is_not_published(
    engine: LocalEngine, recorder: RecordingClient
) -> None:
    # GIVEN a confident plan and SQL, and a narration that invents a figure and a group
    recorder.respond(converse_tool_response("PlanDraft", PLAN, plain=10, out=10))
    recorder.respond(converse_tool_response("SqlDraft", {"sql": BAN_SQL}, plain=10, out=10))
    invented = "87.3 % of Albertans support a ban (n = 12,345)."
    recorder.respond(converse_tool_response("Narrative", {"answer": invented}, plain=10, out=10))
    # WHEN the question runs through the pipeline
    result = ask(engine, "Share backing a ban?", provider="bedrock")
    # THEN the deterministic text stands, the reason is recorded, and it goes to a person
    assert "87.3" not in result["answer"] and result["answer"].startswith("20.3%")
    assert result["route"] != "formatter" and result["confidence"] < 0.8
    assert any(
        r.startswith("the model's answer text failed the fidelity check (names 'Albertans'")
        for r in result["confidence_reasons"]
    )
    assert any(
        "the answer text fell back to the offline provider, so the confidence is capped at 0.79" in r
        for r in result["confidence_reasons"]
    )


def test_a_model_failure_falls_back_and_is_never_published_as_confident(
    engine: LocalEngine, recorder: RecordingClient
) -> None:
    # GIVEN a plan call Bedrock refuses (model access not granted), a question the offline
    # reader answers with full confidence
    recorder.fail("AccessDeniedException", 403, "You don't have access to the model")
    # WHEN it runs through the pipeline
    result = ask(engine, "share of support a ban", provider="bedrock")
    # THEN the offline provider answered every step, said so, and the answer waits for a person
    assert result["provider"] == "offline (bedrock fallback)"
    assert len(recorder.requests) == 1  # the SQL and the narration did not call Bedrock again
    assert result["confidence"] == pytest.approx(0.79) and result["route"] != "formatter"
    reasons = result["confidence_reasons"]
    assert reasons[0].startswith(f"Bedrock refused the plan call to {BRAIN} (AccessDeniedException")
    assert reasons[-1].startswith(
        "the plan fell back to the offline provider, so the confidence is capped at 0.79"
    )


def test_a_reading_only_the_brain_resolves_is_answered_from_the_cache_once_planned(
    engine: LocalEngine, recorder: RecordingClient
) -> None:
    # GIVEN an answered reading: support for a ban, by province
    first = ask(engine, "What share support a ban on abortion by province?")
    assert (first["status"], first["route"]) == ("answered", "formatter")
    workers = sum(i.function == "SqlWriterFunction" for i in engine.invocations)
    # WHEN a question the offline reader is unsure of ('backs'), so the API cannot key it, is
    # read by the brain to that reading
    plan = {
        "intent": "share",
        "measure": "abortion",
        "values": ["Yes"],
        "breakdown": "province",
        "filters": [],
        "weighted": True,
        "confidence": 0.95,
        "reasons": ["'backs' is support"],
    }
    recorder.respond(converse_tool_response("PlanDraft", plan, plain=200, out=80))
    metric_lines = len(engine.metric_lines)
    again = ask(engine, "Who backs an abortion ban, province by province?", provider="bedrock")
    # THEN the workflow persists the earlier answer once planned: one model call, no worker run
    assert (again["status"], again["route"]) == ("answered", "cache")
    assert [r["modelId"] for r in recorder.requests] == [BRAIN]
    assert sum(i.function == "SqlWriterFunction" for i in engine.invocations) == workers
    assert [t["state"] for t in again["trace"]][-2:] == ["CheckPlan", "PersistCached"]
    assert again["table"] == first["table"]
    # AND BrainPlan counted the hit
    hits = [line for line in engine.metric_lines[metric_lines:] if '"ResultCacheHit"' in line]
    assert any('"route":"BrainPlan"' in line.replace(" ", "") for line in hits), hits
