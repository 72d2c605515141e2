"""Every file in events/ is a valid input for its function (`sam local invoke -e` uses them):
each is invoked here, in a running local engine, through the handler the template names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panelbrain.local.engine import LambdaContext, LocalEngine

EVENTS = Path(__file__).parent.parent.parent / "events"
CASES = sorted(EVENTS.glob("*/*.json"))


def function_for(engine: LocalEngine, folder: str) -> str:
    for name in engine.handlers:
        if engine.template.handler(name) == f"panelbrain.functions.{folder}.handler":
            return name
    raise AssertionError(f"events/{folder} matches no function in template.yaml")


def test_every_function_has_an_event_file(engine: LocalEngine) -> None:
    folders = {path.parent.name for path in CASES}
    handlers = {engine.template.handler(name).split(".")[2] for name in engine.handlers}
    assert handlers <= folders, f"functions without events/: {sorted(handlers - folders)}"


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_event_file_is_accepted(engine: LocalEngine, path: Path) -> None:
    function = function_for(engine, path.parent.name)
    event = json.loads(path.read_text())
    context = LambdaContext(function, "test-request", engine.template.function_arn(function))
    response = engine.handlers[function](event, context)
    json.dumps(response)  # what the function returns must travel as JSON
    if path.parent.name in ("api", "review_api"):
        assert response["statusCode"] < 500
    if path.parent.name == "poller":
        assert "batchItemFailures" in response
    if path.parent.name == "pre_traffic_check":
        assert response["status"] == "Succeeded", response
