"""``sam local invoke`` on the local engine: one function of the template, one event, no Docker.

The function is named by its logical id in ``template.yaml``, as ``sam local invoke`` names it;
the event is a JSON file (the ``events/<handler module>/`` folders hold one or more per function);
an ``--env-vars`` file in SAM's format overrides the function's environment for the invocation.
The invocation goes through the engine's Lambda rules (timeout, error contract, the alias every
event source invokes), so what it prints is what Lambda would have returned.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError
from panelbrain.local.engine import Invocation, LocalEngine
from panelbrain.local.lambda_rules import LambdaFunctionError
from panelbrain.local.template import Template

# SAM's env-vars file: one object of global values, and one object per function.
# https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-sam-cli-using-invoke.html
GLOBAL_KEY = "Parameters"


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke API answers: the function's JSON, or its error payload."""

    function: str
    payload: str  # the response as the function's runtime serialised it ("" on error)
    error: dict[str, str] | None  # {"errorType", "errorMessage"} as Lambda reports a failure
    invocation: Invocation | None  # how the engine served it (None when refused before it ran)


def function_names(template: Template) -> list[str]:
    """The template's functions by logical id, in the template's order."""
    return list(template.of_type("AWS::Serverless::Function"))


def check_function(template: Template, function: str) -> str:
    """``function`` if the template declares it, else a bad-input error listing the valid ids."""
    names = function_names(template)
    if function not in names:
        raise BadInputError(
            f"{function!r} is not a function of {template.path.name}; "
            f"the functions (logical ids) are: {', '.join(names)}"
        )
    return function


def events_folder(template: Template, function: str) -> Path:
    """Where the function's sample events live: ``events/<handler module>/``, beside the template
    (``panelbrain.functions.persist.handler`` -> ``events/persist``)."""
    module = template.handler(function).rsplit(".", 1)[0]
    return template.path.parent / "events" / module.rsplit(".", 1)[-1]


def read_event(path: Path | None) -> Any:
    """The event: the JSON in ``path``, stdin for ``-``, or ``{}`` when none is given (as
    ``sam local invoke`` without ``--event``)."""
    if path is None:
        return {}
    if str(path) == "-":
        text, where = sys.stdin.read(), "the event on stdin"
    else:
        if not path.is_file():
            raise BadInputError(f"event file {str(path)!r} does not exist")
        text, where = path.read_text(encoding="utf-8"), f"event file {str(path)!r}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def read_env_vars(path: Path) -> dict[str, dict[str, Any]]:
    """A SAM env-vars file: ``{"Parameters": {VAR: value}, "<FunctionLogicalId>": {VAR: value}}``."""
    if not path.is_file():
        raise BadInputError(f"--env-vars file {str(path)!r} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"--env-vars file {str(path)!r} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(document, dict):
        raise BadInputError(
            f"--env-vars file {str(path)!r} must hold an object: "
            '{"Parameters": {"VAR": "value"}, "FunctionLogicalId": {"VAR": "value"}}'
        )
    for key, values in document.items():
        if not isinstance(values, dict):
            raise BadInputError(
                f"--env-vars file {str(path)!r}: {key!r} must map variable names to values, "
                f"got {type(values).__name__}"
            )
    return document


def environment_overrides(
    document: dict[str, dict[str, Any]], template: Template, function: str
) -> tuple[dict[str, str], list[str]]:
    """The values an env-vars file gives ``function``, and notes on what it leaves unused.

    As SAM CLI resolves them: the global ``Parameters`` first, the function's own object over
    them (the docs cited above: "the environment variables specified for a specific resource
    take precedence over the global environment variables"), and only for variables the
    template declares for the function, the others being ignored
    (aws-sam-cli ``samcli/local/lambdafn/env_vars.py``, ``EnvironmentVariables.resolve``).
    Values become strings as there: true/false for booleans, "" for null, lists and objects.
    """
    declared = template.environment(function)
    given = {**document.get(GLOBAL_KEY, {}), **document.get(function, {})}
    overrides = {name: _as_string(value) for name, value in given.items() if name in declared}
    notes = [
        f"--env-vars: {name} is not an environment variable of {function} in "
        f"{template.path.name}; ignored, as sam local invoke ignores it"
        for name in given
        if name not in declared
    ]
    functions = set(function_names(template))
    notes += [
        f"--env-vars: {key!r} is neither {GLOBAL_KEY!r} nor a function of {template.path.name}; ignored"
        for key in document
        if key != GLOBAL_KEY and key not in functions
    ]
    return overrides, notes


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)


@contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    """The function's environment with ``overrides`` for one invocation. The engine runs every
    handler in this process, so the values are set process-wide and restored after. They reach
    what a handler reads when it runs, or builds on first use (a store, a client) and then keeps
    for the process's life as a Lambda container would: ``panelbrain local invoke`` is one
    invocation per process. What a handler module reads when imported
    (``PANELBRAIN_METRICS_NAMESPACE``) was read when the engine started, and keeps the
    template's value."""
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def invoke(engine: LocalEngine, function: str, event: Any, overrides: dict[str, str]) -> InvokeResult:
    """Invoke ``function`` once with ``event``, as its event sources do (on the alias SAM's
    AutoPublishAlias creates; the engine refuses the unqualified function, as AWS's permissions
    would for an API integration)."""
    check_function(engine.template, function)
    before = len(engine.invocations)
    error: dict[str, str] | None
    with environment(overrides):
        try:
            response = engine.call(function, event)
        except LambdaFunctionError as exc:
            payload, error = "", {"errorType": exc.error_type, "errorMessage": exc.error_message}
        else:
            payload, error = json.dumps(response), None
    ran = [i for i in engine.invocations[before:] if i.function == function]
    return InvokeResult(function, payload, error, ran[0] if ran else None)
