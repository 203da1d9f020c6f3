"""Scores image files with a plain PyTorch loop, as a user of model/ would write it, and times it.

    /usr/bin/python3 bench/pytorch_loop.py --images DIR [--variant r50] [--seed 0] [--threads N]
                                           [--outputs heatmaps|scores] [--out DIR]
                                           [--batch-size 16] [--json]

Per file, what memscore writes for it, done the plain way:
  PIL open, EXIF-transpose, RGB; the heatmap base at most 1024 px on the long side; the model
  input resized 224x224 (LANCZOS) and normalised; a forward pass (batch of 1);
  with --outputs heatmaps (the default): Grad-CAM of the score with respect to the last block's
  output by autograd (the last block's output, layer4's, taken as the leaf of a backward pass
  through the head only; the weights need no gradients), normalised, upsampled
  bilinearly, Turbo-coloured, blended 50% over the image and saved as JPEG quality 85, plus a
  JSON record (score, 7x7 grid) per image;
  with --outputs scores: the forward pass and a JSON record with the score only (memscore's
  `--heatmap-format none`; its records keep the grid, which this loop does not compute).
With --batch-size B > 1 a batched forward-only variant also runs (B files decoded, one forward).
Weights: build_model(variant, seed), identical to `export.py --seed`. One warm-up pass first.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))

from export import build_model  # noqa: E402

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
HEATMAP_MAX_SIDE = 1024
MODEL_SIZE = 224

# Google's Turbo colour map, the degree-5 polynomial fit memscore's colormap.ts samples.
TURBO = {
    "r": [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    "g": [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    "b": [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
}


def turbo_lut() -> np.ndarray:
    x = np.arange(256) / 255.0
    channels = [np.polyval(list(reversed(TURBO[c])), x) for c in "rgb"]
    return np.round(np.clip(np.stack(channels, axis=1), 0, 1) * 255).astype(np.uint8)


LUT = turbo_lut()


def load(path: str):
    """The heatmap base (<= 1024 px, RGB uint8) and the model input [1,3,224,224]."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    base = img.copy()
    base.thumbnail((HEATMAP_MAX_SIDE, HEATMAP_MAX_SIDE), Image.Resampling.LANCZOS)
    small = np.asarray(img.resize((MODEL_SIZE, MODEL_SIZE), Image.Resampling.LANCZOS), dtype=np.float32)
    x = torch.from_numpy((small / 255.0 - 0.5) / 0.5).permute(2, 0, 1).unsqueeze(0).contiguous()
    return np.asarray(base), x


def gradcam(model, x):
    """Score and Grad-CAM of the score w.r.t. backbone.layer4's output, by autograd.

    Done as a careful user would: the weights need no gradients, and the last block's output is
    cut from the graph below it, so the backward pass runs through the head only."""
    saved = {}

    def keep(_module, _inputs, output):
        A = output.detach().requires_grad_()
        saved["A"] = A
        return A

    # The forward runs the 16 blocks one by one: the last block's output is layer4's output.
    handle = model.blocks()[-1].register_forward_hook(keep)
    try:
        score, _ = model(x)
        score.sum().backward()
    finally:
        handle.remove()
    A = saved["A"]
    alpha = A.grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * A).sum(dim=1))  # [1, 7, 7]
    return float(score[0]), cam[0].detach()


def overlay(base: np.ndarray, cam: torch.Tensor) -> np.ndarray:
    h, w = base.shape[:2]
    top = float(cam.max())
    grid = cam / top if top > 0 else torch.zeros_like(cam)
    heat = F.interpolate(grid[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    levels = np.round(heat.clamp(0, 1).numpy() * 255).astype(np.uint8)
    return np.round(base * 0.5 + LUT[levels] * 0.5).astype(np.uint8)


def per_file_loop(model, files, outputs: str, out_dir: str):
    scores = []
    start = time.perf_counter()
    for path in files:
        name = os.path.basename(path)
        if outputs == "heatmaps":
            base, x = load(path)
            score, cam = gradcam(model, x)
            Image.fromarray(overlay(base, cam)).save(os.path.join(out_dir, f"{name}.heatmap.jpg"), quality=85)
            record = {"score": score, "gradcam": (cam / max(float(cam.max()), 1e-12)).tolist()}
        else:
            _, x = load(path)
            with torch.no_grad():
                score = float(model(x)[0][0])
            record = {"score": score}
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump(record, f)
        scores.append(score)
    return time.perf_counter() - start, scores


def batched_loop(model, files, batch_size):
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), batch_size):
            x = torch.cat([load(p)[1] for p in files[i : i + batch_size]])
            model(x)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="directory of image files")
    p.add_argument("--variant", default="r50", choices=["r50", "tiny"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--outputs", default="heatmaps", choices=["heatmaps", "scores"])
    p.add_argument("--out", help="where the outputs go (default: a temporary directory)")
    p.add_argument("--batch-size", type=int, default=0, help="also time a batched forward-only variant")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    files = sorted(
        os.path.join(args.images, f) for f in os.listdir(args.images) if f.lower().endswith(EXTENSIONS)
    )
    if not files:
        sys.exit(f"no images in {args.images}")
    model = build_model(args.variant, args.seed)
    model.eval()
    model.requires_grad_(False)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or tmp
        os.makedirs(out_dir, exist_ok=True)
        per_file_loop(model, files[:1], args.outputs, out_dir)  # warm-up
        seconds, scores = per_file_loop(model, files, args.outputs, out_dir)
    result = {
        "benchmark": "pytorch-loop",
        "inputs": {
            "images": len(files),
            "variant": args.variant,
            "seed": args.seed,
            "threads": args.threads,
            "outputs": args.outputs,
        },
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
    print(
        f"  per file, {args.outputs}: {result['per_file']['images_per_second']:.2f} images/s ({len(files)} images)"
    )
    if "batched" in result:
        print(f"  batched forward only ({args.batch_size}): {result['batched']['images_per_second']:.2f} images/s")


if __name__ == "__main__":
    main()
