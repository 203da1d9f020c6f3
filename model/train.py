"""Train ResMem-Net on LaMem-format data (MSE + weight decay, Adam, one-cycle LR schedule).

    npx memscore preprocess data/lamem/images --splits data/lamem/splits --out data/lamem-memscore
    /usr/bin/python3 model/train.py --data-root data/lamem-memscore --split 1 --variant r50 \
        --epochs 20 --batch-size 32 --lr 1e-3 --out model/build/r50-split1.pt
    /usr/bin/python3 model/train.py --data-root data/lamem-memscore --split all --out 'model/build/r50-split{split}.pt'

The images are the worker's exact model input, written by `memscore preprocess` (lamem.py), so
the model trains on the pixels it will score in production.

Trains on train_K.txt, picks the epoch with the best Spearman rho on val_K.txt, and saves that
epoch's state_dict (torch.save(model.state_dict())), which export.py --weights accepts.
With --split all, one model per split is trained ('{split}' in --out is filled in).
"""

import argparse
import copy
import math
import os
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from evaluate import add_data_args, predict, resolve_dirs
from lamem import LaMemDataset, parse_splits, per_split, split_path
from metrics import mse, spearman
from resmemnet import ResMemNet
from weights_file import WeightsError, load_state_dict_file


def train_split(k: int, args, images_dir: str, splits_dir: str) -> None:
    torch.manual_seed(args.seed)
    train_ds = LaMemDataset(images_dir, split_path(splits_dir, "train", k), hflip=True)
    val_ds = LaMemDataset(images_dir, split_path(splits_dir, "val", k))
    train_loader = DataLoader(
        train_ds,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=len(train_ds) > args.batch_size,  # no 1-image batches (noisy BatchNorm stats)
        num_workers=args.workers,
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_loader = DataLoader(val_ds, batch_size=args.batch_size, num_workers=args.workers)

    model = ResMemNet(args.variant)
    if args.backbone_weights:
        # e.g. torchvision's ImageNet resnet50 state_dict; its fc.* keys are unused here.
        try:
            backbone = load_state_dict_file(args.backbone_weights)
        except WeightsError as error:
            raise SystemExit(f"error: {error}") from None
        missing, _ = model.backbone.load_state_dict(backbone, strict=False)
        if missing:
            raise SystemExit(f"--backbone-weights lacks {len(missing)} backbone keys, e.g. {missing[:3]}")
    model.to(args.device)
    # Adam's weight_decay is the L2 term of the objective "MSE plus weight decay".
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=len(train_loader)
    )

    out = per_split(args.out, k)
    best_rho, best_state, best_epoch = -math.inf, None, 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        model.train()
        total, count = 0.0, 0
        for x, y in train_loader:
            x, y = x.to(args.device), y.to(args.device)
            score, _ = model(x)
            loss = F.mse_loss(score, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            count += len(y)
        preds, targets = predict(model, val_loader, args.device)
        rho, val_mse = spearman(preds, targets), mse(preds, targets)
        print(
            f"split {k} epoch {epoch}/{args.epochs} train_loss {total / count:.6f} "
            f"val_spearman {rho:.4f} val_mse {val_mse:.6f} ({time.time() - t0:.1f}s)",
            flush=True,
        )
        # NaN rho (constant predictions) never beats a real one, but the first epoch is always kept.
        if best_state is None or (not math.isnan(rho) and rho > best_rho):
            best_rho = rho if not math.isnan(rho) else best_rho
            best_state = copy.deepcopy({n: t.cpu() for n, t in model.state_dict().items()})
            best_epoch = epoch
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.save(best_state, out)
    print(f"split {k}: saved epoch {best_epoch} (val_spearman {best_rho:.4f}) to {out}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--split", default="1", help="1..5, a comma list, or 'all'")
    p.add_argument("--variant", choices=["r50", "tiny"], default="r50")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3, help="peak LR of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone-weights", help="optional ImageNet ResNet-50 state_dict to start from (r50)")
    p.add_argument("--out", required=True, help="checkpoint path; '{split}' is replaced by the split number")
    args = p.parse_args(argv)
    splits = parse_splits(args.split)
    if len(splits) > 1 and "{split}" not in args.out:
        root, ext = os.path.splitext(args.out)
        args.out = f"{root}-split{{split}}{ext}"  # never overwrite one split's model with another's
    images_dir, splits_dir = resolve_dirs(args)
    for k in splits:
        train_split(k, args, images_dir, splits_dir)


if __name__ == "__main__":
    main()
