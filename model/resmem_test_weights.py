"""Random ResMem weights in the exact published key layout, for tests and benchmarks.

    /usr/bin/python3 model/resmem_test_weights.py --seed 0 --out model/build/resmem-random.pt

The file is what torch.save(model.state_dict()) of the published module would write, with
values chosen so the model behaves like a trained one where tests need it to: residual branches
scaled down and BatchNorm running statistics measured on a calibration batch (so activations
neither vanish nor explode through ResNet-152's 50 blocks, and float32 rounding is not amplified
into visible differences), fc6..fc11 scaled so each unit is active on about half the images, and
fc12 set so that scores spread over roughly 0.2..0.8 instead of sitting at one value. These are
NOT the published weights (memscore never ships or downloads those) and score nothing real.
"""

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from resmem import CONV_FEATURES, INPUT_SIZE, ResMem

CALIBRATION_IMAGES = 8
RESIDUAL_GAIN = 0.2  # bn3 weight of every bottleneck block


def calibration_images(n: int, seed: int, size: int = INPUT_SIZE) -> torch.Tensor:
    """Smooth random colour fields plus noise in [0, 1]: different enough to spread the scores."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def _without_mean(weight: torch.Tensor, x: torch.Tensor) -> None:
    """Makes every row of `weight` orthogonal to the batch's mean input, in place: otherwise a
    large image-independent part is added and cancelled again by the bias, losing float32
    precision (trained networks do not do this to themselves)."""
    mean = x.mean(dim=0)
    weight -= torch.outer(weight @ mean, mean) / (mean @ mean).clamp_min(1e-12)


def _calibrate(layer: nn.Linear, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Random weights, then each unit centred on the batch and the whole layer scaled by one
    factor, so its outputs vary by about `gain` between images. One factor per layer, not per
    unit: a unit that barely moves on a few images must not be blown up, or it explodes on the
    next image."""
    with torch.no_grad():
        nn.init.normal_(layer.weight)
        _without_mean(layer.weight, x)
        z = x @ layer.weight.T
        scale = gain / z.std(dim=0).mean().clamp_min(1e-12)
        layer.weight.mul_(scale)
        layer.bias.copy_(-(z * scale).mean(dim=0))
        return layer(x)


def make_weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = ResMem()
    x = calibration_images(CALIBRATION_IMAGES, seed + 1)
    with torch.no_grad():
        for conv in (model.conv1, model.conv2, model.conv3, model.conv4, model.conv5):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        # Each residual branch's last BatchNorm scales it down, as training tends to: a random
        # ResNet-152 with full-size branches is chaotic (a 1e-6 change of the input moved layer3's
        # output by 0.2), which would make any float32 parity check meaningless.
        f = model.features
        for block in (b for layer in (f.layer1, f.layer2, f.layer3, f.layer4) for b in layer):
            nn.init.constant_(block.bn3.weight, RESIDUAL_GAIN)
        # BatchNorm: running statistics = this batch's statistics (momentum None: a plain
        # average), measured in one training-mode pass, whose logits serve the head below.
        bns = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.features.train()
        logits = model.features(x)
        for bn in bns:
            bn.momentum = 0.1  # back to the default: nothing unusual left in the module
        model.eval()
        conv = model.conv_branch(x)

        # fc6 sees [9216 conv features | 1000 logits] of different scales: its input is taken
        # with each branch divided by its spread between images, so that both branches move the
        # hidden units; the division is then folded into fc6's weights.
        spreads = [(b - b.mean(dim=0)).std().clamp_min(1e-12) * b.shape[1] ** 0.5 for b in (conv, logits)]
        h = torch.cat((conv / spreads[0], logits / spreads[1]), dim=1)
        for i, fc in enumerate(model.hidden_layers()):
            z = _calibrate(fc, h)
            if i == 0:
                fc.weight[:, :CONV_FEATURES] /= spreads[0]
                fc.weight[:, CONV_FEATURES:] /= spreads[1]
            h = F.relu(z)
        _calibrate(model.fc12, h, gain=1.5)
    return model.state_dict()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="state_dict file to write (~527 MB)")
    args = p.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(make_weights(args.seed), args.out)
    print(f"wrote {args.out} (random ResMem weights, seed {args.seed}; not memorability)", file=sys.stderr)


if __name__ == "__main__":
    main()
