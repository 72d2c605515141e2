"""Reproducible installs: the lock, pyproject.toml and the Lambda layers agree, and each function
carries the layers its handler needs and no model layer it never uses."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from panelbrain.local.template import Template
from panelbrain.ops.lock import DEV_LOCK, LAMBDA_MARKERS, LAYERS, pinned_for_lambda, pins

ROOT = Path(__file__).parent.parent.parent
TEMPLATE = Template.load(ROOT / "template.yaml")
FUNCTIONS = TEMPLATE.of_type("AWS::Serverless::Function")
LAYER_FOLDERS = {layer.resource: ROOT / "layers" / layer.folder for layer in LAYERS}


def layer_packages(resource: str) -> dict[str, str]:
    return pinned_for_lambda(LAYER_FOLDERS[resource] / "requirements.txt")


def layers_of(function: str) -> list[str]:
    global_layers = TEMPLATE.body.get("Globals", {}).get("Function", {}).get("Layers", [])
    own = FUNCTIONS[function]["Properties"].get("Layers", [])
    return [ref["Ref"] for ref in [*global_layers, *own]]


def handler_module(function: str) -> str:
    return str(FUNCTIONS[function]["Properties"]["Handler"]).rsplit(".", 1)[0]


def test_every_template_layer_is_built_from_a_locked_requirements_file() -> None:
    declared = set(TEMPLATE.of_type("AWS::Serverless::LayerVersion"))
    assert declared == set(LAYER_FOLDERS)
    for resource, folder in LAYER_FOLDERS.items():
        props = TEMPLATE.of_type("AWS::Serverless::LayerVersion")[resource]["Properties"]
        assert Path(props["ContentUri"]).resolve() == folder.resolve(), resource
        makefile = (folder / "Makefile").read_text()
        # --no-deps: the file is the whole closure; anything pip resolved itself would be unlocked.
        assert f"build-{resource}:" in makefile
        assert "--no-deps --require-hashes -r requirements.txt" in makefile


@pytest.mark.parametrize("layer", [layer.folder for layer in LAYERS])
def test_a_layer_pins_every_package_at_the_locked_version(layer: str) -> None:
    # GIVEN the lock's version of each package for Lambda's Python and platform
    locked = pinned_for_lambda(ROOT / DEV_LOCK)
    # WHEN a layer's requirements are read
    pinned = pinned_for_lambda(ROOT / "layers" / layer / "requirements.txt")
    # THEN every package it installs is in the lock, at the lock's version (so what deploys is
    # what the tests ran against); drift means `make lock` was not run after an edit
    assert pinned
    unlocked = sorted(set(pinned) - set(locked))
    assert not unlocked, f"layers/{layer}/requirements.txt installs {unlocked}, absent from {DEV_LOCK}"
    drifted = {name: (version, locked[name]) for name, version in pinned.items() if locked[name] != version}
    assert not drifted, f"layers/{layer}/requirements.txt (layer, lock): {drifted}; run `make lock`"


def test_the_lock_holds_every_dependency_pyproject_declares_at_a_version_it_allows() -> None:
    # `make install` installs the lock, then panelbrain with --no-deps: a dependency declared in
    # pyproject.toml but not locked would be silently missing.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += [r for r in extra if canonicalize_name(Requirement(r).name) != "panelbrain"]
    locked = pins(ROOT / DEV_LOCK)
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"pyproject.toml declares {line!r}, not in {DEV_LOCK}: run `make lock`"
        for pin in locked[name]:
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{DEV_LOCK} pins {name}=={pin.version}, outside pyproject.toml's {line!r}: run `make lock`"
            )


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_no_function_deploys_a_package_twice(function: str) -> None:
    # Lambda counts each layer's unzipped size against the 250 MB limit, overlapping or not.
    seen: dict[str, str] = {}
    for layer in layers_of(function):
        for name in layer_packages(layer):
            assert name not in seen, f"{function}: {name} is in both {seen[name]} and {layer}"
            seen[name] = layer


# Runs in a fresh interpreter with every third-party module outside `allowed` refused, as on
# Lambda where only the function's layers are on the path: imports the handler, then what it loads
# on its first call and not at import: boto3 and a client (built on first use, ADR 0013) and, for
# a function that may call a model, the bedrock provider with what it imports inside its
# functions. A module imported only if present (botocore's certifi, sqlglot's mypy_extensions,
# pandas' pyarrow) falls back as it would on Lambda.
PROBE = """
import ast, importlib, importlib.abc, importlib.metadata, json, sys
module, allowed = sys.argv[1], set(json.loads(sys.argv[2]))
canonical = lambda name: name.lower().replace("_", "-").replace(".", "-")
owners = importlib.metadata.packages_distributions()
refused = {top for top, dists in owners.items()
           if top not in sys.stdlib_module_names and top != "panelbrain"
           and not any(canonical(d) in allowed for d in dists)}

