"""Export ResMem-Net to ONNX following the model contract in shared/design.md.

    /usr/bin/python3 model/export.py --variant tiny --seed 0 --out resmemnet-tiny.onnx
    /usr/bin/python3 model/export.py --variant r50 --seed 0 --weights ckpt.pt --out resmemnet-r50.onnx
    /usr/bin/python3 model/export.py --variant r50 --seed 0 --precision fp16 --out resmemnet-r50-fp16.onnx

Input `image` float32 [N,3,224,224]; outputs `score` [N] and `gradcam` [N,7,7]; N is dynamic.
With --precision fp16 the convolutional backbone runs in float16 (tensor cores on a GPU); the
input and outputs stay float32, and so does everything that reads the backbone's outputs: the
16 pooled projections, the LSTM, the score and the analytic Grad-CAM.
Without --weights the model is randomly initialised (memscore.trained=false): its scores are
NOT memorability, the file only exercises the pipeline.
"""

import argparse
import inspect
import io
import os
import sys
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import preprocess
from resmemnet import ResMemNet, load_weights

VERSION = "1.0.0"
INPUT_SIZE = preprocess.SIZE
# opset 17 is the newest torch 1.13 can emit; onnxruntime-node supports it.
OPSET = 17


def build_model(variant: str, seed: int, weights: str | None = None) -> ResMemNet:
    """Seeded model in eval mode (BatchNorm uses running stats, so it folds into the convs)."""
    torch.manual_seed(seed)
    model = ResMemNet(variant)
    if weights:
        load_weights(model, weights)
    return model.eval()


def metadata(variant: str, trained: bool, training_data: str, weights_license: str) -> dict[str, str]:
    return {
        "memscore.name": f"resmemnet-{variant}",
        "memscore.version": VERSION,
        "memscore.input_size": str(INPUT_SIZE),
        "memscore.resize": preprocess.RESIZE,
        "memscore.resize_kernel": preprocess.RESIZE_KERNEL,
        "memscore.mean": ",".join(map(str, preprocess.MEAN)),
        "memscore.std": ",".join(map(str, preprocess.STD)),
        "memscore.trained": "true" if trained else "false",
        "memscore.training_data": training_data if trained else "none",
        "memscore.license": weights_license if trained else "none (seeded random initialisation)",
    }


