"""GET /health: what Route 53's health check asks each region (docs/multi-region.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from panelbrain.local.ask import api_gateway_event
from panelbrain.local.engine import LocalEngine


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    with LocalEngine.running() as running:
        yield running


def get_health(engine: LocalEngine) -> tuple[int, dict[str, object]]:
    response = engine.api_call(api_gateway_event("GET", "/health"))
    return int(response["statusCode"]), json.loads(response["body"])


def test_a_region_whose_dependencies_answer_is_healthy(engine: LocalEngine) -> None:
    # GIVEN a deployed region WHEN Route 53 asks GET /health through the API
    status, body = get_health(engine)
    # THEN it answers 200 and every dependency is checked
    assert status == 200, body
    assert body["status"] == "healthy"
    assert body["checks"] == {"queue": "ok", "queries_table": "ok", "state_machines": "ok"}


def test_a_lost_queue_makes_the_region_unhealthy_naming_the_queue(engine: LocalEngine) -> None:
    # GIVEN a region whose query queue is gone
    engine.clients["sqs"].delete_queue(QueueUrl=engine.template.resolve({"Ref": "QueryQueue"}))
    # WHEN Route 53 asks GET /health
    status, body = get_health(engine)
    # THEN it answers 503 (a failed check for Route 53) and names the queue, and only the queue
    assert status == 503, body
    assert body["failed"] == ["queue"]
    assert str(body["checks"]["queue"]).startswith("failed: ")  # type: ignore[index]


def test_a_lost_state_machine_makes_the_region_unhealthy(engine: LocalEngine) -> None:
    engine.clients["stepfunctions"].delete_state_machine(
        stateMachineArn=engine.state_machine_arn("HumanReviewStateMachine")
    )
    status, body = get_health(engine)
    assert (status, body["failed"]) == (503, ["state_machines"])