class NotInTheLayers(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in refused:
            message = f"No module named {name!r} (in none of the function's layers)"
            raise ModuleNotFoundError(message, name=name)
        return None

sys.meta_path.insert(0, NotInTheLayers())
importlib.import_module(module)
import boto3
boto3.session.Session(region_name="us-east-1").client("dynamodb")
calls_a_model = "panelbrain.agents.providers" in sys.modules
if calls_a_model:
    bedrock = importlib.import_module("panelbrain.agents.bedrock")
    for function in ast.walk(ast.parse(open(bedrock.__file__).read())):
        if isinstance(function, ast.FunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and not node.module.startswith("panelbrain"):
                    importlib.import_module(node.module)
print(json.dumps({"calls_a_model": calls_a_model}))
"""


def run_with_only(function: str, allowed: set[str]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-c", PROBE, handler_module(function), json.dumps(sorted(allowed))]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def carried_by(function: str) -> set[str]:
    carried = {name for layer in layers_of(function) for name in layer_packages(layer)}
    # Packages the lock installs only on other Pythons (3.11's backports) cannot be needed on
    # Lambda's 3.13: the development environment may load them.
    lambda_pins = pinned_for_lambda(ROOT / DEV_LOCK)
    return carried | {name for name in pins(ROOT / DEV_LOCK) if name not in lambda_pins}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_runs_with_only_its_layers_and_carries_a_model_layer_only_if_it_calls_one(
    function: str,
) -> None:
    # GIVEN only the packages the function's layers carry
    layers = layers_of(function)
    # WHEN its handler is imported and what it loads on a first call is loaded
    run = run_with_only(function, carried_by(function))
    # THEN nothing it needs is missing
    assert run.returncode == 0, f"{function} ({', '.join(layers)}):\n{run.stderr[-1500:]}"
    # AND it carries the model layer (langchain-aws: ~30 MB, seconds of import) only if it may
    # call a model
    calls_a_model = json.loads(run.stdout)["calls_a_model"]
    assert ("ModelLayer" in layers) == calls_a_model, (function, layers)


def test_the_probe_fails_a_function_whose_layers_lack_what_it_imports() -> None:
    # The check above is only as good as its refusal: without the data layer, a data function
    # cannot import pandas.
    without_data = carried_by("WeightApplierFunction") - set(layer_packages("DataLayer"))
    run = run_with_only("WeightApplierFunction", without_data)
    assert run.returncode != 0
    assert "in none of the function's layers" in run.stderr


def test_the_api_and_poller_carry_no_langchain() -> None:
    for function in ("ApiFunction", "PollerFunction"):
        carried = {name for layer in layers_of(function) for name in layer_packages(layer)}
        assert not {n for n in carried if n.startswith("langchain")}, function


def test_the_lambda_markers_name_the_runtime_the_layers_are_built_for() -> None:
    # The layers' Makefiles install for one interpreter; the lock is read for the same one.
    makefile = (LAYER_FOLDERS["CoreLayer"] / "Makefile").read_text()
    assert f"--python-version {LAMBDA_MARKERS['python_version']}" in makefile
    runtime = TEMPLATE.body["Globals"]["Function"]["Runtime"]
    assert runtime == f"python{LAMBDA_MARKERS['python_version']}"
