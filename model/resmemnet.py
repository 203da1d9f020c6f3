"""ResMem-Net: a ResNet bottleneck backbone whose 16 block outputs feed an LSTM.

Each of the 16 bottleneck blocks' outputs is global-average-pooled and projected by
its own 1x1 convolution to 128 channels; the 16 vectors, in block order, are the input
sequence of a one-layer LSTM (input 128, hidden 128) with a learned initial state; a
linear layer maps the last hidden state to the memorability score.

forward() also returns the Grad-CAM of the score with respect to the last block's output
(= backbone.layer4 output), computed analytically so it exports to ONNX as plain ops
(torch.autograd cannot be part of an exported graph). See gradcam_from_last_step().
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet50
from torchvision.models.resnet import Bottleneck

from weights_file import WeightsError, check_fits, load_state_dict_file

VARIANTS = ("r50", "tiny")
BLOCKS_PER_LAYER = (3, 4, 6, 3)  # ResNet-50 layout: 16 bottleneck blocks
HIDDEN = 128
TINY_BASE_WIDTH = 4  # r50 uses 64; 4 keeps the tiny ONNX file around 2 MB (8 would be ~3.5 MB)


class _TinyResNet(nn.Module):
    """ResNet-50's bottleneck structure with narrow channels (base width 4 instead of 64).

    torchvision's ResNet hard-codes 64..512 planes (width_per_group only narrows the inner
    3x3 convs), so the narrow variant is assembled here from torchvision's own Bottleneck.
    Only the stem and layer1..4 exist: ResMem-Net never uses avgpool/fc.
    """

    def __init__(self, base: int = TINY_BASE_WIDTH):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.inplanes = base
        self.layer1 = self._make_layer(base, BLOCKS_PER_LAYER[0], stride=1)
        self.layer2 = self._make_layer(base * 2, BLOCKS_PER_LAYER[1], stride=2)
        self.layer3 = self._make_layer(base * 4, BLOCKS_PER_LAYER[2], stride=2)
        self.layer4 = self._make_layer(base * 8, BLOCKS_PER_LAYER[3], stride=2)
        # Same initialisation as torchvision's ResNet.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [Bottleneck(out, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)


def _build_backbone(variant: str) -> nn.Module:
    if variant == "r50":
        return resnet50(weights=None)
    if variant == "tiny":
        return _TinyResNet()
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


class ResMemNet(nn.Module):
    def __init__(self, variant: str = "r50"):
        super().__init__()
        self.variant = variant
        self.backbone = _build_backbone(variant)
        layers = [self.backbone.layer1, self.backbone.layer2, self.backbone.layer3, self.backbone.layer4]
        block_channels = [blk.conv3.out_channels for layer in layers for blk in layer]
        assert len(block_channels) == 16, block_channels
        # One 1x1 projection per block (applied to the pooled [N,C,1,1] vector).
        self.proj = nn.ModuleList(nn.Conv2d(c, HIDDEN, kernel_size=1) for c in block_channels)
        self.lstm = nn.LSTM(input_size=HIDDEN, hidden_size=HIDDEN, num_layers=1, batch_first=True)
        # Learned initial state, shape [num_layers, 1, hidden], expanded to the batch.
        self.h0 = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.c0 = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.fc = nn.Linear(HIDDEN, 1)

    def blocks(self):
        """The 16 bottleneck blocks in order (layer1[0] .. layer4[2])."""
        b = self.backbone
        return [blk for layer in (b.layer1, b.layer2, b.layer3, b.layer4) for blk in layer]

    def forward(self, x: torch.Tensor):
        b = self.backbone
        y = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        seq = []
        for blk, proj in zip(self.blocks(), self.proj):
            y = blk(y)
            seq.append(proj(F.adaptive_avg_pool2d(y, 1)).flatten(1))  # [N,128]
        last_map = y  # block 16 output == backbone.layer4 output, [N,C,7,7]
        seq = torch.stack(seq, dim=1)  # [N,16,128]

        n = x.shape[0]
        h0 = self.h0.expand(1, n, HIDDEN).contiguous()
        c0 = self.c0.expand(1, n, HIDDEN).contiguous()
        # Steps 1..15 run in nn.LSTM; step 16 is evaluated by hand below (same weights, so the
        # result is identical to running all 16 steps) because its gate values are needed for
        # the analytic Grad-CAM.
        _, (h_prev, c_prev) = self.lstm(seq[:, :-1], (h0, c0))
        h, c, gates = self._lstm_step(seq[:, -1], h_prev[0], c_prev[0])
        score = self.fc(h).squeeze(-1)  # [N]

        gradcam = self.gradcam_from_last_step(last_map, gates, c_prev[0], c)
        return score, gradcam

    def _lstm_step(self, x_t, h_prev, c_prev):
        """One LSTM cell step with PyTorch's equations and gate order (i, f, g, o)."""
        z = F.linear(x_t, self.lstm.weight_ih_l0, self.lstm.bias_ih_l0) + F.linear(
            h_prev, self.lstm.weight_hh_l0, self.lstm.bias_hh_l0
        )
        zi, zf, zg, zo = z.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        c = f * c_prev + i * g
        h = o * torch.tanh(c)
        return h, c, (i, f, g, o)

    def gradcam_from_last_step(self, A, gates, c_prev, c):
        """Grad-CAM of score w.r.t. A (block 16 output), by the chain rule written out.

        A reaches the score only via GAP -> proj[15] -> x_16 -> last LSTM step -> fc, and
        h_prev/c_prev do not depend on A, so (per sample):
          dh = w_fc
          do = dh*tanh(c);  dc = dh*o*(1 - tanh(c)^2)
          di = dc*g;  df = dc*c_prev;  dg = dc*i
          dz = [di*i(1-i), df*f(1-f), dg*(1-g^2), do*o(1-o)]   (pre-activations, order i,f,g,o)
          dx16 = W_ih^T dz;  dGAP = W_proj16^T dx16
          dA[k,y,x] = dGAP_k / (H*W)  => alpha_k = spatial mean of dA = dGAP_k / (H*W)
          gradcam = ReLU(sum_k alpha_k * A_k)                 (raw, not normalised)
        """
        i, f, g, o = gates
        dh = self.fc.weight  # [1,128], broadcasts over the batch
        tc = torch.tanh(c)
        do = dh * tc
        dc = dh * o * (1 - tc * tc)
        dz = torch.cat(
            [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), do * o * (1 - o)], dim=1
        )  # [N,512]
        dx = dz @ self.lstm.weight_ih_l0  # [N,128]
        w_proj = self.proj[-1].weight.flatten(1)  # [128,C]
        d_gap = dx @ w_proj  # [N,C]
        hw = A.shape[2] * A.shape[3]
        alpha = d_gap / hw
        return F.relu((alpha[:, :, None, None] * A).sum(dim=1))  # [N,H,W]


