"""Smoke test of train.py -> checkpoint -> evaluate.py / export.py --weights on a synthetic
LaMem-format dataset whose score is a function of brightness."""

import json
import os
import re
import tempfile
import unittest

import numpy as np
import torch
from PIL import Image

from export import build_model
from tests.helpers import onnx_metadata, run_node, run_script

N_IMAGES = 48


def make_dataset(root: str) -> None:
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "raw"))
    os.makedirs(os.path.join(root, "splits"))
    lines = []
    for i in range(N_IMAGES):
        brightness = i / (N_IMAGES - 1)
        pixels = np.clip(brightness * 255 + rng.normal(0, 12, (48, 48, 3)), 0, 255).astype(np.uint8)
        name = f"{i:08d}.jpg"
        Image.fromarray(pixels).save(os.path.join(root, "raw", name), quality=95)
        lines.append(f"{name} {0.4 + 0.5 * brightness:.6f}\n")  # LaMem-like range 0.4..0.9
    order = rng.permutation(N_IMAGES)
    parts = {"train_1": order[:32], "val_1": order[32:40], "test_1": order[40:]}
    for split, idx in parts.items():
        with open(os.path.join(root, "splits", f"{split}.txt"), "w") as f:
            f.writelines(lines[i] for i in idx)
    # Training reads the worker's exact model input, written by `memscore preprocess`.
    run_node("packages/cli/dist/bin.js", "preprocess", "--out", os.path.join(root, "images"), os.path.join(root, "raw"))


def evaluate(root: str, weights: str) -> dict:
    """evaluate.py --json on split 1 of `root`: that split's entry."""
    proc = run_script("evaluate.py", "--data-root", root, "--weights", weights, "--splits", "1", "--json",
                      "--workers", "0", "--device", "cpu")
    (split,) = json.loads(proc.stdout)["splits"]
    return split


class TrainSmokeTest(unittest.TestCase):
    def test_train_evaluate_export(self):
        with tempfile.TemporaryDirectory() as tmp:
            make_dataset(tmp)
            ckpt = os.path.join(tmp, "tiny.pt")
            proc = run_script(
                "train.py", "--data-root", tmp, "--split", "1", "--variant", "tiny", "--epochs", "5",
                "--batch-size", "8", "--lr", "3e-3", "--weight-decay", "1e-5", "--workers", "0",
                "--seed", "0", "--out", ckpt, "--device", "cpu",
            )
            losses = [float(v) for v in re.findall(r"train_loss (\S+)", proc.stdout)]
            self.assertEqual(len(losses), 5, proc.stdout)
            self.assertLess(losses[-1], losses[0], f"training loss did not fall:\n{proc.stdout}")
            self.assertTrue(os.path.isfile(ckpt))
            # The checkpoint kept is the epoch with the best validation rho (the first, on a tie).
            val = [float(v) for v in re.findall(r"train_loss \S+ val_spearman (\S+)", proc.stdout)]
            self.assertEqual(len(val), 5, proc.stdout)
            saved = re.search(r"saved epoch (\d+) \(val_spearman (\S+)\)", proc.stdout)
            self.assertIsNotNone(saved, proc.stdout)
            self.assertEqual(int(saved.group(1)), val.index(max(val)) + 1, proc.stdout)
            self.assertAlmostEqual(float(saved.group(2)), max(val), places=4)

            trained = evaluate(tmp, ckpt)
            self.assertEqual((trained["split"], trained["n"]), (1, 8))
            # The score rises with brightness: the test split's order is recovered (a sign error or
            # predictions paired with the wrong targets would give a rho near -1 or 0) ...
            self.assertGreaterEqual(trained["spearman"], 0.7, trained)
            # ... and the weights moved toward the targets: lower error than the same network as
            # initialised (seed 0, untrained).
            untrained_ckpt = os.path.join(tmp, "untrained.pt")
            torch.save(build_model("tiny", seed=0).state_dict(), untrained_ckpt)
            untrained = evaluate(tmp, untrained_ckpt)
            self.assertLess(trained["mse"], untrained["mse"], (trained, untrained))

            onnx_path = os.path.join(tmp, "trained.onnx")
            run_script("export.py", "--variant", "tiny", "--weights", ckpt, "--out", onnx_path)
            meta = onnx_metadata(onnx_path)
            self.assertEqual(meta["memscore.trained"], "true")
            self.assertEqual(meta["memscore.training_data"], "LaMem")


if __name__ == "__main__":
    unittest.main()
