"""The traced functions' X-Ray segments, as Lambda would send them: the handler annotated with
its query id, the DuckDB query as a subsegment, and no question or answer recorded.

Runs in a fresh interpreter with Lambda's environment (Powertools enables its Tracer only inside
Lambda) and an X-Ray emitter that keeps the entities instead of sending them to the daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
QUESTION = "What share support a ban on abortion?"

PROBE = f"""
import json, sys
from types import SimpleNamespace

sent = []


class Keep:
    def send_entity(self, entity):
        sent.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address):
        pass


from panelbrain.functions import plan, sql_writer
from aws_xray_sdk.core import xray_recorder

xray_recorder.configure(emitter=Keep())
context = SimpleNamespace(
    function_name="SqlWriterFunction",
    aws_request_id="r-1",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:SqlWriterFunction",
    memory_limit_in_mb=512,
)
made = plan.handler(
    {{"query_id": "q-0123456789abcdef", "question": {QUESTION!r}, "dataset": "ces11", "provider": "offline"}},
    context,
)
sql_writer.handler({{"plan": made}}, context)
sys.stderr.write("SEGMENTS " + json.dumps(sent) + "\\n")
"""


def subsegments(entity: dict[str, object]) -> list[dict[str, object]]:
    found = [entity]
    for child in entity.get("subsegments", []) or []:  # type: ignore[attr-defined]
        found += subsegments(child)
    return found


def test_traced_functions_record_the_query_and_the_duckdb_query_but_no_question() -> None:
    # GIVEN Lambda's environment with a sampled trace WHEN the plan and SQL writer handle a query
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": "SqlWriterFunction",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("SEGMENTS "))
    sent = json.loads(line.removeprefix("SEGMENTS "))
    recorded = [s for entity in sent for s in subsegments(entity)]
    # THEN each handler is a subsegment annotated with the query id, the DuckDB query is one
    handlers = [s for s in recorded if s["name"] == "## handler"]
    assert len(handlers) == 2
    assert all(s["annotations"]["query_id"] == "q-0123456789abcdef" for s in handlers)  # type: ignore[index]
    assert any(s["name"] == "duckdb query" for s in recorded)
    # ... and the question (nor the plan that repeats it) is nowhere in what X-Ray would keep
    assert QUESTION not in json.dumps(sent)
