"""Reference preprocessing of the model contract (shared/design.md):

RGB, resized to 224x224 WITHOUT cropping (aspect ratio is not kept), scaled to [0,1],
normalised with mean 0.5 / std 0.5 per channel, so values lie in [-1,1]; layout [3,224,224].

Resize kernel: PIL LANCZOS (Lanczos a=3), the closest PIL kernel to sharp's default
`lanczos3`. The two libraries still differ by a few grey levels on resized pixels, so exact
ONNX-vs-PyTorch parity checks should feed images that are already 224x224
(load_rgb_224_no_resize / reference.py --no-resize), where no resampling happens.

EXIF orientation is applied before resizing (like sharp's .rotate()), so the model sees the
image upright; alpha is dropped (not composited), grey/palette images are expanded to RGB.
"""

import numpy as np
import torch
from PIL import Image, ImageOps

SIZE = 224
MEAN = 0.5
STD = 0.5
RESAMPLE = Image.Resampling.LANCZOS


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB [H,W,3] -> float32 [3,H,W] with x/255 then (x-0.5)/0.5."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 [H,W,3], got {rgb.dtype} {rgb.shape}")
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0)
    x = (x - MEAN) / STD
    return x.permute(2, 0, 1).contiguous()


def _open_rgb(path: str) -> Image.Image:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")


def resize_rgb(img: Image.Image) -> Image.Image:
    """Squash to 224x224 (no crop, no letterbox) with the contract's kernel."""
    return img.resize((SIZE, SIZE), RESAMPLE)


def load_image(path: str) -> torch.Tensor:
    """Any image file -> [3,224,224] model input (resized)."""
    return to_tensor(np.asarray(resize_rgb(_open_rgb(path))))


def load_rgb_224_no_resize(path: str) -> torch.Tensor:
    """An image that is already 224x224 -> [3,224,224] model input, without resampling."""
    img = _open_rgb(path)
    if img.size != (SIZE, SIZE):
        raise ValueError(f"{path}: expected {SIZE}x{SIZE} for --no-resize, got {img.size[0]}x{img.size[1]}")
    return to_tensor(np.asarray(img))
