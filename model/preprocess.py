"""The model's input for PyTorch: the worker's exact pixels, normalised bit for bit as the worker does.

Preprocessing has one definition, the worker's (shared/design.md): EXIF orientation, ICC profile
-> sRGB, alpha over white, any depth or colour space -> 8-bit sRGB, then the model's resize
geometry. `npx memscore preprocess IMAGES --out DIR` writes each image's result as a lossless
S x S RGB PNG, DIR/<name>.png, plus DIR/memscore-preprocess.json (the model and geometry it was
made for). Training, evaluation and references read those PNGs (PreprocessedImages) and only
normalise them, with the worker's formula (rgbToTensor in packages/worker/src/preprocess.ts):
x * (1 / (255 * std)) + (-mean / std) in float64, rounded to float32, so the tensors are the very
bits the worker feeds the model. No PIL resampling, colour handling or alpha handling happens here.

ResMem-Net's contract: 224 x 224, stretched without cropping (Lanczos 3), mean 0.5, std 0.5.

load_image() is not that path: it is the plain PIL pipeline of a user's own PyTorch loop
(bench/pytorch_loop.py compares memscore against one), with PIL's resampling and no colour
management, so its pixels differ from the worker's by a few grey levels or more.
"""

import json
import os

import numpy as np
import torch
from PIL import Image, ImageOps

SIZE = 224
MEAN = STD = (0.5, 0.5, 0.5)
# ResMem-Net's resize geometry, as memscore.* metadata and memscore-preprocess.json name it.
RESIZE = "stretch"
RESIZE_KERNEL = "lanczos3"
MANIFEST = "memscore-preprocess.json"
RESAMPLE = Image.Resampling.LANCZOS


def to_tensor(rgb: np.ndarray, mean=MEAN, std=STD) -> torch.Tensor:
    """uint8 RGB [H,W,3] -> float32 [3,H,W], bit for bit the worker's rgbToTensor."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 [H,W,3], got {rgb.dtype} {rgb.shape}")
    x = rgb.astype(np.float64)
    out = np.empty((3, rgb.shape[0], rgb.shape[1]), dtype=np.float32)
    for c in range(3):
        # Same operations in the same order as the TypeScript: one multiply, one add, in float64.
        scale = 1 / (255 * float(std[c]))
        shift = -float(mean[c]) / float(std[c])
        out[c] = x[:, :, c] * scale + shift
    return torch.from_numpy(out)


def load_model_input(path: str, size: int = SIZE, mean=MEAN, std=STD) -> torch.Tensor:
    """A `memscore preprocess` PNG (size x size, 8-bit RGB) -> [3,size,size], no resampling."""
    with Image.open(path) as img:
        if img.mode != "RGB" or img.size != (size, size):
            raise ValueError(
                f"{path}: expected a {size}x{size} RGB image (memscore preprocess output), "
                f"got {img.size[0]}x{img.size[1]} {img.mode}"
            )
        return to_tensor(np.asarray(img), mean, std)


class PreprocessedImages:
    """A directory written by `memscore preprocess`: its manifest, and each image's input tensor."""

    def __init__(self, directory: str, mean=MEAN, std=STD):
        path = os.path.join(directory, MANIFEST)
        if not os.path.isfile(path):
            raise SystemExit(
                f"{directory} has no {MANIFEST}: training and evaluation read the worker's exact pixels; "
                f"prepare them with `npx memscore preprocess IMAGES --out {directory}`"
            )
        with open(path) as f:
            self.manifest = json.load(f)
        self.directory = directory
        self.size = int(self.manifest["input_size"])
        self.mean, self.std = mean, std

    def require(self, size: int = SIZE, resize: str = RESIZE, kernel: str = RESIZE_KERNEL, what: str = "ResMem-Net") -> None:
        """Refuses images made for another geometry than the model's being trained/evaluated."""
        m = self.manifest
        got = (m["input_size"], m["resize"], m["resize_kernel"])
        if got != (size, resize, kernel):
            raise SystemExit(
                f"{self.directory} was preprocessed for {m['model']['name']} ({got[0]}x{got[0]}, {got[1]}, {got[2]}), "
                f"but {what} takes {size}x{size}, {resize}, {kernel}: rerun memscore preprocess with a {what} model"
            )

    def path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.png")

    def load(self, name: str) -> torch.Tensor:
        return load_model_input(self.path(name), self.size, self.mean, self.std)


def _open_rgb(path: str) -> Image.Image:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")


def load_image(path: str) -> torch.Tensor:
    """Any image file -> [3,224,224] with PIL (the plain PyTorch loop's preprocessing, see above)."""
    return to_tensor(np.asarray(_open_rgb(path).resize((SIZE, SIZE), RESAMPLE)))
