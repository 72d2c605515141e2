"""Record a run's Bedrock responses, and replay them so a Bedrock run can be re-scored offline.

Both sit at the one place panelbrain gets its ``bedrock-runtime`` client
(:func:`panelbrain.aws.clients.override`), on botocore's own events, the hooks botocore's
``Stubber`` uses: whichever code builds the request (langchain-aws, the provider), the
recording sees the exact API parameters and the parsed response.

- ``before-parameter-build`` gives each call a key: a hash of its operation and parameters
  (model id, system prompt, messages, tool schema...).
- recording: ``after-call`` (emitted once per API call, after botocore's retries) stores the
  key, HTTP status and parsed response as one JSON line.
- replaying: ``before-call`` returns the stored response for the key, so no request is sent
  (botocore's client takes the first handler response of ``before-call`` as the HTTP response
  and parsed body, as ``botocore.stub.Stubber`` does; events:
  https://docs.aws.amazon.com/botocore/latest/topics/events.html). A stored error
  replays as the same ``ClientError``. A request never recorded (the prompts or model ids changed
  since) is refused with :class:`ReplayMissError`, never answered with something else.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError, PanelbrainError

RESPONSES = "responses.jsonl"
_KEY = "panelbrain_eval_request_key"


class ReplayMissError(PanelbrainError):
    """A model call during ``--replay`` that the recording does not hold."""


def request_key(operation: str, params: dict[str, Any]) -> str:
    canonical = json.dumps({"operation": operation, "params": params}, sort_keys=True, default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _keep_key(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    context[_KEY] = request_key(model.name, params)


class _Hooks:
    """Keys each Bedrock request, then hands it to ``_handle`` at the ``_event`` of its call."""

    _event: str
    _handle: Callable[..., Any]

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.bedrock-runtime", _keep_key)
        client.meta.events.register(f"{self._event}.bedrock-runtime", self._handle)
        return client

    def detach(self, client: Any) -> None:
        """Unhook: the builder keeps the client for the process, and a later run reuses it."""
        client.meta.events.unregister("before-parameter-build.bedrock-runtime", _keep_key)
        client.meta.events.unregister(f"{self._event}.bedrock-runtime", self._handle)


class Recorder(_Hooks):
    """Appends every response of the clients it is attached to to ``DIR/responses.jsonl``."""

    _event = "after-call"

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / RESPONSES
        self.path.write_text("", encoding="utf-8")  # one recording per run
        self.count = 0
        self._lock = threading.Lock()

    def _handle(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        line = {
            "key": context.get(_KEY),
            "operation": model.name,
            "status": int(http_response.status_code),
            "response": parsed,
        }
        text = json.dumps(line, default=str) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(text)
            self.count += 1


class Player(_Hooks):
    """Answers every call of the clients it is attached to from a recording."""

    _event = "before-call"

    def __init__(self, directory: Path) -> None:
        path = directory / RESPONSES
        if not path.is_file():
            raise BadInputError(
                f"--replay {directory}: no {RESPONSES} there; record one first with "
                f"`panelbrain eval --provider bedrock --record {directory}`"
            )
        self.responses: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                self.responses[str(line["key"])].append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                raise BadInputError(f"--replay {path}: line {number} is not a recorded response") from None
        self.served: dict[str, int] = defaultdict(int)
        self.misses = 0
        self.replayed = 0
        self._lock = threading.Lock()

    def _handle(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse

        key = str(context.get(_KEY))
        with self._lock:
            recorded = self.responses.get(key)
            if not recorded:
                self.misses += 1
                raise ReplayMissError(
                    f"--replay: no recorded response for this {model.name} request (its prompt, "
                    "model id or input differs from the recorded run's); record the run again"
                )
            # The same request asked again gets the next recorded answer, the last one once
            # the recording runs out (a call repeated more often than it was recorded).
            line = recorded[min(self.served[key], len(recorded) - 1)]
            self.served[key] += 1
            self.replayed += 1
        return AWSResponse("https://bedrock-runtime.replay", line["status"], {}, None), line["response"]


def replay_client(region: str = "us-east-1") -> Any:
    """A new real ``bedrock-runtime`` client from the one builder, for one :class:`Player` to
    answer: it never sends, so it never signs and needs no credentials. Its own user-agent
    suffix keys it apart from the provider's clients and from other replays, so no other
    caller meets the replay's hooks."""
    import uuid

    from panelbrain.aws import clients

    tag = f"panelbrain-eval-replay/{uuid.uuid4().hex[:12]}"
    return clients.client("bedrock-runtime", region=region, config={"user_agent_extra": tag})
