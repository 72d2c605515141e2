"""Worker function: Plan -> WorkerResult."""

from typing import Any

from panelbrain.agents import data_processor
from panelbrain.aws.blobs import offload
from panelbrain.models import Plan


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = data_processor.run(Plan.model_validate(event["plan"]))
    # A large output (10,000 SQL rows, say) travels as a claim check, never near the 256 KB limit.
    return result.model_copy(update={"output": offload(result.output)}).model_dump(mode="json")
