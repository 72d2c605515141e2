"""The bedrock provider inside the real pipeline: stubbed Converse responses drive every step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panelbrain.agents import bedrock
from panelbrain.agents.bedrock import CircuitBreaker
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
    monkeypatch.setattr(bedrock, "BREAKER", CircuitBreaker())
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
    recorder.respond(converse_tool_response("PlanDraft", plan, plain=200, out=80, write=2_500))
    recorder.respond(converse_tool_response("SqlDraft", {"sql": MODEL_SQL}, plain=300, out=50, read=4_200))
    recorder.respond(
        converse_tool_response("Narrative", {"answer": "One in five back a ban."}, plain=900, out=40)
    )
    result = ask(engine, "Who backs an abortion ban, province by province?", provider="bedrock")

    assert (result["status"], result["route"], result["provider"]) == ("answered", "formatter", "bedrock")
    assert result["answer"] == "One in five back a ban."
    assert result["sql"].startswith("SELECT province AS grp, abortion AS category")
    assert [r["modelId"] for r in recorder.requests] == [BRAIN, WORKER, BRAIN]
    assert all(r["system"][-1] == {"cachePoint": {"type": "default"}} for r in recorder.requests)
    assert result["usage"] == {
        BRAIN: {
            "input_tokens": 1_100,
            "output_tokens": 120,
            "cache_read_tokens": 0,
            "cache_write_tokens": 2_500,
        },
        WORKER: {
            "input_tokens": 300,
            "output_tokens": 50,
            "cache_read_tokens": 4_200,
            "cache_write_tokens": 0,
        },
    }
    expected = cost_usd(BRAIN, 1_100, 120, 0, 2_500) + cost_usd(WORKER, 300, 50, 4_200, 0)
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
