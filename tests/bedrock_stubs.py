"""Stubbed bedrock-runtime Converse responses (botocore's Stubber validates both directions
against the service model), and a recorder of the requests langchain-aws sends."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.stub import Stubber

BRAIN = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
WORKER = "global.anthropic.claude-haiku-4-5-20251001-v1:0"


def converse_tool_response(
    name: str,
    payload: dict[str, Any],
    *,
    plain: int,
    out: int,
    read: int = 0,
    write: int = 0,
    cache_details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    response = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": f"tool-{name}", "name": name, "input": payload}}],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": plain,
            "outputTokens": out,
            "totalTokens": plain + out + read + write,
            "cacheReadInputTokens": read,
            "cacheWriteInputTokens": write,
        },
        "metrics": {"latencyMs": 800},
    }
    if cache_details is not None:  # Bedrock's per-TTL split of the cache writes
        response["usage"]["cacheDetails"] = cache_details  # type: ignore[index]
    return response


def converse_text_response(text: str, *, plain: int = 10, out: int = 10) -> dict[str, Any]:
    """A reply in prose where a tool call was forced: it fits no schema."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": plain, "outputTokens": out, "totalTokens": plain + out},
        "metrics": {"latencyMs": 500},
    }


def timing_out_client(config: dict[str, Any]) -> tuple[Any, list[int]]:
    """A real bedrock-runtime client built with ``config`` whose every attempt times out reading
    the response, as botocore raises it on a slow endpoint; the list counts the attempts."""
    from botocore.config import Config
    from botocore.exceptions import ReadTimeoutError

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(**config),
    )
    attempts: list[int] = []

    def time_out(request: Any, **_: Any) -> None:
        attempts.append(1)
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.bedrock-runtime.Converse", time_out)
    return client, attempts


class RecordingClient:
    """A real bedrock-runtime client with a Stubber, recording every Converse request."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "bedrock-runtime", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
        )
        self.requests: list[dict[str, Any]] = []
        self.client.meta.events.register(
            "before-parameter-build.bedrock-runtime.Converse",
            lambda params, **_: self.requests.append(json.loads(json.dumps(params, default=str))),
        )
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def respond(self, response: dict[str, Any]) -> None:
        self.stubber.add_response("converse", response)

    def fail(self, code: str, status: int, message: str = "refused") -> None:
        self.stubber.add_client_error(
            "converse", service_error_code=code, service_message=message, http_status_code=status
        )

    def throttle(self, times: int) -> None:
        for _ in range(times):
            self.stubber.add_client_error(
                "converse",
                service_error_code="ThrottlingException",
                service_message="slow down",
                http_status_code=429,
            )
