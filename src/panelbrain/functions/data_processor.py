"""Worker function: Plan -> WorkerResult."""

from typing import Any

from panelbrain.agents import data_processor
from panelbrain.models import Plan


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return data_processor.run(Plan.model_validate(event["plan"])).model_dump(mode="json")
