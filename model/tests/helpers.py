"""Shared test helpers."""

import os
import subprocess
import sys

import onnx

from tests import MODEL_DIR


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """Run model/<name> with the same interpreter, as a user would; fail loudly with its stderr."""
    proc = subprocess.run(
        [sys.executable, os.path.join(MODEL_DIR, name), *args], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def onnx_metadata(path: str) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(path).metadata_props}
