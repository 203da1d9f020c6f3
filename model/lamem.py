"""LaMem-format data: split files of `<image name> <score>` lines plus an images directory.

The five standard splits live in a splits dir as train_K.txt / val_K.txt / test_K.txt
(K = 1..5), e.g. the line `00051110.jpg 0.675000`. The images are read as `memscore preprocess`
wrote them (the worker's exact model input, see preprocess.py), so one command prepares a
dataset from the original LaMem folder:

    npx memscore preprocess data/lamem/images --splits data/lamem/splits --out data/lamem-memscore

and data/lamem-memscore is then a LaMem-format root (<name>.png images, splits/) for train.py.
"""

import os

import torch
from torch.utils.data import Dataset

from preprocess import PreprocessedImages


def read_split(path: str) -> list[tuple[str, float]]:
    items = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"{path}:{lineno}: expected '<image> <score>', got {line.strip()!r}")
            items.append((parts[0], float(parts[1])))
    return items


def split_path(splits_dir: str, kind: str, k: int) -> str:
    path = os.path.join(splits_dir, f"{kind}_{k}.txt")
    if not os.path.isfile(path):
        raise SystemExit(f"missing split file {path}")
    return path


def parse_splits(spec: str) -> list[int]:
    """'all' -> [1..5]; '1,3' -> [1, 3]."""
    ks = list(range(1, 6)) if spec == "all" else [int(s) for s in spec.split(",") if s.strip()]
    bad = [k for k in ks if not 1 <= k <= 5]
    if bad or not ks:
        raise SystemExit(f"splits must be 1..5 or 'all', got {spec!r}")
    return ks


def per_split(path: str, k: int) -> str:
    """Checkpoint path for split k: fills '{split}' if present (so one template serves all splits)."""
    return path.replace("{split}", str(k))


class LaMemDataset(Dataset):
    """Yields (image [3,224,224] per the model contract, score float32) from a `memscore
    preprocess` directory made for ResMem-Net's geometry; every listed image must be there."""

    def __init__(self, images_dir: str, split_file: str, hflip: bool = False):
        self.images = PreprocessedImages(images_dir)
        self.images.require()
        self.items = read_split(split_file)
        missing = [name for name, _ in self.items if not os.path.isfile(self.images.path(name))]
        if missing:
            raise SystemExit(
                f"{len(missing)} images of {split_file} have no preprocessed PNG in {images_dir} "
                f"(e.g. {self.images.path(missing[0])}): preprocess them, or check memscore preprocess's errors"
            )
        self.hflip = hflip  # light augmentation: training only

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        name, score = self.items[idx]
        x = self.images.load(name)
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, torch.tensor(score, dtype=torch.float32)
