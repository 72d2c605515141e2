"""The datasets bucket in the template (ADR 0025): versioned, private, TLS only; every function
that reads datasets names it and may read it (and only those); and every function's package is
built without the datasets."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path
from typing import Any

import pytest

from panelbrain.local.template import Template
from tests.agents import AGENTS

ROOT = Path(__file__).parent.parent.parent
TEMPLATE = Template.load(ROOT / "template.yaml", {"Reviewers": "reviewer@example.com"})
FUNCTIONS = TEMPLATE.of_type("AWS::Serverless::Function")
BUCKET = "DatasetsBucket"


def _module_file(name: str) -> Path | None:
    path = ROOT / "src" / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(name: str) -> set[str]:
    """The panelbrain modules ``name`` imports, at the top or inside a function."""
    file = _module_file(name)
    if file is None:
        return set()
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("panelbrain")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("panelbrain")
        ):
            assert node.module is not None
            found.add(node.module)
            found |= {
                f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")
            }
    return found


def reads_datasets(function: str) -> bool:
    """Whether the function's handler can reach the dataset look-up (dictionary or catalog)."""
    seen: set[str] = set()
    todo = [TEMPLATE.handler(function).rpartition(".")[0]]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += _imports(module)
    return "panelbrain.data.dictionary" in seen


READERS = sorted(f for f in FUNCTIONS if reads_datasets(f))


def statements(function: str) -> list[dict[str, Any]]:
    found = []
    for policy in FUNCTIONS[function]["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            found += policy["Statement"]
    return found


def test_the_datasets_bucket_is_versioned_private_encrypted_and_tls_only() -> None:
    props = TEMPLATE.resources[BUCKET]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    [policy] = [
        r
        for r in TEMPLATE.of_type("AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": BUCKET}
    ]
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": False}}


def test_the_readers_are_the_pipeline_and_api_functions() -> None:
    # The scan is only as good as what it finds: these call load_dictionary or load_dataset.
    assert sorted(["ApiFunction", *AGENTS, "PersistFunction"]) == READERS


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_a_function_names_and_may_read_the_bucket_exactly_when_it_reads_datasets(function: str) -> None:
    env = FUNCTIONS[function]["Properties"].get("Environment", {}).get("Variables", {})
    grants = [s for s in statements(function) if "s3:GetObjectVersion" in s.get("Action", [])]
    if function not in READERS:
        assert "DATASETS_BUCKET" not in env and not grants, function
        return
    assert env["DATASETS_BUCKET"] == {"Ref": BUCKET}
    # Read only, and only the published datasets: every file is read by version id.
    [read] = grants
    assert sorted(read["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
    assert read["Resource"] == {"Fn::Sub": "${DatasetsBucket.Arn}/datasets/*"}
    [listing] = [s for s in statements(function) if s.get("Action") == "s3:ListBucket"]
    assert listing["Resource"] == {"Fn::GetAtt": [BUCKET, "Arn"]}


def test_every_function_is_built_by_the_makefile_which_leaves_the_datasets_out(tmp_path: Path) -> None:
    # GIVEN every function builds with src/Makefile (SAM runs `make build-<LogicalId>` in CodeUri)
    assert {f: FUNCTIONS[f].get("Metadata", {}).get("BuildMethod") for f in FUNCTIONS} == dict.fromkeys(
        FUNCTIONS, "makefile"
    )
    # WHEN the target runs as sam build runs it
    artifacts = tmp_path / "DataProcessorFunction"
    artifacts.mkdir()
    subprocess.run(
        [
            "make",
            "--makefile",
            str(ROOT / "src" / "Makefile"),
            "build-DataProcessorFunction",
            f"ARTIFACTS_DIR={artifacts}",
        ],
        cwd=ROOT / "src",
        check=True,
        capture_output=True,
    )
    # THEN the package holds the handlers and no dataset file
    assert (artifacts / "panelbrain" / "functions" / "data_processor.py").is_file()
    assert (artifacts / "panelbrain" / "data" / "remote.py").is_file()
    assert not (artifacts / "panelbrain" / "data" / "datasets").exists()
    assert not list(artifacts.rglob("dictionary.yaml")) and not list(artifacts.rglob("__pycache__"))
