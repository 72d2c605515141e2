"""The template as SAM will transform it: `sam validate` does not catch everything the
transform refuses (an intrinsic where SAM wants a literal, say), so transform it here."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).parent.parent.parent


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def transformed(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    text = (ROOT / "template.yaml").read_text()
    # Local paths become S3 URIs, as `sam deploy` makes them after packaging.
    text = re.sub(r"(CodeUri|ContentUri|DefinitionUri): \S+", r"\1: s3://bucket/key", text)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result: dict[str, Any] = transform(yaml_parse(text), parameters or {}, _NoManagedPolicies())
    return result


@pytest.mark.parametrize(
    "parameters", [{}, {"AlarmEmail": "ops@example.com", "ReviewEmail": "review@example.com"}]
)
def test_template_transforms(parameters: dict[str, str]) -> None:
    resources = transformed(parameters)["Resources"]
    assert resources["QueryApi"]["Type"] == "AWS::ApiGateway::RestApi"
    post = resources["QueryApi"]["Properties"]["Body"]["paths"]["/queries"]["post"]
    assert post["security"] == [{"AWS_IAM": []}]
    assert "x-amazon-apigateway-request-validator" in post


def test_every_agent_alias_has_scheduled_provisioned_concurrency() -> None:
    resources = transformed()["Resources"]
    targets = {
        k: v for k, v in resources.items() if v["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    }
    assert len(targets) == 6
    for target in targets.values():
        actions = {
            a["ScheduledActionName"]: a["ScalableTargetAction"]
            for a in target["Properties"]["ScheduledActions"]
        }
        assert (actions["off-hours"]["MinCapacity"], actions["weekends"]["MinCapacity"]) == (2, 1)
        assert str(target["DependsOn"]).endswith("Aliaslive") or "Aliaslive" in str(target["DependsOn"])
