"""One preprocessing for training and serving: what train.py's loader yields for an image is, bit
for bit, the batch tensor the worker feeds the model, for the images where a plain decoder and
the worker disagree (non-sRGB ICC profile, alpha, EXIF rotation, CMYK, 16-bit, grey, 4000x3000);
and `memscore score` equals PyTorch run on the `memscore preprocess` output.

Needs the TypeScript build (`npm run build`), which `npm test` runs first.
"""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import torch

from export import build_model
from lamem import LaMemDataset
from preprocess import PreprocessedImages, load_image
from tests.helpers import TINY_MODEL, run_node, write_geometry_model

# The ways an image's stored pixels differ from what the model should see (train-serve-images.mjs).
IMAGES = (
    "alpha.png",
    "cmyk.jpg",
    "exif-rotated.jpg",
    "grey.png",
    "icc-display-p3.jpg",
    "large-4000x3000.jpg",
    "sixteen-bit.png",
)
# ResMem's geometry and normalisation, on a model that is cheap to run.
CROP_META = {
    "memscore.name": "crop-geometry",
    "memscore.version": "0.0.1",
    "memscore.input_size": "227",
    "memscore.resize": "stretch-crop",
    "memscore.resize_size": "256",
    "memscore.resize_kernel": "linear",
    "memscore.mean": "0,0,0",
    "memscore.std": "1,1,1",
    "memscore.trained": "false",
    "memscore.training_data": "none",
}


def as_bits(t) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(t, dtype=np.float32)).view(np.uint32)


class TrainServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="memscore-train-serve-")
        cls.images = os.path.join(cls.tmp, "images")
        run_node("model/tools/train-serve-images.mjs", cls.images)
        cls.files = [os.path.join(cls.images, name) for name in IMAGES]
        cls.split = os.path.join(cls.tmp, "test_1.txt")
        with open(cls.split, "w") as f:
            f.writelines(f"{name} {0.5 + i / 100:.6f}\n" for i, name in enumerate(IMAGES))
        cls.crop_model = os.path.join(cls.tmp, "crop.onnx")
        write_geometry_model(cls.crop_model, CROP_META)
        cls.pre, cls.worker = {}, {}
        for key, model in (("tiny", TINY_MODEL), ("crop", cls.crop_model)):
            out = os.path.join(cls.tmp, f"pre-{key}")
            run_node("packages/cli/dist/bin.js", "preprocess", "--model", model, "--out", out, cls.images)
            cls.pre[key] = out
            batch = os.path.join(cls.tmp, f"worker-{key}.f32")
            info = json.loads(run_node("model/tools/worker-batch.mjs", model, batch, *cls.files).stdout)
            size = info["inputSize"]
            cls.worker[key] = np.fromfile(batch, dtype="<f4").reshape(len(IMAGES), 3, size, size)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_train_loader_equals_worker_batch_bit_for_bit(self):
        ds = LaMemDataset(self.pre["tiny"], self.split)
        self.assertEqual(len(ds), len(IMAGES))
        for i, name in enumerate(IMAGES):
            x, _ = ds[i]
            self.assertEqual(tuple(x.shape), (3, 224, 224), name)
            np.testing.assert_array_equal(as_bits(x), as_bits(self.worker["tiny"][i]), err_msg=name)

    def test_the_comparison_can_fail(self):
        # The PIL path model/ trained on before (no colour management, alpha dropped, one resize)
        # gives other pixels for these images: the bit-for-bit check above is not vacuous.
        worst = {}
        for i, name in enumerate(IMAGES):
            levels = np.abs(load_image(self.files[i]).numpy() - self.worker["tiny"][i]) * 127.5
            worst[name] = float(levels.max())
        print(f"\n  PIL path vs worker, max difference in grey levels: {json.dumps(worst)}")
        self.assertGreater(worst["icc-display-p3.jpg"], 5)
        self.assertGreater(worst["alpha.png"], 5)

    def test_crop_geometry_loader_equals_worker_batch_bit_for_bit(self):
        images = PreprocessedImages(self.pre["crop"], mean=(0, 0, 0), std=(1, 1, 1))
        self.assertEqual(images.manifest["resize"], "stretch-crop")
        self.assertEqual(images.manifest["resize_size"], 256)
        for i, name in enumerate(IMAGES):
            x = images.load(name)
            self.assertEqual(tuple(x.shape), (3, 227, 227), name)
            np.testing.assert_array_equal(as_bits(x), as_bits(self.worker["crop"][i]), err_msg=name)
        # ResMem-Net training refuses images made for another geometry, rather than train on them.
        with self.assertRaises(SystemExit) as cm:
            LaMemDataset(self.pre["crop"], self.split)
        self.assertIn("227x227", str(cm.exception))

    def test_memscore_score_equals_pytorch_on_preprocess_output(self):
        proc = run_node("packages/cli/dist/bin.js", "score", "--json", "--provider", "cpu", "--model", TINY_MODEL, *self.files)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.assertEqual([os.path.basename(line["file"]) for line in lines], list(IMAGES))
        ds = LaMemDataset(self.pre["tiny"], self.split)
        with torch.no_grad():
            scores, _ = build_model("tiny", 0)(torch.stack([ds[i][0] for i in range(len(ds))]))
        errors = [abs(line["score"] - float(s)) for line, s in zip(lines, scores)]
        print(f"\n  memscore score vs PyTorch on the preprocess output: max |diff| {max(errors):.2e}")
        self.assertLess(max(errors), 1e-5)
        self.assertGreater(float(scores.max() - scores.min()), 1e-3, "scores must differ between images")


if __name__ == "__main__":
    unittest.main()
