"""``panelbrain bench size`` on a build laid out as `sam build` leaves it: each function's layers,
whether they carry langchain, and whether each layer holds exactly what the lock pins."""

from __future__ import annotations

from pathlib import Path

from panelbrain.bench.size import measure, problems
from panelbrain.local.template import Template
from panelbrain.ops.lock import pinned_for_lambda

ROOT = Path(__file__).parent.parent.parent


def fake_build(build: Path, *, drift: tuple[str, str] | None = None) -> None:
    """Every function with one file of code, every layer with the dist-info of each package its
    requirements.txt pins (``drift``: one package at another version)."""
    template = Template.load(ROOT / "template.yaml")
    (build / "template.yaml").parent.mkdir(parents=True, exist_ok=True)
    (build / "template.yaml").write_text("built")
    for name in template.of_type("AWS::Serverless::Function"):
        (build / name).mkdir()
        (build / name / "app.py").write_text("x" * 1000)
    for name, layer in template.of_type("AWS::Serverless::LayerVersion").items():
        pinned = pinned_for_lambda(ROOT / layer["Properties"]["ContentUri"] / "requirements.txt")
        for package, version in pinned.items():
            if drift and package == drift[0]:
                version = drift[1]
            info = build / name / "python" / f"{package.replace('-', '_')}-{version}.dist-info"
            info.mkdir(parents=True)
            (info / "METADATA").write_text("m" * 100)


def test_each_function_shows_its_layers_and_only_the_model_functions_carry_langchain(tmp_path: Path) -> None:
    # GIVEN a build of the template with every layer as locked
    fake_build(tmp_path)
    # WHEN it is measured
    result = measure(ROOT / "template.yaml", tmp_path)
    rows = {row["function"]: row for row in result["functions"]}
    # THEN each function lists its layers with their sizes
    assert list(rows["SqlWriterFunction"]["layer_bytes"]) == ["CoreLayer", "ModelLayer", "DataLayer"]
    assert rows["ApiFunction"]["layers"] == ["CoreLayer"]
    # AND the API and poller carry no langchain, the model functions do
    assert not rows["ApiFunction"]["carries_langchain"] and not rows["PollerFunction"]["carries_langchain"]
    carrying = {name for name, row in rows.items() if row["carries_langchain"]}
    assert carrying == {"BrainPlanFunction", "SqlWriterFunction", "BrainSynthesiseFunction"}
    # AND every layer holds its lock, so the check passes
    assert all(result["layers_match_lock"].values())
    assert problems(result) == []


def test_a_layer_built_at_another_version_than_the_lock_fails_the_check(tmp_path: Path) -> None:
    # GIVEN a build whose data layer holds pandas at a version the lock does not pin
    fake_build(tmp_path, drift=("pandas", "2.2.0"))
    # WHEN it is measured
    result = measure(ROOT / "template.yaml", tmp_path)
    # THEN --check names the layer
    assert result["layers_match_lock"]["DataLayer"] is False
    assert [p for p in problems(result) if p.startswith("DataLayer")]


def test_a_function_package_carrying_dataset_files_fails_the_check(tmp_path: Path) -> None:
    # GIVEN a build in which one function's package still holds a dataset (built without src/Makefile)
    fake_build(tmp_path)
    carried = tmp_path / "DataProcessorFunction" / "panelbrain" / "data" / "datasets" / "ces11"
    carried.mkdir(parents=True)
    (carried / "ces11.csv").write_text("id\n1\n")
    # WHEN it is measured
    result = measure(ROOT / "template.yaml", tmp_path)
    rows = {row["function"]: row for row in result["functions"]}
    # THEN that function shows the file, the others none, and --check names it
    assert rows["DataProcessorFunction"]["dataset_files"] == ["panelbrain/data/datasets/ces11/ces11.csv"]
    assert not rows["ApiFunction"]["dataset_files"]
    assert [
        p for p in problems(result) if p.startswith("DataProcessorFunction: its package carries 1 dataset")
    ]
