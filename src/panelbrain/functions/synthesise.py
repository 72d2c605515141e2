"""BrainSynthesise function: plan + worker results -> Synthesis."""

from typing import Any

from panelbrain.agents import synthesise
from panelbrain.aws.blobs import resolve
from panelbrain.models import Plan, WorkerResult


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    plan = Plan.model_validate(event["plan"])
    results = [WorkerResult.model_validate(r) for r in event["workers"]]
    results = [r.model_copy(update={"output": resolve(r.output)}) for r in results]
    return synthesise.run(plan, results).model_dump(mode="json")
