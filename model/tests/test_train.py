"""Smoke test of train.py -> checkpoint -> evaluate.py / export.py --weights on a synthetic
LaMem-format dataset whose score is a function of brightness."""

import json
import math
import os
import re
import tempfile
import unittest

import numpy as np
from PIL import Image

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
            self.assertIn("val_spearman", proc.stdout)
            self.assertTrue(os.path.isfile(ckpt))

            proc = run_script("evaluate.py", "--data-root", tmp, "--weights", ckpt, "--splits", "1", "--json",
                              "--workers", "0", "--device", "cpu")
            doc = json.loads(proc.stdout)
            (split,) = doc["splits"]
            self.assertEqual((split["split"], split["n"]), (1, 8))
            self.assertTrue(math.isfinite(split["spearman"]) and -1 <= split["spearman"] <= 1, doc)
            self.assertTrue(math.isfinite(split["mse"]) and split["mse"] >= 0, doc)

            onnx_path = os.path.join(tmp, "trained.onnx")
            run_script("export.py", "--variant", "tiny", "--weights", ckpt, "--out", onnx_path)
            meta = onnx_metadata(onnx_path)
            self.assertEqual(meta["memscore.trained"], "true")
            self.assertEqual(meta["memscore.training_data"], "LaMem")


if __name__ == "__main__":
    unittest.main()
