"""ResMem import, end to end, with random weights in the exact published key layout
(resmem_test_weights.py; the published weights are never used or downloaded):

- `memscore model import resmem` writes an ONNX model whose score equals PyTorch's to 1e-4
  (relative) and whose in-graph Grad-CAM equals autograd Grad-CAM (hook on features.layer4) to
  1e-3 of its peak, run by onnxruntime-node on the same input tensor. The autograd reference runs
  in float64: in float32, PyTorch's own Grad-CAM of one of these images was 8e-3 of its peak away
  from its float64 value on an AMD EPYC CPU, while the ONNX model's was 3e-5 away from it;
- the floor: a plain ONNX export of the same weights (no Grad-CAM) against PyTorch, which the
  Grad-CAM model must not exceed;
- `memscore score` on 256x256 images (so only the centre crop happens) equals PyTorch fed by the
  published torchvision transform.

About 4 minutes on 2 busy cores (ResNet-152 at 227 px; a 527 MB state_dict and two ONNX files
in a temporary directory). Needs the TypeScript build (`npm run build`).
"""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

import resmem
from export import export_onnx
from resmem_test_weights import calibration_images, make_weights
from tests.helpers import onnx_metadata, run_node
from weights_file import sha256_file

PUBLISHED_FILE_BYTES = 527_697_438  # size of the published model.pt (its Git LFS pointer says so)
N_IMAGES = 4


def autograd_gradcam(model: resmem.ResMem, x: torch.Tensor):
    """Textbook Grad-CAM by autograd: the hook on features.layer4 makes its output a leaf that
    keeps its gradient; channel weights are the spatial means of d score / d A."""
    store = {}

    def hook(_module, _inputs, out):
        store["A"] = out.detach().requires_grad_()
        return store["A"]

    handle = model.features.layer4.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            score, analytic = model(x)
            score.sum().backward()  # images are independent: each gets its own gradient
    finally:
        handle.remove()
    A = store["A"]
    weights = A.grad.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * A).sum(dim=1)).detach(), analytic.detach(), score.detach()


def ort_run(model_path: str, x: torch.Tensor, out_dir: str) -> dict[str, np.ndarray]:
    """Runs the ONNX file with onnxruntime-node (model/tools/ort-run.mjs) on x."""
    os.makedirs(out_dir, exist_ok=True)
    inputs = os.path.join(out_dir, "input.f32")
    x.numpy().astype("<f4").tofile(inputs)
    shapes = json.loads(run_node("model/tools/ort-run.mjs", model_path, inputs, out_dir).stdout)["outputs"]
    return {n: np.fromfile(os.path.join(out_dir, f"{n}.f32"), "<f4").reshape(s) for n, s in shapes.items()}


class ResMemImportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_grad_enabled(False)
        cls.tmp = tempfile.mkdtemp(prefix="memscore-resmem-")
        cls.state = make_weights(seed=0)
        cls.weights = os.path.join(cls.tmp, "model.pt")
        torch.save(cls.state, cls.weights)
        cls.onnx = os.path.join(cls.tmp, "resmem.onnx")
        proc = run_node(
            "packages/cli/dist/bin.js", "model", "import", "resmem", "--weights", cls.weights, "--out", cls.onnx,
            "--untrained",
        )
        cls.import_stderr = proc.stderr
        cls.model = resmem.ResMem()
        cls.model.load_state_dict(cls.state)
        cls.model.eval()
        cls.model64 = resmem.ResMem().double()
        cls.model64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in cls.state.items()})
        cls.model64.eval()
        cls.plain = os.path.join(cls.tmp, "plain.onnx")
        onnx.save(export_onnx(resmem.PublishedScore(cls.model), {}, resmem.INPUT_SIZE, ("score",)), cls.plain)
        cls.x = calibration_images(N_IMAGES, seed=99)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_weights_have_the_published_layout(self):
        # 932 entries of torchvision ResNet-152 (BatchNorm counters included), 10 of conv1..5, 14 of fc6..fc12
        self.assertEqual(len(self.state), 956)
        expected = {
            "features.conv1.weight": (64, 3, 7, 7),
            "features.layer3.35.bn3.running_var": (1024,),
            "features.fc.weight": (1000, 2048),
            "conv2.weight": (256, 24, 5, 5),  # groups=2
            "conv5.bias": (256,),
            "fc6.weight": (4096, 10216),  # [9216 conv | 1000 logits]
            "fc12.weight": (1, 256),
        }
        for key, shape in expected.items():
            self.assertEqual(tuple(self.state[key].shape), shape, key)
        # Same parameters as the published file, so within a few kB of its size (pickle framing).
        size = os.path.getsize(self.weights)
        self.assertLess(abs(size - PUBLISHED_FILE_BYTES) / PUBLISHED_FILE_BYTES, 1e-3, size)

    def test_import_records_the_contract_and_the_weights(self):
        meta = onnx_metadata(self.onnx)
        sha = sha256_file(self.weights)
        self.assertEqual(meta["memscore.name"], "resmem")
        self.assertEqual(meta["memscore.input_size"], "227")
        self.assertEqual((meta["memscore.resize"], meta["memscore.resize_size"]), ("stretch-crop", "256"))
        self.assertEqual(meta["memscore.resize_kernel"], "linear")
        self.assertEqual((meta["memscore.mean"], meta["memscore.std"]), ("0,0,0", "1,1,1"))
        self.assertEqual(meta["memscore.trained"], "false")  # --untrained: these weights are random
        self.assertEqual(meta["memscore.license"], resmem.LICENSE)
        self.assertEqual(meta["memscore.weights_sha256"], sha)
        self.assertIn("not the known published ResMem model.pt", self.import_stderr)
        graph = onnx.load(self.onnx, load_external_data=False).graph
        dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output]
        self.assertEqual(dims, [["N"], ["N", 8, 8]])

    def test_onnx_score_and_gradcam_equal_pytorch(self):
        cam32, analytic, score = autograd_gradcam(self.model, self.x)
        ref_cam = autograd_gradcam(self.model64, self.x.double())[0]
        got = ort_run(self.onnx, self.x, os.path.join(self.tmp, "ort"))
        plain = ort_run(self.plain, self.x, os.path.join(self.tmp, "ort-plain"))["score"]
        s = score.numpy().astype(np.float64)
        rel = np.abs(got["score"] - s) / np.abs(s)
        floor = np.abs(plain - s) / np.abs(s)
        cam_err = [np.abs(got["gradcam"][i] - ref_cam[i].numpy()).max() / ref_cam[i].max().item() for i in range(N_IMAGES)]
        analytic_err = [(analytic[i] - cam32[i]).abs().max().item() / cam32[i].max().item() for i in range(N_IMAGES)]
        print(
            f"\n  scores {np.round(s, 4).tolist()}; ONNX with Grad-CAM vs PyTorch: max rel {rel.max():.2e}; "
            f"floor (plain ONNX export vs PyTorch): max rel {floor.max():.2e}\n"
            f"  Grad-CAM vs float64 autograd, of its peak: ONNX {max(cam_err):.2e}; "
            f"PyTorch analytic vs float32 autograd {max(analytic_err):.2e}"
        )
        self.assertLess(rel.max(), 1e-4)
        self.assertLessEqual(rel.max(), 1.5 * floor.max() + 1e-7, "the in-graph Grad-CAM must not cost score accuracy")
        self.assertLess(max(analytic_err), 1e-4)
        self.assertLess(max(cam_err), 1e-3)
        for i in range(N_IMAGES):
            self.assertGreater(ref_cam[i].max().item(), 0, f"image {i}: all-zero CAM, the comparison is vacuous")
        self.assertGreater(s.max() - s.min(), 0.05, "scores must differ visibly between images")

    def test_memscore_score_on_256px_images_equals_pytorch(self):
        files = []
        pixels = (calibration_images(N_IMAGES, seed=7, size=resmem.RESIZE_SIZE) * 255).round().to(torch.uint8)
        for i, p in enumerate(pixels):
            files.append(os.path.join(self.tmp, f"photo{i}.png"))
            Image.fromarray(p.permute(1, 2, 0).numpy()).save(files[-1])
        # The published preprocessing, as resmem/model.py defines it.
        published = transforms.Compose((transforms.Resize((256, 256)), transforms.CenterCrop(227), transforms.ToTensor()))
        x = torch.stack([published(Image.open(f).convert("RGB")) for f in files])
        _, _, score = autograd_gradcam(self.model, x)
        ref_cam = autograd_gradcam(self.model64, x.double())[0]
        proc = run_node("packages/cli/dist/bin.js", "score", "--json", "--provider", "cpu", "--model", self.onnx, *files)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.assertEqual(len(lines), N_IMAGES)
        rel = [abs(line["score"] - float(s)) / abs(float(s)) for line, s in zip(lines, score)]
        cam_err = [
            np.abs(np.array(line["gradcam"]) - (c / c.max()).numpy()).max() for line, c in zip(lines, ref_cam)
        ]
        print(f"\n  memscore score vs PyTorch (published transform): max rel {max(rel):.2e}; normalised Grad-CAM max {max(cam_err):.2e}")
        self.assertLess(max(rel), 1e-4)
        self.assertLess(max(cam_err), 1e-3)
        self.assertEqual(np.array(lines[0]["gradcam"]).shape, (8, 8))
        self.assertGreater(float(score.max() - score.min()), 0.05, "scores must differ visibly between images")


if __name__ == "__main__":
    unittest.main()