def infer_variant(state_dict) -> str:
    """Which variant a saved state_dict belongs to (from the stem's width; r50 if it has no stem)."""
    stem = state_dict.get("backbone.conv1.weight")
    return "tiny" if stem is not None and stem.shape[0] != 64 else "r50"


def _fit(model: ResMemNet, state, path: str) -> None:
    try:
        if infer_variant(state) != model.variant:
            raise WeightsError(f"{path} holds variant {infer_variant(state)!r} weights, not {model.variant!r}")
        check_fits(model, state, path, f"ResMem-Net {model.variant}")
    except WeightsError as error:
        raise SystemExit(f"error: {error}") from None
    model.load_state_dict(state, strict=False)  # check_fits allowed only optional keys to be absent


def load_weights(model: ResMemNet, path: str) -> None:
    """Load a state_dict written by torch.save(model.state_dict(), path) as untrusted input
    (weights_file.py), with a one-line error if it does not fit, e.g. trained for the other variant."""
    try:
        state = load_state_dict_file(path)
    except WeightsError as error:
        raise SystemExit(f"error: {error}") from None
    _fit(model, state, path)


def model_from_weights(path: str) -> ResMemNet:
    """The ResMem-Net variant a weights file was saved from, with those weights loaded."""
    try:
        state = load_state_dict_file(path)
    except WeightsError as error:
        raise SystemExit(f"error: {error}") from None
    model = ResMemNet(infer_variant(state))
    _fit(model, state, path)
    return model
