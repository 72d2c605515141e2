"""``panelbrain bench size``: what each function deploys, against Lambda's limits.

Reads the build that ``sam build`` left in ``.aws-sam/build``: each function's own code, and the
layers the template attaches to it (Globals first, then the function's own), with the packages
each layer holds. Lambda allows 250 MB for a function and its layers unzipped; our own code
stays within a budget of 2 MiB (it ships the operator tooling too: the local engine, ``ops``,
``cli``, ``bench``; no handler imports those, which the import-time tests hold).
Each layer must hold exactly the versions its ``requirements.txt``
pins (``make lock``), so what deploys is what the tests ran against. No function's package
holds dataset files: deployed, datasets are read from the datasets bucket (``src/Makefile``
leaves them out; docs/adr/0025-datasets-in-s3.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError
from panelbrain.local.template import Template
from panelbrain.ops.lock import pinned_for_lambda

LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024
# Our code in each function's package: 1.12 MB at issue 13 (1 MiB before the CLI, ops and
# deploy tooling grew past it). Splitting the tooling into its own distribution would shrink it.
OWN_CODE_LIMIT_BYTES = 2 * 1024 * 1024
# Where the datasets live in the source tree: nothing of it may reach a function's package.
DATASETS_IN_PACKAGE = Path("panelbrain") / "data" / "datasets"


def _size(folder: Path) -> int:
    return sum((Path(root) / name).stat().st_size for root, _, names in os.walk(folder) for name in names)


def _dataset_files(code_dir: Path) -> list[str]:
    """The dataset files a function's package carries (its dictionaries and data)."""
    folder = code_dir / DATASETS_IN_PACKAGE
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(code_dir)) for p in folder.rglob("*") if p.is_file())


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _installed(layer_dir: Path) -> dict[str, str]:
    """The distributions a built layer holds (its ``*.dist-info`` folders), name to version."""
    found: dict[str, str] = {}
    for info in sorted((layer_dir / "python").glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found[_canonical(name)] = version
    return found


def measure(template_path: Path, build_dir: Path) -> dict[str, Any]:
    if not (build_dir / "template.yaml").is_file():
        raise BadInputError(f"no build in {build_dir}: run `sam build` first")
    template = Template.load(template_path)
    global_layers = template.body.get("Globals", {}).get("Function", {}).get("Layers", [])
    layers: dict[str, dict[str, Any]] = {}
    for name, resource in template.of_type("AWS::Serverless::LayerVersion").items():
        if not (build_dir / name).is_dir():
            raise BadInputError(f"{build_dir} has no {name}: run `sam build`")
        packages = _installed(build_dir / name)
        requirements = template_path.parent / resource["Properties"]["ContentUri"] / "requirements.txt"
        locked = pinned_for_lambda(requirements) if requirements.is_file() else {}
        layers[name] = {
            "bytes": _size(build_dir / name),
            "packages": packages,
            # Every pinned package present at its pinned version, and nothing else.
            "matches_lock": packages == locked,
        }
    rows = []
    for name, resource in template.of_type("AWS::Serverless::Function").items():
        carried = [ref["Ref"] for ref in [*global_layers, *resource["Properties"].get("Layers", [])]]
        code = _size(build_dir / name)
        dataset_files = _dataset_files(build_dir / name)
        total = code + sum(layers[layer]["bytes"] for layer in carried)
        rows.append(
            {
                "function": name,
                "code_bytes": code,
                "layers": carried,
                "layer_bytes": {layer: layers[layer]["bytes"] for layer in carried},
                "carries_langchain": any(
                    package.startswith("langchain")
                    for layer in carried
                    for package in layers[layer]["packages"]
                ),
                "total_bytes": total,
                "dataset_files": dataset_files,
                "code_within_budget": code <= OWN_CODE_LIMIT_BYTES,
                "total_within_lambda_limit": total <= LAMBDA_LIMIT_BYTES,
            }
        )
    return {
        "benchmark": "size",
        "layers": {name: layer["bytes"] for name, layer in layers.items()},
        "layer_packages": {name: layer["packages"] for name, layer in layers.items()},
        "layers_match_lock": {name: layer["matches_lock"] for name, layer in layers.items()},
        "functions": rows,
        "limit_bytes": LAMBDA_LIMIT_BYTES,
    }


def problems(result: dict[str, Any]) -> list[str]:
    """What ``--check`` fails on: functions over a limit or carrying dataset files, layers that
    are not what the lock pins."""
    mb = 1024 * 1024
    found = [
        f"{row['function']}: own code {row['code_bytes'] / mb:.2f} MB is over the "
        f"{OWN_CODE_LIMIT_BYTES / mb:.0f} MB budget"
        for row in result["functions"]
        if not row["code_within_budget"]
    ]
    found += [
        f"{row['function']}: code and layers {row['total_bytes'] / mb:.1f} MB are over Lambda's "
        f"{LAMBDA_LIMIT_BYTES / mb:.0f} MB"
        for row in result["functions"]
        if not row["total_within_lambda_limit"]
    ]
    found += [
        f"{row['function']}: its package carries {len(row['dataset_files'])} dataset file(s) "
        f"({row['dataset_files'][0]}, ...): datasets are read from the datasets bucket (ADR 0025); "
        "build with src/Makefile (template.yaml: BuildMethod makefile)"
        for row in result["functions"]
        if row["dataset_files"]
    ]
    found += [
        f"{layer} does not hold exactly its locked requirements.txt (run `make lock`, then `sam build`)"
        for layer, matches in result["layers_match_lock"].items()
        if not matches
    ]
    return found
