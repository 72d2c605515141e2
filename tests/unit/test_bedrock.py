"""The bedrock provider against botocore's Stubber on a real bedrock-runtime client: the model
per role, the cache point, structured output into our models, usage and its price, throttling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panelbrain.agents import bedrock
from panelbrain.agents.bedrock import BedrockProvider, BedrockSettings, CircuitBreaker, ModelSpec
from panelbrain.data.dictionary import load_dictionary
from panelbrain.errors import BadInputError
from panelbrain.models import QueryInput
from panelbrain.pricing import cost_usd
from tests.bedrock_stubs import BRAIN, WORKER, RecordingClient, converse_tool_response

PLAN = {
    "intent": "share",
    "measure": "abortion",
    "values": ["Yes"],
    "breakdown": "province",
    "filters": [{"column": "gender", "values": ["Female"]}],
    "weighted": True,
    "confidence": 0.9,
    "reasons": ["the question names the abortion ban and provinces"],
}
QUERY = QueryInput(query_id="q-1", question="Do women back an abortion ban, by province?", provider="bedrock")


@pytest.fixture(autouse=True)
def fresh_breaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(bedrock, "BREAKER", CircuitBreaker(threshold=2, cooldown_s=60))
    yield


def provider(recorder: RecordingClient, brain: ModelSpec | None = None) -> BedrockProvider:
    return BedrockProvider(
        BedrockSettings(brain or ModelSpec(BRAIN), ModelSpec(WORKER), "us-east-1"), recorder.client
    )


def test_plan_uses_the_brain_model_a_cache_point_and_structured_output() -> None:
    recorder = RecordingClient()
    recorder.respond(converse_tool_response("PlanDraft", PLAN, plain=150, out=60, read=2_400))
    plan = provider(recorder).plan(QUERY, load_dictionary("ces11"))
    request = recorder.requests[0]
    assert request["modelId"] == BRAIN
    assert request["system"][-1] == {"cachePoint": {"type": "default"}}
    assert '"name": "abortion"' in request["system"][0]["text"]  # the dictionary sits before the cache point
    assert request["toolConfig"]["toolChoice"] == {"tool": {"name": "PlanDraft"}}
    assert request["inferenceConfig"]["maxTokens"] > 0
    assert (plan.measure, plan.values, plan.breakdown, plan.provider) == (
        "abortion",
        ["Yes"],
        "province",
        "bedrock",
    )
    assert plan.filters[0].values == ["Female"]
    usage = plan.usage[0]
    assert (usage.model_id, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (
        BRAIN,
        150,
        60,
        2_400,
    )


def test_provisioned_throughput_arn_is_sent_as_the_model() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123"
    recorder = RecordingClient()
    recorder.respond(converse_tool_response("PlanDraft", PLAN, plain=10, out=10))
    provider(recorder, ModelSpec(arn, "anthropic.claude-sonnet-4-5-20250929-v1:0")).plan(
        QUERY, load_dictionary("ces11")
    )
    assert recorder.requests[0]["modelId"] == arn


def test_model_output_is_held_to_the_dictionary() -> None:
    recorder = RecordingClient()
    recorder.respond(
        converse_tool_response("PlanDraft", {**PLAN, "values": ["Yes", "Maybe"]}, plain=10, out=10)
    )
    plan = provider(recorder).plan(QUERY, load_dictionary("ces11"))
    assert plan.values == ["Yes"] and plan.confidence == pytest.approx(0.6)
    assert "dropped value codes the dictionary does not list for abortion" in plan.reasons
    recorder.respond(converse_tool_response("PlanDraft", {**PLAN, "measure": "income"}, plain=10, out=10))
    with pytest.raises(BadInputError, match="the model named a column 'income' that ces11 does not have"):
        provider(recorder).plan(QUERY, load_dictionary("ces11"))


def test_usage_with_cache_reads_is_priced_per_token_kind() -> None:
    # Sonnet via a us. profile (10 % above global): 3 / 15 / 0.30 / 3.75 USD per million.
    expected = (150 * 3.00 + 60 * 15.00 + 2_400 * 0.30 + 1_000 * 3.75) / 1e6 * 1.10
    assert cost_usd(BRAIN, 150, 60, 2_400, 1_000) == pytest.approx(expected)
    # Haiku via the global profile: no premium.
    assert cost_usd(WORKER, 1_000_000, 0, 0, 0) == pytest.approx(1.00)


def test_throttling_opens_the_breaker_and_the_offline_provider_answers() -> None:
    recorder = RecordingClient()
    recorder.throttle(2)
    with pytest.raises(bedrock.ModelThrottledError):
        provider(recorder).plan(QUERY, load_dictionary("ces11"))
    plan = provider(recorder).plan(QUERY, load_dictionary("ces11"))  # second throttle: breaker opens
    assert plan.provider == "offline (bedrock fallback)"
    assert plan.reasons[0] == "Bedrock kept throttling: answered by the offline provider instead"
    assert len(recorder.requests) == 2
    provider(recorder).plan(QUERY, load_dictionary("ces11"))  # open: Bedrock is not called at all
    assert len(recorder.requests) == 2
