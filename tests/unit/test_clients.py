"""The one client builder: a client per (service, region, profile, config) kept for the process,
one substitution point for tests, a reset for a new emulator, and no other way to build one."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panelbrain.agents.bedrock import BedrockProvider
from panelbrain.aws import clients
from panelbrain.aws.cache import DynamoResultCache

SRC = Path(__file__).parent.parent.parent / "src" / "panelbrain"
# Where boto3 may still build a client itself: the builder, and the local engine's set-up of the
# emulator's resources (its own clients, not a handler's). Paths relative to src/panelbrain.
ALLOWED = {
    ("aws/clients.py", "_build"),
    ("local/engine.py", "LocalEngine._deploy"),
    ("local/aws_rules.py", "deploy"),
}
FACTORIES = {"boto3.client", "boto3.resource", "boto3.Session", "boto3.session.Session"}


@pytest.fixture(autouse=True)
def fresh_builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # No developer's ~/.aws or endpoint settings leak in; nothing here reaches the network.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    clients.reset()
    yield
    clients.reset()


def test_a_client_is_built_once_per_service_region_profile_and_config() -> None:
    sqs = clients.client("sqs")
    assert clients.client("sqs") is sqs  # a warm invocation builds nothing
    assert sqs.meta.region_name == "us-east-1"
    elsewhere = clients.client("sqs", region="eu-west-1")
    assert elsewhere is not sqs and elsewhere.meta.region_name == "eu-west-1"
    adaptive = clients.client("sqs", config={"retries": {"mode": "adaptive", "max_attempts": 4}})
    assert adaptive is not sqs and adaptive.meta.config.retries["mode"] == "adaptive"
    # Equal options, written another way, find the same client (its retry state with it).
    assert clients.client("sqs", config={"retries": {"max_attempts": 4, "mode": "adaptive"}}) is adaptive


def test_a_named_profile_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[profile panelbrain-test]\nendpoint_url = http://sqs.example.invalid\n")
    assert clients.client("sqs", profile="panelbrain-test").meta.endpoint_url == "http://sqs.example.invalid"
    assert clients.client("sqs").meta.endpoint_url != "http://sqs.example.invalid"


class RecordingDynamoDB:
    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.puts.append(request)
        return {}


def test_override_reaches_every_caller_then_gives_the_built_client_back() -> None:
    built = clients.client("dynamodb")
    with clients.override("dynamodb", RecordingDynamoDB()) as fake:
        assert clients.client("dynamodb") is fake
        assert clients.client("dynamodb", region="eu-west-1", profile="any") is fake
        # An adapter made before or inside the block asks the builder on each use.
        DynamoResultCache("ResultCacheTable", clock=lambda: 0.0).put("k", {"answer": 1}, ttl_s=60)
        assert [p["Item"]["cache_key"] for p in fake.puts] == [{"S": "k"}]
        with clients.override("dynamodb", RecordingDynamoDB()) as inner:
            assert clients.client("dynamodb") is inner
        assert clients.client("dynamodb") is fake  # the outer substitute is back
    assert clients.client("dynamodb") is built


def test_override_of_an_unknown_service_is_refused() -> None:
    # A misspelt service would otherwise substitute nothing, and the test would reach the real one.
    with (
        pytest.raises(ValueError, match=r"unknown service 'stepfunction'; the builder knows .*stepfunctions"),
        clients.override("stepfunction", object()),
    ):
        pass


def test_reset_builds_anew_and_keeps_substitutes() -> None:
    before = clients.client("sns")
    with clients.override("sqs", object()) as fake:
        clients.reset()
        assert clients.client("sqs") is fake
    assert clients.client("sns") is not before


def test_bedrock_client_is_shared_across_invocations_with_adaptive_retries_and_the_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The provider is made per invocation; its client (and botocore's adaptive rate limiter, which
    # lives on the client) must outlast it, in the region and profile configured.
    (tmp_path / "config").write_text(
        "[profile panelbrain-bedrock]\nendpoint_url = http://bedrock.example.invalid\n"
    )
    monkeypatch.setenv("PANELBRAIN_BEDROCK_PROFILE", "panelbrain-bedrock")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    first = BedrockProvider.from_env().client
    assert BedrockProvider.from_env().client is first
    assert first.meta.config.retries["mode"] == "adaptive"
    assert first.meta.region_name == "eu-west-1"
    assert first.meta.endpoint_url == "http://bedrock.example.invalid"


def test_the_api_and_poller_functions_import_without_boto3() -> None:
    # Their cold start pays for boto3 when a client is first built, not at import.
    code = (
        "import sys, panelbrain.functions.api, panelbrain.functions.poller, "
        "panelbrain.functions.review_api; print(sorted(m for m in sys.modules if m.split('.')[0] == 'boto3'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


class _Boto3Factories(ast.NodeVisitor):
    """Calls that build a boto3 client, resource or session, with the function they sit in."""

    def __init__(self, tree: ast.Module) -> None:
        self.found: list[tuple[int, str, str]] = []
        self._scope: list[str] = []
        self._names: dict[str, str] = {}  # local name -> what it stands for in boto3
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "boto3":
                        local = alias.asname or alias.name.split(".")[0]
                        self._names[local] = alias.name if alias.asname else "boto3"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "boto3":
                for alias in node.names:
                    self._names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.visit(tree)

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._scope.append(node.name)
        self.generic_visit(node)
        self._scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped  # noqa: N815

    def visit_Call(self, node: ast.Call) -> None:
        parts: list[str] = []
        func: ast.expr = node.func
        while isinstance(func, ast.Attribute):
            parts.insert(0, func.attr)
            func = func.value
        if isinstance(func, ast.Name) and func.id in self._names:
            name = ".".join([self._names[func.id], *parts])
            if name in FACTORIES:
                self.found.append((node.lineno, name, ".".join(self._scope)))
        self.generic_visit(node)


def boto3_factories(source: str) -> list[tuple[int, str, str]]:
    return _Boto3Factories(ast.parse(source)).found


def test_the_scan_sees_every_way_of_building_a_client() -> None:
    source = """
import boto3
import boto3 as b3
from boto3 import client as make, Session
from boto3.session import Session as S2

def f():
    boto3.client("s3"); b3.resource("s3"); make("sqs"); Session(); S2(); boto3.session.Session()
    boto3.Session().client("sns")
"""
    assert [name for _, name, _ in boto3_factories(source)] == [
        "boto3.client",
        "boto3.resource",
        "boto3.client",
        "boto3.Session",
        "boto3.session.Session",
        "boto3.session.Session",
        "boto3.Session",
    ]
    assert {scope for _, _, scope in boto3_factories(source)} == {"f"}


def test_only_the_builder_builds_aws_clients() -> None:
    stray = [
        f"src/panelbrain/{path}:{line} in {scope or 'module'}: {name}(...)"
        for file in sorted(SRC.rglob("*.py"))
        for line, name, scope in boto3_factories(file.read_text())
        if ((path := file.relative_to(SRC).as_posix()), scope) not in ALLOWED
    ]
    assert not stray, (
        "build AWS clients with panelbrain.aws.clients.client(service, ...) (tests substitute them "
        "with clients.override), not with boto3 directly; see docs/adr/0013-one-client-builder.md: "
        + "; ".join(stray)
    )
