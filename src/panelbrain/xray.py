"""An X-Ray subsegment around a call worth one, from code that must not import the X-Ray SDK.

The data layer serves the CLI and every function, so it cannot import the SDK (~0.4 s); in a
function that traces (it built a Tracer: :mod:`panelbrain.tracing`) the SDK is loaded and enabled,
and the call gets its subsegment; anywhere else this is nothing.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def subsegment(name: str) -> Iterator[None]:
    sdk = sys.modules.get("aws_xray_sdk")
    core = sys.modules.get("aws_xray_sdk.core")
    if sdk is None or core is None or not sdk.global_sdk_config.sdk_enabled():
        yield
        return
    with core.xray_recorder.in_subsegment(name):
        yield
