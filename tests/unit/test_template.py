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


def resolve_if(value: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, yes, no = value["Fn::If"]
        return yes if conditions[condition] else no
    return value


@pytest.mark.parametrize(
    ("parameters", "scheme"),
    [
        ({}, "sigv4"),
        ({"ApiAuth": "API_KEY"}, "api_key"),
        ({"AlarmEmail": "ops@example.com", "ReviewEmail": "review@example.com"}, "sigv4"),
    ],
)
def test_template_transforms_with_iam_or_api_key_auth(parameters: dict[str, str], scheme: str) -> None:
    resources = transformed(parameters)["Resources"]
    assert resources["QueryApi"]["Type"] == "AWS::ApiGateway::RestApi"
    body = resources["QueryApi"]["Properties"]["Body"]
    conditions = {"UseApiKey": parameters.get("ApiAuth") == "API_KEY"}
    for path, method in (("/queries", "post"), ("/queries/{query_id}", "get")):
        operation = body["paths"][path][method]
        assert resolve_if(operation["security"], conditions) == [{scheme: []}]
        assert (
            operation["x-amazon-apigateway-request-validator"]
            in body["x-amazon-apigateway-request-validators"]
        )
    # The API-key resources exist only under their condition; the permissions are unconditional
    # because the one API always exists.
    for name in ("QueryApiUsagePlan", "QueryApiKey", "QueryApiUsagePlanKey"):
        assert resources[name]["Condition"] == "UseApiKey"
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert permissions and all("Condition" not in p for p in permissions)


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
        assert "Aliaslive" in str(target["DependsOn"])


@pytest.mark.parametrize(
    ("parameters", "brain", "worker"),
    [
        ({}, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-haiku-4-5-20251001-v1:0"),
        (
            {"InferenceProfilePrefix": "global"},
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-haiku-4-5-20251001-v1:0",
        ),
        (
            {"WorkerProvisionedThroughputArn": "arn:aws:bedrock:us-east-1:1:provisioned-model/w"},
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "arn:aws:bedrock:us-east-1:1:provisioned-model/w",
        ),
    ],
)
def test_model_per_role_from_profile_prefix_or_provisioned_arn(
    parameters: dict[str, str], brain: str, worker: str
) -> None:
    from panelbrain.local.template import Template

    environment = Template.load(ROOT / "template.yaml", parameters).environment("BrainPlanFunction")
    assert (environment["PANELBRAIN_BRAIN_MODEL_ID"], environment["PANELBRAIN_WORKER_MODEL_ID"]) == (
        brain,
        worker,
    )
    assert environment["PANELBRAIN_WORKER_BASE_MODEL_ID"] == "anthropic.claude-haiku-4-5-20251001-v1:0"


def _references(value: Any, names: set[str]) -> set[str]:
    """Resources a CloudFormation value refers to (Ref, GetAtt, names inside Sub strings)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str) and inner in names:
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found |= {target} & names
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)} & names
                if isinstance(inner, list):
                    found |= _references(inner[1], names)
            else:
                found |= _references(inner, names)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner, names)
    return found


@pytest.mark.parametrize("auth", ["IAM", "API_KEY"])
def test_no_resource_depends_on_itself(auth: str) -> None:
    # CloudFormation refuses a template with a dependency cycle; not every cfn-lint release
    # finds one through the SAM transform (1.58 missed the review API's), so check the graph.
    resources = transformed({"ApiAuth": auth})["Resources"]
    names = set(resources)
    edges = {
        name: _references({k: v for k, v in body.items() if k != "DependsOn"}, names)
        | set([body["DependsOn"]] if isinstance(body.get("DependsOn"), str) else body.get("DependsOn", []))
        for name, body in resources.items()
    }
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            assert state.get(target) != 1, f"dependency cycle: {' -> '.join([*path, name, target])}"
            if target not in state:
                visit(target, [*path, name])
        state[name] = 2

    for name in sorted(names):
        if name not in state:
            visit(name, [])


@pytest.mark.parametrize(
    ("parameters", "refused"),
    [
        # Sonnet 4.5 / Haiku 4.5 on demand only through an inference profile: a bare model id is refused.
        (
            {"InferenceProfilePrefix": "none", "Reviewers": "a@example.com"},
            "allowed values are us, eu, apac, global",
        ),
        # An empty allow-list refuses every decision: every deployed review would time out.
        ({}, "Parameters: [Reviewers] must have values"),
        ({"Reviewers": ""}, "Reviewers=''"),
        # The sweeper heartbeats every minute: a heartbeat interval under two sweeps fails reviews.
        ({"Reviewers": "a@example.com", "ReviewHeartbeatSeconds": "90"}, "must be between 120"),
    ],
)
def test_parameters_aws_would_make_useless_are_refused_before_deploy(
    parameters: dict[str, str], refused: str
) -> None:
    from panelbrain.local.template import Template, TemplateError

    with pytest.raises(TemplateError, match=re.escape(refused)):
        Template.load(ROOT / "template.yaml", parameters).check_parameters()


def test_conversations_expire_and_their_table_is_reached_with_least_privilege() -> None:
    # GIVEN the deployed template, SAM-transformed
    resources = transformed()["Resources"]
    table = resources["ConversationsTable"]["Properties"]
    # THEN turns are keyed by conversation and turn, and DynamoDB's TTL removes them
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["conversation_id", "turn"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    template = yaml_parse((ROOT / "template.yaml").read_text())
    assert template["Parameters"]["ConversationTtlHours"]["Default"] == 24

    def actions_on_table(function: str) -> set[str]:
        granted: set[str] = set()
        for policy in resources[f"{function}Role"]["Properties"].get("Policies", []):
            for statement in policy.get("PolicyDocument", {}).get("Statement", []):
                if statement.get("Resource") == {"Fn::GetAtt": ["ConversationsTable", "Arn"]}:
                    action = statement["Action"]
                    granted |= set(action if isinstance(action, list) else [action])
        return granted

    # AND only the API (add a turn, read a conversation) and persist (record a reading) reach it
    assert actions_on_table("ApiFunction") == {"dynamodb:PutItem", "dynamodb:Query"}
    assert actions_on_table("PersistFunction") == {"dynamodb:UpdateItem"}
    others = {n[: -len("Role")] for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert all(not actions_on_table(f) for f in others - {"ApiFunction", "PersistFunction"})
    # AND GET /conversations/{id} is a route of the API function
    paths = resources["QueryApi"]["Properties"]["Body"]["paths"]
    assert "get" in paths["/conversations/{conversation_id}"]
