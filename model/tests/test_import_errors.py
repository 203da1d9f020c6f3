"""A weights file is untrusted input: every way it can be unusable gives one clear line on stderr
and a non-zero exit, and no ONNX file (model/import_model.py and `memscore model import`).

The files here have ResMem's exact key layout, but every tensor is one zero broadcast to its
shape (torch.save keeps one element per tensor), so they are a few hundred kB, not 527 MB.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch

import resmem
from tests import MODEL_DIR
from tests.helpers import CLI, ROOT

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    f"oid sha256:{resmem.PUBLISHED_SHA256}\n"
    "size 527697438\n"
)


def layout() -> dict[str, torch.Tensor]:
    """ResMem's published state_dict keys and shapes, each tensor a broadcast zero."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in resmem.ResMem().state_dict().items()}


class ImportErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="memscore-import-errors-")
        state = layout()
        cls.files = {}

        def save(name, obj):
            cls.files[name] = os.path.join(cls.tmp, name)
            torch.save(obj, cls.files[name])

        save("missing-key.pt", {k: v for k, v in state.items() if k != "fc12.bias"})
        save("wrong-shape.pt", {**state, "fc6.weight": torch.zeros(()).expand(4096, 9216)})
        save("complete.pt", state)
        with open(cls.files["complete.pt"], "rb") as f:
            whole = f.read()
        cls.files["truncated.pt"] = os.path.join(cls.tmp, "truncated.pt")
        with open(cls.files["truncated.pt"], "wb") as f:
            f.write(whole[: len(whole) // 2])
        cls.files["model.pt"] = os.path.join(cls.tmp, "model.pt")  # a Git LFS checkout without `git lfs pull`
        with open(cls.files["model.pt"], "w") as f:
            f.write(LFS_POINTER)
        save("pickled-module.pt", torch.nn.Linear(2, 2))  # a whole module: loading it would run code
        save("not-tensors.pt", {**state, "fc12.bias": "zero"})

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def import_model(self, name: str) -> subprocess.CompletedProcess:
        out = os.path.join(self.tmp, f"{name}.onnx")
        proc = subprocess.run(
            [sys.executable, os.path.join(MODEL_DIR, "import_model.py"), "resmem", "--weights", self.files[name], "--out", out],
            capture_output=True, text=True, timeout=300,
        )
        self.assertFalse(os.path.exists(out), f"{name}: an ONNX file was written")
        return proc

    def check_one_line(self, name: str, *fragments: str) -> None:
        proc = self.import_model(name)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith(f"error: {self.files[name]} "), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def test_truncated_file(self):
        self.check_one_line("truncated.pt", "is truncated or not a PyTorch weights file")

    def test_missing_key(self):
        self.check_one_line("missing-key.pt", "is not a ResMem state_dict", "1 missing key (fc12.bias)")

    def test_wrong_shape(self):
        self.check_one_line("wrong-shape.pt", "1 wrong shape (fc6.weight is [4096, 9216], expected [4096, 10216])")

    def test_git_lfs_pointer(self):
        self.check_one_line("model.pt", "is a Git LFS pointer", "527,697,438 bytes", "git lfs pull")

    def test_pickled_module_is_not_loaded(self):
        self.check_one_line("pickled-module.pt", "more than a plain state_dict", "torch.nn.modules.linear.Linear")

    def test_entry_that_is_not_a_tensor(self):
        self.check_one_line("not-tensors.pt", "entry 'fc12.bias' is a str, not a tensor")

    def test_front_door_passes_the_error_and_status_through(self):
        out = os.path.join(self.tmp, "front-door.onnx")
        proc = subprocess.run(
            ["node", CLI, "model", "import", "resmem", "--weights", self.files["model.pt"], "--out", out],
            capture_output=True, text=True, cwd=ROOT, timeout=300,
        )
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertIn("is a Git LFS pointer", proc.stderr)
        self.assertFalse(os.path.exists(out))

    def test_front_door_says_what_to_install_without_pytorch(self):
        no_torch = os.path.join(self.tmp, "python-without-torch")
        with open(no_torch, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")  # a Python whose `import torch` fails
        os.chmod(no_torch, 0o755)
        for python in (no_torch, os.path.join(self.tmp, "no-such-python")):
            proc = subprocess.run(
                ["node", CLI, "model", "import", "resmem", "--python", python, "--weights", self.files["complete.pt"],
                 "--out", os.path.join(self.tmp, "x.onnx")],
                capture_output=True, text=True, cwd=ROOT, timeout=60,
            )
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn("apt-get install python3-torch python3-torchvision python3-onnx", proc.stderr)
            self.assertIn("pip install torch torchvision onnx", proc.stderr)

    def test_front_door_usage_errors(self):
        for args, message in (
            (["model", "import", "vgg", "--weights", "w.pt", "--out", "o.onnx"], 'unknown model "vgg"'),
            (["model", "import", "resmem", "--out", "o.onnx"], "--weights FILE is required"),
            (["model", "export"], 'unknown action "export"'),
            (["model", "import", "resmem", "--weights", "w.pt", "--out", "o.onnx", "--bogus"], "Unknown option '--bogus'"),
        ):
            proc = subprocess.run(["node", CLI, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
            self.assertEqual(proc.returncode, 2, f"{args}: {proc.stderr}")
            self.assertIn(message, proc.stderr.splitlines()[0], args)


if __name__ == "__main__":
    unittest.main()
