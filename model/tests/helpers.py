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


ROOT = os.path.dirname(MODEL_DIR)
CLI = os.path.join(ROOT, "packages", "cli", "dist", "bin.js")
TINY_MODEL = os.path.join(ROOT, "packages", "worker", "models", "resmemnet-tiny.onnx")


def run_node(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run node with ARGS from the repository root (the CLI needs `npm run build`); fail loudly."""
    if not os.path.exists(CLI):
        raise AssertionError(f"{CLI} is missing: run `npm run build` first (npm test does)")
    proc = subprocess.run(["node", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"node {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def write_geometry_model(path: str, meta: dict[str, str]) -> None:
    """A tiny ONNX model that meets the contract for the metadata's input size (score = mean of
    the image, gradcam = zeros): for tests of the geometry and normalisation a model asks for."""
    from onnx import TensorProto, helper

    size = int(meta["memscore.input_size"])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    gradcam = helper.make_tensor_value_info("gradcam", TensorProto.FLOAT, ["N", 4, 4])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["score"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["patch"]),
        helper.make_node("ReduceSum", ["patch", "channel"], ["patch_sum"], keepdims=0),
        helper.make_node("Mul", ["patch_sum", "zero"], ["gradcam"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [2], [0, 0]),
        helper.make_tensor("ends", TensorProto.INT64, [2], [4, 4]),
        helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("channel", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    graph = helper.make_graph(nodes, "geometry", [image], [score, gradcam], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, path)
