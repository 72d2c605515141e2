"""The local engine as one region of a two-region deployment (docs/multi-region.md)."""

from __future__ import annotations

import json
import os

from panelbrain.local.ask import api_gateway_event
from panelbrain.local.engine import LocalEngine


def tables(engine: LocalEngine) -> list[str]:
    return list(engine.clients["dynamodb"].list_tables()["TableNames"])


def test_a_single_region_stack_keeps_its_plain_queries_table() -> None:
    with LocalEngine.running() as engine:
        assert "QueriesTable" in tables(engine)
        assert os.environ["QUERIES_TABLE"] == "QueriesTable"


def test_the_primary_creates_the_global_table_as_one_plain_table_in_its_region() -> None:
    # GIVEN the template deployed as the PRIMARY of a pair, in us-west-2 for a change
    with LocalEngine.running(parameters={"FailoverRole": "PRIMARY"}, region="us-west-2") as engine:
        # THEN the query store is the global table, named after the stack, and no plain table
        assert "panelbrain-local-queries" in tables(engine)
        assert "QueriesTable" not in tables(engine)
        # ... every function uses it, and the region's resources are in that region
        assert os.environ["QUERIES_TABLE"] == "panelbrain-local-queries"
        assert ".us-west-2." in os.environ["QUERY_QUEUE_URL"]
        # ... and a question goes in through the API there
        response = engine.api_call(
            api_gateway_event(
                "POST", "/queries", json.dumps({"question": "What share support a ban on abortion?"})
            )
        )
        assert response["statusCode"] in (200, 202), response


def test_the_secondary_uses_the_replica_it_was_given_and_creates_no_table_of_its_own() -> None:
    with LocalEngine.running(
        parameters={"FailoverRole": "SECONDARY", "ReplicaRegion": "us-east-1"},
        region="us-west-2",
        replicas=("QueriesGlobalTable",),
    ) as engine:
        assert "QueriesTable" not in tables(engine)
        assert os.environ["QUERIES_TABLE"] == "panelbrain-local-queries"
        health = engine.api_call(api_gateway_event("GET", "/health"))
        assert health["statusCode"] == 200, health


def test_a_secondary_without_its_replica_is_unhealthy_naming_the_query_store() -> None:
    # GIVEN a SECONDARY whose primary never created the global table (deployed out of order)
    with LocalEngine.running(
        parameters={"FailoverRole": "SECONDARY", "ReplicaRegion": "us-east-1"}, region="us-west-2"
    ) as engine:
        # WHEN Route 53 asks it THEN it fails the check, naming the query store
        health = engine.api_call(api_gateway_event("GET", "/health"))
        assert health["statusCode"] == 503
        assert json.loads(health["body"])["failed"] == ["queries_table"]
