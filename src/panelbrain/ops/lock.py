"""One resolution for the development environment and the Lambda layers: ``make lock``.

``requirements/dev.lock`` is a universal lock of ``pyproject.toml`` with its ``dev`` extra (every
Python from 3.11 and every platform, hashes included): ``make install`` installs exactly it.
Each layer's ``requirements.txt`` is then compiled from the names in its ``requirements.in``,
with ``dev.lock`` as constraints, for the Lambda runtime (CPython 3.13, x86_64 Linux, wheels
only): so every package a layer shares with the development environment has the version the
tests ran against, and ``tests/unit/test_layers.py`` fails if the two drift apart.

The fork strategy ``fewest`` keeps one version of a package across Python versions where one
fits them all (numpy 2.5 needs Python 3.12: without it Lambda's 3.13 would get 2.5 while the
tests run 2.4).

A layer carries the whole closure of its packages and is installed with ``--no-deps``, less
what a layer always carried beside it already brings (every function carries the core layer),
so no function deploys a package twice (sizes count against Lambda's 250 MB once per layer).

Run it as ``python -m panelbrain.ops.lock --uv PATH`` (the Makefile's ``lock`` target).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DEV_LOCK = Path("requirements/dev.lock")
LAMBDA_PYTHON = "3.13"
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels qualify
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html).
LAMBDA_PLATFORM = "x86_64-manylinux_2_28"
# The marker environment the layers are resolved for: what `pip install --platform ...` sees.
LAMBDA_MARKERS = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": LAMBDA_PYTHON,
    "python_full_version": f"{LAMBDA_PYTHON}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


@dataclass(frozen=True)
class Layer:
    """A layer under ``layers/<folder>``: the template's ``<resource>`` builds it."""

    folder: str
    resource: str
    # Layers every function carrying this one also carries: their packages are not repeated.
    beside: tuple[str, ...] = ()
    # Dependencies deliberately left out, each with its reason in LAYERS below.
    omit: tuple[str, ...] = ()


LAYERS = (
    Layer("core", "CoreLayer"),
    # numpy: langchain-aws declares it for its embeddings and vector stores; the chat model the
    # bedrock provider uses never imports it (tests/unit/test_layers.py imports the provider with
    # the model layer's packages only). The one function that needs numpy and a model, the SQL
    # writer, gets it from the data layer, so it carries one copy.
    Layer("model", "ModelLayer", beside=("core",), omit=("numpy",)),
    Layer("data", "DataLayer", beside=("core",)),
)


@dataclass(frozen=True)
class Pin:
    version: str
    marker: str  # empty when the pin holds everywhere


def pins(path: Path) -> dict[str, list[Pin]]:
    """The ``name==version ; marker`` lines of a compiled requirements file, by canonical name
    (a universal lock may hold two versions of one package under exclusive markers)."""
    found: dict[str, list[Pin]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].rstrip(" \\").strip()
        if not line or line.startswith(("#", "-", "--")):
            continue
        try:
            requirement = Requirement(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not a requirement: {line!r} ({exc})") from None
        versions = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if len(versions) != 1:
            raise ValueError(f"{path}:{number}: {requirement.name} is not pinned with == ({line!r})")
        marker = str(requirement.marker) if requirement.marker else ""
        found.setdefault(canonicalize_name(requirement.name), []).append(Pin(versions[0], marker))
    return found


def pinned_for_lambda(path: Path) -> dict[str, str]:
    """The version of each package that a file pins for the Lambda runtime (markers evaluated)."""
    chosen: dict[str, str] = {}
    for name, candidates in pins(path).items():
        for pin in candidates:
            if not pin.marker or Marker(pin.marker).evaluate(LAMBDA_MARKERS):
                chosen[name] = pin.version
    return chosen


def _compile(uv: Path, args: list[str]) -> None:
    command = [str(uv), "pip", "compile", "--quiet", "--generate-hashes"]
    subprocess.run([*command, "--custom-compile-command", "make lock", *args], check=True)


def lock(uv: Path, root: Path) -> None:
    _compile(
        uv,
        [
            str(root / "pyproject.toml"),
            "--extra",
            "dev",
            "--universal",
            "--fork-strategy",
            "fewest",
            "--python-version",
            "3.11",
            "--output-file",
            str(root / DEV_LOCK),
        ],
    )
    for layer in LAYERS:
        folder = root / "layers" / layer.folder
        omitted = set(layer.omit)
        for other in layer.beside:
            omitted |= set(pins(root / "layers" / other / "requirements.txt"))
        _compile(
            uv,
            [
                str(folder / "requirements.in"),
                "--constraints",
                str(root / DEV_LOCK),
                "--python-version",
                LAMBDA_PYTHON,
                "--python-platform",
                LAMBDA_PLATFORM,
                "--only-binary",
                ":all:",
                *[arg for name in sorted(omitted) for arg in ("--no-emit-package", name)],
                "--output-file",
                str(folder / "requirements.txt"),
            ],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--uv", type=Path, required=True, help="the uv executable")
    parser.add_argument("--root", type=Path, default=Path(), help="the project folder")
    args = parser.parse_args(argv)
    try:
        lock(args.uv, args.root)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(f"error: uv pip compile failed (exit {exc.returncode}); see its message above\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
