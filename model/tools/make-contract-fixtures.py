"""Writes tiny ONNX models that break the memscore model contract in one way each, for the
worker's contract-checking tests (test/fixtures/models/), and one that keeps the contract but
never finishes a batch (stalls-mid-batch: the inference watchdog's test).
Run: /usr/bin/python3 model/tools/make-contract-fixtures.py"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

OUT = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/models"
GOOD_META = {
    "memscore.name": "contract-fixture",
    "memscore.version": "0.0.1",
    "memscore.input_size": "224",
    "memscore.mean": "0.5,0.5,0.5",
    "memscore.std": "0.5,0.5,0.5",
    "memscore.trained": "false",
    "memscore.training_data": "none",
}


def model(input_shape, gradcam_shape, meta, name, score_shape=("N",)):
    """score = mean(image) per sample; gradcam = zeros of gradcam_shape (batch kept dynamic)."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, list(score_shape))
    gradcam = helper.make_tensor_value_info("gradcam", TensorProto.FLOAT, gradcam_shape)
    if len(score_shape) == 1:
        score_nodes = [helper.make_node("ReduceMean", ["image"], ["score"], axes=[1, 2, 3], keepdims=0)]
    else:  # [N, 1]: the mean kept as [N,1,1,1], then flattened from axis 1
        score_nodes = [
            helper.make_node("ReduceMean", ["image"], ["image_mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Flatten", ["image_mean"], ["score"], axis=1),
        ]
    nodes = [
        *score_nodes,
        # gradcam = zeros shaped [N, g, g]: take a slice of the image and multiply by 0
        helper.make_node("Slice", ["image", "starts", "ends", "slice_axes"], ["patch"]),
        helper.make_node("ReduceSum", ["patch", "ch"], ["patch_sum"], keepdims=0),
        helper.make_node("Mul", ["patch_sum", "zero"], ["gradcam"]),
    ]
    # The graph computes the declared grid shape, so ONNX Runtime reports that shape as it is.
    rows, cols = (d if isinstance(d, int) else 7 for d in gradcam_shape[1:])
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [2], [0, 0]),
        helper.make_tensor("ends", TensorProto.INT64, [2], [rows, cols]),
        helper.make_tensor("slice_axes", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("ch", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    graph = helper.make_graph(nodes, name, [image], [score, gradcam], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, name + ".onnx"))


# ResMem's geometry (stretch to 256, centre-crop 227, linear, no normalisation), 8x8 grid: the
# score, the mean of the input, tells which pixels the model was given.
CROP_META = {
    **GOOD_META,
    "memscore.name": "geometry-crop-fixture",
    "memscore.input_size": "227",
    "memscore.resize": "stretch-crop",
    "memscore.resize_size": "256",
    "memscore.resize_kernel": "linear",
    "memscore.mean": "0,0,0",
    "memscore.std": "1,1,1",
    "memscore.license": "test fixture licence",
}


def stalling_model(name):
    """contract-ok, but the score goes through a Loop of 2**62 iterations: it loads like any
    model and every batch then runs in native code without end, as on a hung GPU."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    gradcam = helper.make_tensor_value_info("gradcam", TensorProto.FLOAT, ["N", 7, 7])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "zero"], ["v_out"]),
        ],
        "spin",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["N"]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["N"]),
        ],
        initializer=[helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])],
    )
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Loop", ["trips", "always", "mean"], ["score"], body=body),
        helper.make_node("Slice", ["image", "starts", "ends", "slice_axes"], ["patch"]),
        helper.make_node("ReduceSum", ["patch", "ch"], ["patch_sum"], keepdims=0),
        helper.make_node("Mul", ["patch_sum", "zero"], ["gradcam"]),
    ]
    inits = [
        helper.make_tensor("trips", TensorProto.INT64, [], [2**62]),
        helper.make_tensor("always", TensorProto.BOOL, [], [True]),
        helper.make_tensor("starts", TensorProto.INT64, [2], [0, 0]),
        helper.make_tensor("ends", TensorProto.INT64, [2], [7, 7]),
        helper.make_tensor("slice_axes", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("ch", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    graph = helper.make_graph(nodes, name, [image], [score, gradcam], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in {**GOOD_META, "memscore.name": "stalls-mid-batch"}.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, name + ".onnx"))


os.makedirs(OUT, exist_ok=True)
model(["N", 3, 227, 227], ["N", 8, 8], CROP_META, "geometry-crop")
model(["N", 3, 224, 224], ["N", 7, 7], GOOD_META, "contract-ok")
model(["N", 3, 128, 128], ["N", 7, 7], GOOD_META, "wrong-input-size")
model(["N", 3, 224, 224], ["N", 7, 7], {k: v for k, v in GOOD_META.items() if k != "memscore.mean"}, "missing-mean")
model([1, 3, 224, 224], ["N", 7, 7], GOOD_META, "static-batch")
# Outputs of another shape than the contract's: a grid that is not square, a score per image that is not a scalar.
model(["N", 3, 224, 224], ["N", 7, 5], GOOD_META, "wrong-gradcam-shape")
model(["N", 3, 224, 224], ["N", 7, 7], GOOD_META, "wrong-score-shape", score_shape=("N", 1))
stalling_model("stalls-mid-batch")
print("wrote", OUT)
