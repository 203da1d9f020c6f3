"""PyTorch reference outputs for images, to check the ONNX model (e.g. from onnxruntime-node).

    /usr/bin/python3 model/reference.py --variant tiny --seed 0 --images a.png dir/ --out refs.json

The model is built exactly as export.py builds it (same seed -> same weights). Images are
scored together in batches (> 1 when there are several) so batch handling is exercised.
--no-resize takes `memscore preprocess` output (224x224 RGB PNGs, the worker's exact input) and
only normalises it, for exact parity checks; without it, images go through PIL (load_image).
"""

import argparse
import json
import os
import sys

import torch

from export import build_model
from preprocess import load_image, load_model_input

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
BATCH = 16  # bounds memory for r50 on CPU; every batch still has several images


def collect_images(paths: list[str]) -> list[str]:
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p) if f.lower().endswith(IMAGE_EXTS))
        else:
            files.append(p)
    if not files:
        raise SystemExit("no images found")
    return files


def normalise(cam: torch.Tensor) -> torch.Tensor:
    """Divide a [7,7] map by its max; an all-zero map stays zero (no division by zero)."""
    peak = cam.max()
    return cam / peak if peak > 0 else torch.zeros_like(cam)


def compute(model, files: list[str], resize: bool = True) -> list[dict]:
    load = load_image if resize else load_model_input
    results = []
    with torch.no_grad():
        for start in range(0, len(files), BATCH):
            chunk = files[start : start + BATCH]
            scores, cams = model(torch.stack([load(f) for f in chunk]))
            for f, s, cam in zip(chunk, scores, cams):
                results.append(
                    {
                        "file": os.path.basename(f),
                        "score": float(s),
                        "gradcam": cam.tolist(),
                        "gradcam_normalised": normalise(cam).tolist(),
                    }
                )
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=["r50", "tiny"], required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="state_dict from train.py (default: seeded random init)")
    p.add_argument("--images", nargs="+", required=True, help="image files and/or directories")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--no-resize", action="store_true", help="inputs are memscore preprocess output (224x224 RGB)")
    args = p.parse_args(argv)

    model = build_model(args.variant, args.seed, args.weights)
    try:
        images = compute(model, collect_images(args.images), resize=not args.no_resize)
    except ValueError as e:  # e.g. a non-224 image with --no-resize
        raise SystemExit(f"error: {e}") from None
    doc = {"variant": args.variant, "seed": args.seed, "trained": bool(args.weights), "images": images}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {args.out}: {len(images)} images", file=sys.stderr)


if __name__ == "__main__":
    main()
