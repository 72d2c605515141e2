"""The pre-traffic check of a deploy: one known question through the versions being deployed.

CodeDeploy publishes a function's new version, then, before its alias sends the version any
traffic, invokes the deployment group's PreTraffic hook and waits for the hook to report
``Succeeded`` or ``Failed`` through ``PutLifecycleEventHookExecutionStatus``; ``Failed`` stops the
deploy and rolls it back. The hook's event carries only the deployment's id and the hook run's id,
not the version under test, so the template hands the hook each agent's new version ARN
(``!Ref <Fn>.Version``) in its environment.
https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/automating-updates-to-serverless-apps.html
https://github.com/aws/serverless-application-model/blob/develop/docs/safe_lambda_deployments.rst
https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_PutLifecycleEventHookExecutionStatus.html

:func:`run_question` walks the pipeline's agent path as the QueryPipeline state machine does
(BrainPlan, the workers the plan asks for, BrainSynthesise, Formatter), invoking each agent's new
version with the payload its Task state gives it, and checks every answer's shape. It writes
no query record and starts no review: the versions are invoked directly, never through the
workflow (a worker may still leave a claim check in the payload bucket under the check's query id).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from panelbrain.errors import PanelbrainError

# The question every deploy asks: the README's, on the vendored demo dataset, so the offline
# provider answers it with a table as surely as a model does.
QUESTION = "What share support a ban on abortion by province?"
DATASET = "ces11"
WORKERS = ("sql_writer", "weight_applier", "data_processor")
ROUTES = ("answer", "review", "low_confidence")
# Environment variable naming each agent's version under test (set from !Ref <Fn>.Version).
VERSION_VARIABLES = {
    "plan": "PRE_TRAFFIC_PLAN_VERSION",
    "sql_writer": "PRE_TRAFFIC_SQL_WRITER_VERSION",
    "weight_applier": "PRE_TRAFFIC_WEIGHT_APPLIER_VERSION",
    "data_processor": "PRE_TRAFFIC_DATA_PROCESSOR_VERSION",
    "synthesise": "PRE_TRAFFIC_SYNTHESISE_VERSION",
    "formatter": "PRE_TRAFFIC_FORMATTER_VERSION",
}

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


class PreTrafficCheckError(PanelbrainError):
    """The versions under test did not answer the known question with the shape the pipeline needs."""


@dataclass(frozen=True)
class Outcome:
    """What the check saw: each agent invoked (by its version ARN) and the route and confidence."""

    invoked: tuple[str, ...]
    route: str
    confidence: float


def versions_from(environment: Mapping[str, str]) -> dict[str, str]:
    """Each agent's version ARN from the hook's environment; a missing one is a template error."""
    missing = [name for name in VERSION_VARIABLES.values() if not environment.get(name)]
    if missing:
        raise PreTrafficCheckError(f"the hook's environment lacks {', '.join(missing)} (template.yaml)")
    return {agent: environment[name] for agent, name in VERSION_VARIABLES.items()}


def query_id_for(deployment_id: str) -> str:
    """A query id of the query id's alphabet, unique per deployment (claim-check keys use it)."""
    return ("pre-traffic-" + re.sub(r"[^A-Za-z0-9_-]", "-", deployment_id))[:64]


def run_question(invoke: Invoke, versions: Mapping[str, str], *, query_id: str, provider: str) -> Outcome:
    """Ask :data:`QUESTION` of the versions in ``versions`` as the pipeline would; raise
    :class:`PreTrafficCheckError` at the first answer of the wrong shape."""
    invoked: list[str] = []

    def call(agent: str, payload: dict[str, Any]) -> dict[str, Any]:
        invoked.append(versions[agent])
        return invoke(versions[agent], payload)

    # BrainPlan's Task state: the query's fields (QueryPipeline's Parameters).
    plan = call(
        "plan",
        {
            "query_id": query_id,
            "question": QUESTION,
            "dataset": DATASET,
            "provider": provider,
            "latency_scale": 0,
        },
    )
    needs = plan.get("needs")
    if not isinstance(needs, dict) or not all(isinstance(needs.get(w), bool) for w in WORKERS):
        raise PreTrafficCheckError(
            f"BrainPlan returned no boolean needs for {', '.join(WORKERS)}: {_brief(plan)}"
        )
    if not any(needs[w] for w in WORKERS):
        raise PreTrafficCheckError("BrainPlan asked for no worker: the known question needs a table")
    # The Workers Parallel state: one result per branch, in branch order, skipped ones marked.
    workers = [call(w, {"plan": plan}) if needs[w] else {"worker": w, "skipped": True} for w in WORKERS]
    # LoadSettings' defaults: the check is of shapes, not of this stage's thresholds.
    settings = {"answer": 0.8, "review": 0.5, "min_weighted_base": 0, "min_efficiency": 0, "sample_rate": 0}
    synthesis = call("synthesise", {"plan": plan, "workers": workers, "settings": settings})
    route, confidence = synthesis.get("route"), synthesis.get("confidence")
    if route not in ROUTES or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise PreTrafficCheckError(
            f"BrainSynthesise returned route {route!r} and confidence {confidence!r}: {_brief(synthesis)}"
        )
    if not synthesis.get("table"):
        raise PreTrafficCheckError(
            f"BrainSynthesise returned no table for the known question: {_brief(synthesis)}"
        )
    # Every route may end at the Formatter (an approved review does), so it is always asked.
    formatted = call("formatter", {"synthesis": synthesis, "latency_scale": 0})
    if not formatted.get("markdown"):
        raise PreTrafficCheckError(f"Formatter returned no markdown: {_brief(formatted)}")
    return Outcome(tuple(invoked), str(route), float(confidence))


# The errors the pipeline's Task states retry (a throttle, a model or query timeout): the check
# retries them as the workflow would, so a passing throttle does not fail a deploy.
TRANSIENT_ERRORS = frozenset(
    {"TransientError", "ThrottlingException", "ModelThrottledError", "QueryTimeoutError"}
)


def lambda_invoker(lambda_client: Any, *, attempts: int = 2, backoff_s: float = 2.0) -> Invoke:
    """Invoke a version synchronously; Lambda's function error becomes a :class:`PreTrafficCheckError`
    naming the version and the error type (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html),
    after up to ``attempts`` tries for an error in :data:`TRANSIENT_ERRORS`."""

    def invoke(function: str, payload: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(1, attempts + 1):
            response = lambda_client.invoke(
                FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
            )
            body = json.loads(response["Payload"].read() or b"null")
            if not response.get("FunctionError"):
                break
            error = body if isinstance(body, dict) else {}
            kind = str(error.get("errorType", "Unhandled"))
            if kind not in TRANSIENT_ERRORS or attempt == attempts:
                raise PreTrafficCheckError(f"{function} failed: {kind}: {error.get('errorMessage', body)}")
            time.sleep(backoff_s * 2 ** (attempt - 1))
        if not isinstance(body, dict):
            raise PreTrafficCheckError(f"{function} returned {_brief(body)}, not a JSON object")
        return body

    return invoke


def report(codedeploy: Any, event: Mapping[str, Any], succeeded: bool) -> None:
    """Tell CodeDeploy the hook's verdict; without it the deployment waits for the hook to time out."""
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status="Succeeded" if succeeded else "Failed",
    )


def _brief(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
