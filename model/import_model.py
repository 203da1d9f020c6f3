"""Import a published memorability model's weights into memscore's ONNX contract.

    /usr/bin/python3 model/import_model.py resmem --weights model.pt --out resmem.onnx

`resmem`: ResMem (Needell & Bainbridge, University of Chicago; the pip package `resmem` holds
its weights as resmem/model.pt, under the ResMem Non-commercial License). memscore never ships
or downloads those weights: you bring the file. It is loaded as untrusted input (no pickled
code runs), must fit the published architecture exactly, and its sha256 is recorded in the
ONNX metadata (memscore.weights_sha256). A file that is not the known published copy is
imported too (a fine-tuned copy is legitimate), with a note saying so.

The ONNX file computes the score and its Grad-CAM with respect to ResNet-152's layer4 output
(8x8 at 227 px) inside the graph, and records the published preprocessing (stretch to 256x256,
centre-crop 227, no normalisation) so the worker feeds it what it was trained on.
Exit status: 0 on success, 1 for an unusable weights file (one line on stderr), 2 for bad usage.
"""

import argparse
import os
import sys

import onnx
import torch

import resmem
from export import export_onnx
from weights_file import WeightsError, load_into, sha256_file

VERSION = "1.0.0"


def resmem_metadata(weights_sha256: str, trained: bool, training_data: str | None) -> dict[str, str]:
    published = weights_sha256 == resmem.PUBLISHED_SHA256
    default_data = resmem.TRAINING_DATA if published else "unknown (weights are not the published ResMem copy)"
    return {
        "memscore.name": "resmem",
        "memscore.version": VERSION,
        "memscore.input_size": str(resmem.INPUT_SIZE),
        "memscore.resize": "stretch-crop",
        "memscore.resize_size": str(resmem.RESIZE_SIZE),
        # torchvision's Resize on a PIL image is PIL's bilinear; the closest kernel the worker has is
        # libvips' linear (pixels agree exactly when no resampling happens, e.g. 256x256 inputs).
        "memscore.resize_kernel": "linear",
        "memscore.mean": "0,0,0",
        "memscore.std": "1,1,1",
        "memscore.trained": "true" if trained else "false",
        "memscore.training_data": (training_data or default_data) if trained else "none",
        "memscore.license": resmem.LICENSE,
        "memscore.weights_sha256": weights_sha256,
    }


def import_resmem(weights: str, out: str, trained: bool, training_data: str | None) -> dict[str, str]:
    sha = sha256_file(weights) if os.path.isfile(weights) else ""
    model = resmem.ResMem()
    load_into(model, weights, "ResMem")
    model.eval()
    if sha != resmem.PUBLISHED_SHA256:
        print(
            f"note: {weights} (sha256 {sha}) is not the known published ResMem model.pt "
            f"(sha256 {resmem.PUBLISHED_SHA256}); importing it as it is, e.g. a fine-tuned copy",
            file=sys.stderr,
        )
    meta = resmem_metadata(sha, trained, training_data)
    proto = export_onnx(model, meta, input_size=resmem.INPUT_SIZE)
    write_atomically(proto, out)
    return meta


def write_atomically(proto: onnx.ModelProto, out: str) -> None:
    """A reader never sees half a model: write next to the target, then rename over it."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    partial = f"{out}.{os.getpid()}.partial"
    try:
        onnx.save(proto, partial)
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["resmem"], help="which published model the weights belong to")
    p.add_argument("--weights", required=True, help="the weights file (resmem: model.pt, a state_dict)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--training-data", help="what the weights were trained on (default: the published data)")
    p.add_argument(
        "--untrained",
        action="store_true",
        help="mark the model trained=false (random test weights, e.g. model/resmem_test_weights.py)",
    )
    args = p.parse_args(argv)
    if os.path.isdir(args.out):
        p.error(f"--out {args.out} is a directory; give the ONNX file's path")
    torch.set_grad_enabled(False)
    try:
        meta = import_resmem(args.weights, args.out, not args.untrained, args.training_data)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out}: {meta['memscore.name']} {meta['memscore.version']}, input {resmem.INPUT_SIZE}x"
        f"{resmem.INPUT_SIZE}, Grad-CAM {resmem.GRID}x{resmem.GRID}, trained={meta['memscore.trained']}, "
        f"weights sha256 {meta['memscore.weights_sha256']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
