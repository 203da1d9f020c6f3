"""Evaluate a trained checkpoint on LaMem test splits: Spearman rho and MSE per split and averaged.

    /usr/bin/python3 model/evaluate.py --data-root data/lamem-memscore --weights ckpt.pt --splits 1,2,3,4,5
    /usr/bin/python3 model/evaluate.py --data-root data/lamem-memscore --weights 'r50-split{split}.pt' --json

'{split}' in --weights is replaced by the split number, for the usual protocol of one model per
split (train.py --split all writes such files). The variant is read from the checkpoint.
"""

import argparse
import json
import math
import os

import torch
from torch.utils.data import DataLoader

from lamem import LaMemDataset, parse_splits, per_split, split_path
from metrics import mse, spearman
from resmemnet import model_from_weights


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-root",
        required=True,
        help="LaMem root prepared by `memscore preprocess` (images in DATA_ROOT/images or DATA_ROOT)",
    )
    p.add_argument("--splits-dir", help="default: DATA_ROOT/splits")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def resolve_dirs(args) -> tuple[str, str]:
    images = os.path.join(args.data_root, "images")
    images = images if os.path.isdir(images) else args.data_root
    return images, args.splits_dir or os.path.join(args.data_root, "splits")


def predict(model, loader, device) -> tuple[list[float], list[float]]:
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for x, y in loader:
            score, _ = model(x.to(device))
            preds += score.cpu().tolist()
            targets += y.tolist()
    return preds, targets


def evaluate_split(model, images_dir, splits_dir, k, args) -> dict:
    ds = LaMemDataset(images_dir, split_path(splits_dir, "test", k))
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)
    preds, targets = predict(model, loader, args.device)
    return {"split": k, "n": len(ds), "spearman": spearman(preds, targets), "mse": mse(preds, targets)}


def _json_safe(d: dict) -> dict:
    """NaN (rho of constant predictions) is not valid JSON; report it as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--weights", required=True, help="state_dict; '{split}' is replaced per split")
    p.add_argument("--splits", default="all", help="comma-separated split numbers, or 'all'")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    args = p.parse_args(argv)
    images_dir, splits_dir = resolve_dirs(args)

    results = []
    for k in parse_splits(args.splits):
        model = model_from_weights(per_split(args.weights, k))
        model.to(args.device)
        r = evaluate_split(model, images_dir, splits_dir, k, args)
        results.append(r)
        if not args.json:
            print(f"split {k}: n={r['n']} spearman={r['spearman']:.4f} mse={r['mse']:.5f}", flush=True)

    mean = {m: sum(r[m] for r in results) / len(results) for m in ("spearman", "mse")}
    if args.json:
        doc = {"splits": [_json_safe(r) for r in results], "mean": _json_safe(mean)}
        print(json.dumps(doc, indent=1))
    else:
        print(f"mean over {len(results)} split(s): spearman={mean['spearman']:.4f} mse={mean['mse']:.5f}")


if __name__ == "__main__":
    main()
