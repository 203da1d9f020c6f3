"""preprocess.py and reference.py: contract normalisation, no-resize path, JSON shape."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from PIL import Image

from export import build_model
from preprocess import load_model_input, to_tensor
from tests import MODEL_DIR
from tests.helpers import run_script


def write_image(path: str, w: int, h: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


class PreprocessTest(unittest.TestCase):
    def test_normalisation(self):
        x = to_tensor(np.array([[[0, 255, 51]]], dtype=np.uint8))
        self.assertEqual(tuple(x.shape), (3, 1, 1))
        np.testing.assert_allclose(x.flatten().numpy(), [-1.0, 1.0, 51 / 255 * 2 - 1], rtol=0, atol=1e-7)

    def test_float64_formula_rounded_once(self):
        # The worker computes x*(1/(255*std)) + (-mean/std) in float64 and rounds to float32;
        # computing in float32 throughout gives other bits for some pixel values.
        pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        got = to_tensor(pixels, mean, std).numpy()
        for c in range(3):
            want = (pixels[:, :, c].astype(np.float64) * (1 / (255 * std[c])) + (-mean[c] / std[c])).astype(np.float32)
            np.testing.assert_array_equal(got[c].view(np.uint32), want.view(np.uint32))
        float32_way = ((pixels.astype(np.float32) / 255 - np.float32(mean[0])) / np.float32(std[0]))[:, :, 0]
        self.assertFalse(np.array_equal(got[0], float32_way), "the test cannot tell the formulas apart")

    def test_rejects_non_uint8(self):
        with self.assertRaises(ValueError):
            to_tensor(np.zeros((2, 2, 3), dtype=np.float32))


class ReferenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir224 = os.path.join(cls.tmp.name, "224")
        os.mkdir(cls.dir224)
        for i in range(3):
            write_image(os.path.join(cls.dir224, f"img{i}.png"), 224, 224, i)
        cls.odd = os.path.join(cls.tmp.name, "odd.png")
        write_image(cls.odd, 300, 200, 9)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_no_resize_json_matches_model(self):
        out = os.path.join(self.tmp.name, "refs.json")
        run_script("reference.py", "--variant", "tiny", "--seed", "0", "--images", self.dir224, "--out", out, "--no-resize")
        with open(out) as f:
            doc = json.load(f)
        self.assertEqual((doc["variant"], doc["seed"], doc["trained"]), ("tiny", 0, False))
        self.assertEqual([im["file"] for im in doc["images"]], ["img0.png", "img1.png", "img2.png"])

        model = build_model("tiny", 0)
        x = torch.stack([load_model_input(os.path.join(self.dir224, im["file"])) for im in doc["images"]])
        with torch.no_grad():
            scores, cams = model(x)
        for im, s, cam in zip(doc["images"], scores, cams):
            self.assertAlmostEqual(im["score"], float(s), places=5)
            raw = np.array(im["gradcam"])
            self.assertEqual(raw.shape, (7, 7))
            np.testing.assert_allclose(raw, cam.numpy(), rtol=1e-4, atol=1e-7)
            norm = np.array(im["gradcam_normalised"])
            if raw.max() > 0:
                self.assertAlmostEqual(norm.max(), 1.0, places=6)
                np.testing.assert_allclose(norm, raw / raw.max(), rtol=1e-6)
            else:
                self.assertEqual(norm.max(), 0.0)
        self.assertGreater(len({im["score"] for im in doc["images"]}), 1, "scores should differ between images")

    def test_no_resize_rejects_other_sizes(self):
        proc = subprocess.run(
            [sys.executable, os.path.join(MODEL_DIR, "reference.py"), "--variant", "tiny", "--images", self.odd,
             "--out", os.path.join(self.tmp.name, "x.json"), "--no-resize"],
            capture_output=True, text=True,
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("expected a 224x224 RGB image", proc.stderr)

    def test_resize_path(self):
        out = os.path.join(self.tmp.name, "resized.json")
        run_script("reference.py", "--variant", "tiny", "--images", self.odd, self.dir224, "--out", out)
        with open(out) as f:
            doc = json.load(f)
        self.assertEqual(len(doc["images"]), 4)
        self.assertEqual(doc["images"][0]["file"], "odd.png")


if __name__ == "__main__":
    unittest.main()
