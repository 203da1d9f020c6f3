"""End-to-end parity of a freshly exported r50 model: `memscore score --json` (onnxruntime-node,
sharp preprocessing) against PyTorch on real photographs (the bundled samples).

The worker's exact 224x224 RGB input is written losslessly by `memscore preprocess`, so PyTorch
sees byte-identical pixels: this checks the export, the metadata-driven
normalisation, channel order, batching and the in-graph Grad-CAM, on a full-size model.
Needs the TypeScript build (`npm run build`), which `npm test` runs first.
"""

import glob
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from export import build_model
from reference import compute
from tests import MODEL_DIR
from tests.helpers import run_script

ROOT = os.path.dirname(MODEL_DIR)
CLI = os.path.join(ROOT, "packages", "cli", "dist", "bin.js")
SAMPLES_DIR = os.path.join(ROOT, "packages", "cli", "samples")
SAMPLES = sorted(glob.glob(os.path.join(SAMPLES_DIR, "*.jpg")))


class OnnxRuntimeParityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CLI):
            raise AssertionError(f"{CLI} is missing: run `npm run build` first (npm test does)")
        if shutil.which("node") is None:
            raise AssertionError("node is not on PATH")
        cls.tmp = tempfile.mkdtemp(prefix="memscore-parity-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_r50_scores_and_gradcam_match_pytorch_on_photographs(self):
        self.assertGreaterEqual(len(SAMPLES), 5)
        model_path = os.path.join(self.tmp, "resmemnet-r50.onnx")
        run_script("export.py", "--variant", "r50", "--seed", "0", "--out", model_path)

        dumped = os.path.join(self.tmp, "preprocessed")
        subprocess.run(
            ["node", CLI, "preprocess", "--model", model_path, "--out", dumped, SAMPLES_DIR],
            check=True, capture_output=True, cwd=ROOT, timeout=120,
        )
        refs = {
            r["file"][: -len(".png")]: r
            for r in compute(build_model("r50", seed=0), sorted(glob.glob(os.path.join(dumped, "*.png"))), resize=False)
        }

        proc = subprocess.run(
            ["node", CLI, "score", "--json", "--provider", "cpu", "--model", model_path, *SAMPLES],
            capture_output=True, text=True, cwd=ROOT, timeout=300,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.assertEqual(len(lines), len(SAMPLES))
        scores = []
        for line in lines:
            ref = refs[os.path.basename(line["file"])]
            scores.append(line["score"])
            self.assertAlmostEqual(line["score"], ref["score"], delta=1e-4, msg=line["file"])
            # Shapes first: zip() below would pass a short or empty grid.
            self.assertEqual([len(r) for r in ref["gradcam_normalised"]], [7] * 7)
            self.assertEqual([len(r) for r in line["gradcam"]], [7] * 7, line["file"])
            for got_row, ref_row in zip(line["gradcam"], ref["gradcam_normalised"]):
                for got, want in zip(got_row, ref_row):
                    self.assertAlmostEqual(got, want, delta=1e-4, msg=line["file"])
        # The check means something only if the photographs get different outputs.
        self.assertGreater(max(scores) - min(scores), 1e-3)


if __name__ == "__main__":
    unittest.main()
