"""``panelbrain bench size``: what each function deploys, against Lambda's limits.

Reads the build that ``sam build`` left in ``.aws-sam/build``: each function's own code, and the
layers the template attaches to it (Globals first, then the function's own). Lambda allows
250 MB for a function and its layers unzipped; our own code should stay well under 1 MB.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError
from panelbrain.local.template import Template

LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024
OWN_CODE_LIMIT_BYTES = 1024 * 1024


def _size(folder: Path) -> int:
    return sum((Path(root) / name).stat().st_size for root, _, names in os.walk(folder) for name in names)


def measure(template_path: Path, build_dir: Path) -> dict[str, Any]:
    if not (build_dir / "template.yaml").is_file():
        raise BadInputError(f"no build in {build_dir}: run `sam build` first")
    template = Template.load(template_path)
    global_layers = template.body.get("Globals", {}).get("Function", {}).get("Layers", [])
    layer_sizes: dict[str, int] = {}
    rows = []
    for name, resource in template.of_type("AWS::Serverless::Function").items():
        layers = [ref["Ref"] for ref in [*global_layers, *resource["Properties"].get("Layers", [])]]
        for layer in layers:
            if layer not in layer_sizes:
                layer_sizes[layer] = _size(build_dir / layer)
        code = _size(build_dir / name)
        total = code + sum(layer_sizes[layer] for layer in layers)
        rows.append(
            {
                "function": name,
                "code_bytes": code,
                "layers": layers,
                "total_bytes": total,
                "code_within_1mb": code <= OWN_CODE_LIMIT_BYTES,
                "total_within_lambda_limit": total <= LAMBDA_LIMIT_BYTES,
            }
        )
    return {"benchmark": "size", "layers": layer_sizes, "functions": rows, "limit_bytes": LAMBDA_LIMIT_BYTES}
