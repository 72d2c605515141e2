"""Worker function: Plan -> WorkerResult."""

from typing import Any

from panelbrain.agents import weight_applier
from panelbrain.models import Plan


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return weight_applier.run(Plan.model_validate(event["plan"])).model_dump(mode="json")
