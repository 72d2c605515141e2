"""A table too large for a state goes through the real pipeline as a claim check.

Step Functions refuses any state input or output over 262,144 bytes (UTF-8) with
States.DataLimitExceeded, which no Catch can handle, so the query would never be persisted.
Here a plan breaks an estimate down by respondent (about 2,300 groups of the synthetic panel,
a table of ~380 KB): every state of both workflows must stay under the limit, and the whole
table must come back through GET /queries/{id} and ``ask``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from panelbrain.agents import bedrock, data_processor, sql_writer, synthesise, weight_applier
from panelbrain.agents.bedrock import BedrockProvider, BedrockSettings, CircuitBreaker, ModelSpec
from panelbrain.functions import api
from panelbrain.local.ask import PIPELINE, REVIEW, api_gateway_event, ask
from panelbrain.local.engine import LocalEngine
from panelbrain.models import Filter, Plan
from tests.bedrock_stubs import BRAIN, WORKER, RecordingClient, converse_tool_response

# https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html and
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_StateExitedEventDetails.html:
# state input and output are at most 262,144 bytes in UTF-8.
STATE_LIMIT = 262_144
FILTERS = [
    {"column": "region", "values": ["North"]},
    {"column": "age_group", "values": ["18-24", "25-34"]},
]
SQL = (
    "SELECT respondent_id AS grp, trusts_media AS category, count(*) AS n FROM panel "
    "WHERE region IN ('North') AND age_group IN ('18-24', '25-34') "
    "GROUP BY grp, category ORDER BY grp, category"
)
QUESTION = "Who trusts the media, respondent by respondent, among young northerners?"


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingClient]:
    recording = RecordingClient()
    settings = BedrockSettings(ModelSpec(BRAIN), ModelSpec(WORKER), "us-east-1")
    monkeypatch.setattr(BedrockProvider, "from_env", classmethod(lambda cls: cls(settings, recording.client)))
    monkeypatch.setattr(bedrock, "BREAKER", CircuitBreaker())
    yield recording


def model_plans_by_respondent(recorder: RecordingClient, confidence: float) -> None:
    """The brain breaks the share down by respondent id, a column with one group per person."""
    draft = {
        "intent": "share",
        "measure": "trusts_media",
        "values": ["yes"],
        "breakdown": "respondent_id",
        "filters": FILTERS,
        "weighted": True,
        "confidence": confidence,
        "reasons": ["one row per respondent, as asked"],
    }
    recorder.respond(converse_tool_response("PlanDraft", draft, plain=100, out=50))
    recorder.respond(converse_tool_response("SqlDraft", {"sql": SQL}, plain=100, out=50))
    recorder.respond(converse_tool_response("Narrative", {"answer": "About half do."}, plain=100, out=20))


def expected_table() -> list[dict[str, Any]]:
    """The table the pipeline should answer with, computed here without any workflow."""
    plan = Plan(
        query_id="q-direct",
        question=QUESTION,
        dataset="synthetic",
        intent="share",
        measure="trusts_media",
        values=["yes"],
        breakdown="respondent_id",
        filters=[Filter.model_validate(f) for f in FILTERS],
        needs={"sql_writer": True, "weight_applier": True, "data_processor": True},
        confidence=1.0,
        provider="offline",
    )
    workers = [sql_writer.run(plan), weight_applier.run(plan), data_processor.run(plan)]
    return synthesise.run(plan, workers).table


def oversized_states(engine: LocalEngine, execution_arn: str) -> list[tuple[str, int]]:
    """Every input, output or task parameter of the execution's history over the limit."""
    found = []
    for event in engine.history(execution_arn):
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            for field in ("input", "output", "parameters"):
                if isinstance(details.get(field), str):
                    size = len(details[field].encode("utf-8"))
                    if size > STATE_LIMIT:
                        found.append((f"{event['type']} {details.get('name', '')}".strip(), size))
    return found


def read_back(query_id: str) -> dict[str, Any]:
    response = api.handler(api_gateway_event("GET", f"/queries/{query_id}"), None)
    assert response["statusCode"] == 200, response["body"]
    record: dict[str, Any] = json.loads(response["body"])
    return record


def test_a_table_larger_than_a_state_is_answered_and_read_back_whole(
    engine: LocalEngine, recorder: RecordingClient
) -> None:
    # GIVEN a plan whose table is larger than a whole Step Functions state
    table = expected_table()
    assert len(json.dumps(table).encode()) > STATE_LIMIT
    model_plans_by_respondent(recorder, confidence=1.0)
    # WHEN it runs through the pipeline
    result = ask(engine, QUESTION, dataset="synthetic", provider="bedrock")
    # THEN no state came near the limit, and the query was answered
    assert oversized_states(engine, engine.execution_arn(PIPELINE, result["query_id"])) == []
    assert (result["status"], result["route"]) == ("answered", "formatter"), result["reason"]
    # AND the whole table reads back, through the API and through ask, with its markdown
    assert result["table"] == table
    record = read_back(result["query_id"])
    assert record["result"]["document"]["table"] == table
    assert record["result"]["markdown"] == result["markdown"]
    assert result["markdown"].count("\n| ") == len(table) + 1  # the header and every row


def test_a_large_table_goes_through_review_whole(engine: LocalEngine, recorder: RecordingClient) -> None:
    # GIVEN the same large table, from a plan unsure enough to go to a reviewer
    table = expected_table()
    model_plans_by_respondent(recorder, confidence=0.9)
    # WHEN a reviewer approves it
    result = ask(engine, QUESTION, dataset="synthetic", provider="bedrock", review="approve")
    # THEN neither workflow's states came near the limit, and the approved answer is whole
    for machine in (PIPELINE, REVIEW):
        assert oversized_states(engine, engine.execution_arn(machine, result["query_id"])) == []
    assert (result["status"], result["route"]) == ("answered", "review_approved")
    assert read_back(result["query_id"])["result"]["document"]["table"] == table
