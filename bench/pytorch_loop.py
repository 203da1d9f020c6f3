"""Scores image files with a plain PyTorch loop, as a user of model/ would write it, and times it.

    /usr/bin/python3 bench/pytorch_loop.py --images DIR [--variant r50] [--seed 0] [--threads N]
                                           [--batch-size 16] [--json]

Per file: PIL open, EXIF-transpose, RGB, resize 224x224 (LANCZOS), normalise, model forward
(a batch of 1). With --batch-size B > 1 a second, batched variant also runs (B files decoded,
then one forward). Weights: build_model(variant, seed), identical to `export.py --seed`.
One warm-up forward runs before timing (the ONNX benchmarks warm up too).
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))

from export import build_model  # noqa: E402
from preprocess import load_image  # noqa: E402

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def per_file_loop(model, files):
    scores = []
    start = time.perf_counter()
    with torch.no_grad():
        for path in files:
            x = load_image(path).unsqueeze(0)
            score, _gradcam = model(x)
            scores.append(float(score[0]))
    return time.perf_counter() - start, scores


def batched_loop(model, files, batch_size):
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), batch_size):
            x = torch.stack([load_image(p) for p in files[i : i + batch_size]])
            model(x)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="directory of image files")
    p.add_argument("--variant", default="r50", choices=["r50", "tiny"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch-size", type=int, default=0, help="also time a batched variant")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    files = sorted(
        os.path.join(args.images, f) for f in os.listdir(args.images) if f.lower().endswith(EXTENSIONS)
    )
    if not files:
        sys.exit(f"no images in {args.images}")
    model = build_model(args.variant, args.seed)
    with torch.no_grad():
        model(load_image(files[0]).unsqueeze(0))  # warm-up

    seconds, scores = per_file_loop(model, files)
    result = {
        "benchmark": "pytorch-loop",
        "inputs": {"images": len(files), "variant": args.variant, "seed": args.seed, "threads": args.threads},
        "torch": torch.__version__,
        "per_file": {"seconds": seconds, "images_per_second": len(files) / seconds},
        "first_scores": scores[:3],
    }
    if args.batch_size > 1:
        b_seconds = batched_loop(model, files, args.batch_size)
        result["batched"] = {
            "batch_size": args.batch_size,
            "seconds": b_seconds,
            "images_per_second": len(files) / b_seconds,
        }
    if args.json:
        print(json.dumps(result))
        return
    print(f"pytorch loop: torch {torch.__version__}, {args.variant} seed {args.seed}, {args.threads} threads")
    print(f"  per file (batch 1): {result['per_file']['images_per_second']:.2f} images/s ({len(files)} images)")
    if "batched" in result:
        print(f"  batched ({args.batch_size}): {result['batched']['images_per_second']:.2f} images/s")


if __name__ == "__main__":
    main()