def export_onnx(
    model: torch.nn.Module,
    meta: dict[str, str],
    input_size: int = INPUT_SIZE,
    output_names: tuple[str, ...] = ("score", "gradcam"),
) -> onnx.ModelProto:
    """Any model with the contract's signature (image [N,3,S,S] -> score [N], gradcam [N,G,G])
    as a checked ONNX ModelProto with `meta` as its metadata_props, byte-deterministic."""
    # A batch of 2 for tracing, so nothing batch-specific (e.g. a squeezed size-1 axis)
    # gets baked into the graph; the batch axis is declared dynamic anyway.
    dummy = torch.zeros(2, 3, input_size, input_size)
    # torch.onnx.export restores the module's training flag afterwards, recursively: a wrapper
    # left in training mode would put the wrapped model back into training mode (BatchNorm on
    # batch statistics) for whoever uses it next.
    model.eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter's notes on constant folding and shape inference are about its
        # internals; the graph is checked below and tested against PyTorch (model/tests).
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        # local_response_norm's `if input.numel() == 0` (ResMem): never true for an image batch.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.functional")
        torch.onnx.export(
            model,
            dummy,
            buf,
            input_names=["image"],
            output_names=list(output_names),
            dynamic_axes={"image": {0: "N"}, **{name: {0: "N"} for name in output_names}},
            opset_version=OPSET,
            do_constant_folding=True,
            # torch >= 2.9 defaults to the dynamo exporter; the graph here is made for the
            # TorchScript exporter (deterministic bytes, opset 17), so ask for it explicitly.
            **({"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}),
        )
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    for key, value in meta.items():  # dicts keep insertion order -> deterministic bytes
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    return proto


# Operators of the convolutional backbone (BatchNorm is folded into Conv by the export).
BACKBONE_OPS = {"Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool"}


def backbone_to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Runs the backbone of an exported fp32 graph in float16, keeping the contract's float32 I/O.

    The backbone is found by data flow: the Conv/Relu/Add/MaxPool nodes reached from the input
    through such nodes only, plus the GlobalAveragePool nodes that read them. A pooled vector is
    where the head begins (its 1x1 projection, the LSTM, the score and the Grad-CAM stay float32),
    so pooling outputs are cast back to float32 and not followed. Every other reader of a float16
    tensor (the Grad-CAM reads the last block's output) gets a Cast to float32 too; Shape reads
    either type. Conv weights and biases become float16 copies.
    """
    graph = proto.graph
    image = graph.input[0].name
    initializers = {i.name: i for i in graph.initializer}
    # The exporter shares equal constants through Identity nodes: resolve them to the initializer.
    aliases = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers}

    def constant(name: str) -> str | None:
        return name if name in initializers else aliases.get(name)

    half: set[str] = set()  # tensors computed in float16
    followed: set[str] = {image}  # float16 tensors whose readers may join the backbone
    backbone: set[int] = set()
    for index, node in enumerate(graph.node):
        data = [i for i in node.input if i and constant(i) is None]
        if node.op_type in BACKBONE_OPS and data and all(d in followed for d in data):
            backbone.add(index)
            half.update(node.output)
            if node.op_type != "GlobalAveragePool":
                followed.update(node.output)
    if not backbone:
        raise SystemExit("--precision fp16: found no convolutional backbone reading the input")

    new_initializers = []
    nodes = [helper.make_node("Cast", [image], [f"{image}_fp16"], to=TensorProto.FLOAT16, name="cast_input_fp16")]
    fp32_copy = {t: f"{t}_fp32" for t in half}
    needs_fp32: set[str] = set()
    for index, node in enumerate(graph.node):
        if index in backbone:
            for k, name in enumerate(node.input):
                if name == image:
                    node.input[k] = f"{image}_fp16"
                elif constant(name) is not None:
                    source = initializers[constant(name)]
                    copy = numpy_helper.from_array(numpy_helper.to_array(source).astype(np.float16), f"{source.name}_fp16")
                    if copy.name not in {i.name for i in new_initializers}:
                        new_initializers.append(copy)
                    node.input[k] = copy.name
        elif node.op_type != "Shape":
            for k, name in enumerate(node.input):
                if name in half:
                    node.input[k] = fp32_copy[name]
                    needs_fp32.add(name)
        nodes.append(node)
    # Casts to float32 right after the node that produces each tensor (keeps topological order).
    ordered = []
    for node in nodes:
        ordered.append(node)
        for out in node.output:
            if out in needs_fp32:
                ordered.append(helper.make_node("Cast", [out], [fp32_copy[out]], to=TensorProto.FLOAT, name=f"cast_{out}_fp32"))
    del graph.node[:]
    graph.node.extend(ordered)
    graph.initializer.extend(new_initializers)
    # Drop what no node reads any more (the float32 originals of converted weights, unused Identity).
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        unused = [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in read]
        if not unused:
            break
        for n in unused:
            graph.node.remove(n)
    read = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]  # element types changed; checker and runtime infer them again
    onnx.checker.check_model(proto, full_check=True)
    return proto


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=["r50", "tiny"], required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--weights", help="state_dict saved by torch.save(model.state_dict(), f) (train.py)")
    p.add_argument("--training-data", default="LaMem", help="recorded in metadata when --weights is given")
    p.add_argument(
        "--license",
        default="unspecified",
        help="licence of the weights, recorded in metadata when --weights is given (LaMem has its own terms)",
    )
    p.add_argument("--save-weights", help="also write the state_dict that was exported")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="fp16: the convolutional backbone in float16; input and outputs stay float32")
    args = p.parse_args(argv)

    model = build_model(args.variant, args.seed, args.weights)
    proto = export_onnx(model, metadata(args.variant, bool(args.weights), args.training_data, args.license))
    if args.precision == "fp16":
        proto = backbone_to_fp16(proto)
    # `npm run model:build` writes under model/build/, which a fresh clone does not have.
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    onnx.save(proto, args.out)
    if args.save_weights:
        torch.save(model.state_dict(), args.save_weights)
    print(
        f"wrote {args.out} ({args.variant}, seed {args.seed}, {args.precision}, trained={bool(args.weights)})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
