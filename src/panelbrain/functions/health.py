"""Health function: GET /health, what Route 53's health check asks of each region.

It answers 200 when this region can take a question end to end (the queue accepts it, the query
store reads, both state machines exist) and 503 naming each dependency that failed, so the
failover record (docs/multi-region.md) moves traffic to the other region when this one cannot
serve. Route 53 gives an HTTPS check 4 s to connect and 2 s more to answer
(https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html):
the checks run side by side with short timeouts and no retries, and the function imports only
boto3 (through the client builder) and the logger: no pydantic models, no event handler.

The route is unauthenticated (Route 53's checkers cannot sign a request): the body says which
dependency failed and the error code, never a resource name or ARN.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from panelbrain.aws import clients
from panelbrain.observe import logged, logger

# Fail fast rather than let the SDK retry past Route 53's answer window: one attempt, short
# connect and read timeouts. A slow dependency is a failed one, for routing purposes.
FAST = {"connect_timeout": 1, "read_timeout": 1, "retries": {"total_max_attempts": 1}}


def _queue() -> None:
    clients.client("sqs", config=FAST).get_queue_attributes(
        QueueUrl=os.environ["QUERY_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"]
    )


def _queries_table() -> None:
    # A data-plane read (a key no query has): what GET /queries/{id} needs, not just the table's
    # description, which the control plane answers.
    clients.client("dynamodb", config=FAST).get_item(
        TableName=os.environ["QUERIES_TABLE"], Key={"query_id": {"S": "health-check"}}
    )


def _state_machines() -> None:
    sfn = clients.client("stepfunctions", config=FAST)
    for arn in _state_machine_arns():
        status = sfn.describe_state_machine(stateMachineArn=arn).get("status", "ACTIVE")
        if status != "ACTIVE":
            raise RuntimeError(f"state machine {status}")


_known: dict[tuple[str, str], tuple[float, list[str]]] = {}
KNOWN_FOR_S = 300.0  # a state machine's ARN changes only when it is replaced


def _state_machine_arns() -> list[str]:
    """The ARNs the stack's parameter lists (template.yaml, HealthCheckStateMachines), read once
    every few minutes rather than on every check (kept per region and parameter: the local
    engine may run another region's stack in the same process)."""
    key = (os.environ.get("AWS_REGION", ""), os.environ["HEALTH_STATE_MACHINES_PARAMETER"])
    now = time.monotonic()
    known = _known.get(key)
    if known is None or now - known[0] > KNOWN_FOR_S:
        value = clients.client("ssm", config=FAST).get_parameter(Name=key[1])["Parameter"]["Value"]
        known = _known[key] = (now, [arn.strip() for arn in str(value).split(",") if arn.strip()])
    return known[1]


# The route in the local server's OpenAPI document (this function has no event handler to
# generate it; template.yaml declares the route for API Gateway).
_REPORT = {
    "type": "object",
    "required": ["status", "failed", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
        "region": {"type": "string"},
        "failed": {"type": "array", "items": {"type": "string"}},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        "elapsed_ms": {"type": "number"},
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    "/health": {
        "get": {
            "summary": "Whether this region can take a question (Route 53's health check)",
            "responses": {
                status: {"description": why, "content": {"application/json": {"schema": _REPORT}}}
                for status, why in (
                    ("200", "the queue, the query store and the state machines answer"),
                    ("503", "a dependency failed: named in failed"),
                )
            },
        }
    }
}

CHECKS: dict[str, Callable[[], None]] = {
    "queue": _queue,
    "queries_table": _queries_table,
    "state_machines": _state_machines,
}


def _outcome(check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as exc:  # any failure of a dependency makes the region unhealthy
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")  # a botocore ClientError
        return f"failed: {code or type(exc).__name__}"
    return "ok"


def check_health() -> dict[str, Any]:
    """Every dependency's outcome ("ok" or "failed: <error code>"), and which failed."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(CHECKS)) as pool:
        outcomes = dict(zip(CHECKS, pool.map(_outcome, CHECKS.values()), strict=True))
    failed = [name for name, outcome in outcomes.items() if outcome != "ok"]
    return {
        "status": "unhealthy" if failed else "healthy",
        "region": os.environ.get("AWS_REGION", ""),
        "failed": failed,
        "checks": outcomes,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }


@logged(query_id=None)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = check_health()
    if report["failed"]:
        logger.warning("unhealthy", extra={"failed": report["failed"], "checks": report["checks"]})
    return {
        "statusCode": 503 if report["failed"] else 200,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(report),
    }
