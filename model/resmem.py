"""ResMem (Needell & Bainbridge, University of Chicago), rebuilt as published, plus an in-graph
Grad-CAM so the imported model meets memscore's contract (shared/design.md).

The module's parameters carry exactly the names of the published `resmem/model.py`, so the
published `model.pt` (a plain state_dict) loads into it strictly:

- branch 1: torchvision ResNet-152 as `features.*`, all 1000 fc logits, no softmax;
- branch 2, on the same input: conv1 3->48 k11 s4 -> ReLU -> maxpool 3/2 -> LRN(5) -> conv2
  48->256 k5 p2 g2 -> ReLU -> maxpool 3/2 -> LRN(5) -> conv3 256->384 k3 p1 g2 -> ReLU -> conv4
  384->384 k3 p1 g2 -> ReLU -> conv5 384->256 k3 p1 g2 -> ReLU -> maxpool 3/2 -> 9216 features;
- [9216 conv | 1000 logits] -> fc6 .. fc11 with ReLU -> fc12 -> sigmoid (dropout is off in eval,
  and has no parameters, so it is left out).

Input [N,3,227,227] in [0,1], no normalisation: the published transform stretches to 256x256
(PIL bilinear), centre-crops 227 (offset 14 on both axes) and applies ToTensor.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet152

INPUT_SIZE = 227
RESIZE_SIZE = 256  # stretched to 256x256, then centre-cropped to INPUT_SIZE
CONV_FEATURES = 9216  # 256 channels x 6 x 6 after pool5 at 227 px
HIDDEN = (4096, 4096, 2048, 1024, 512, 256)  # fc6 .. fc11 outputs
GRID = 8  # ResNet-152 layer4 output at 227 px: 227 -> 114 -> 57 -> 57 -> 29 -> 15 -> 8

# One published copy of the weights file (the resmem package's model.pt).
PUBLISHED_SHA256 = "986f094c1b116af6b7ad27d311ffca25af377d46d94ba7e05d943f88bfac8dac"
LICENSE = "ResMem Non-commercial License (University of Chicago)"
TRAINING_DATA = "LaMem + MemCat (ResMem, Needell & Bainbridge 2022)"


class ResMem(nn.Module):
    """ResMem with the published parameter names. forward() returns (score [N], gradcam [N,8,8])."""

    def __init__(self):
        super().__init__()
        self.features = resnet152(weights=None)
        self.conv1 = nn.Conv2d(3, 48, kernel_size=11, stride=4)
        self.pool1 = nn.MaxPool2d(3, 2)
        self.lrn1 = nn.LocalResponseNorm(5)
        self.conv2 = nn.Conv2d(48, 256, kernel_size=5, stride=1, padding=2, groups=2)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.lrn2 = nn.LocalResponseNorm(5)
        self.conv3 = nn.Conv2d(256, 384, kernel_size=3, stride=1, padding=1, groups=2)
        self.conv4 = nn.Conv2d(384, 384, kernel_size=3, stride=1, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, kernel_size=3, stride=1, padding=1, groups=2)
        self.pool5 = nn.MaxPool2d(kernel_size=3, stride=2)
        widths = (CONV_FEATURES + 1000, *HIDDEN)
        for i, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=6):
            setattr(self, f"fc{i}", nn.Linear(n_in, n_out))
        self.fc12 = nn.Linear(HIDDEN[-1], 1)

    def hidden_layers(self) -> list[nn.Linear]:
        """fc6 .. fc11, the layers followed by a ReLU."""
        return [getattr(self, f"fc{i}") for i in range(6, 12)]

    def conv_branch(self, x: torch.Tensor) -> torch.Tensor:
        """The AlexNet-like branch: [N,3,227,227] -> [N,9216]."""
        y = self.lrn1(self.pool1(F.relu(self.conv1(x))))
        y = self.lrn2(self.pool2(F.relu(self.conv2(y))))
        y = F.relu(self.conv5(F.relu(self.conv4(F.relu(self.conv3(y))))))
        return self.pool5(y).flatten(1)

    def resnet_layer4(self, x: torch.Tensor) -> torch.Tensor:
        """ResNet-152 up to (and including) layer4: the map A that Grad-CAM explains, [N,2048,8,8]."""
        f = self.features
        y = f.maxpool(f.relu(f.bn1(f.conv1(x))))
        return f.layer4(f.layer3(f.layer2(f.layer1(y))))

    def published_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The published forward pass, [N,1] (for references; no Grad-CAM)."""
        h = torch.cat((self.conv_branch(x), self.features(x)), dim=1)
        for fc in self.hidden_layers():
            h = F.relu(fc(h))
        return torch.sigmoid(self.fc12(h))

    def forward(self, x: torch.Tensor):
        f = self.features
        A = self.resnet_layer4(x)
        logits = f.fc(torch.flatten(f.avgpool(A), 1))  # torchvision's own tail of ResNet.forward
        h = torch.cat((self.conv_branch(x), logits), dim=1)
        masks = []
        for fc in self.hidden_layers():
            z = fc(h)
            masks.append((z > 0).to(z.dtype))  # ReLU's derivative (0 at 0, as autograd has it)
            h = F.relu(z)
        score = torch.sigmoid(self.fc12(h)).squeeze(1)  # [N]
        return score, self.gradcam(A, score, masks)

    def gradcam(self, A: torch.Tensor, score: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
        """Grad-CAM of `score` w.r.t. A (layer4 output), by the chain rule written out.

        A reaches the score only through avgpool -> fc (1000 logits) -> the last 1000 inputs of
        fc6; the conv branch does not depend on A. Per sample, with s = sigmoid(fc12(h11)):
          g11 = s(1-s) * W12                       d score / d h11          [256]
          g_{k-1} = (g_k * m_k) @ W_k              through fc_k's ReLU mask m_k, k = 11 .. 7
          g_logits = (g6 * m6) @ W6[:, 9216:]      only the logits' columns of fc6     [1000]
          g_pooled = g_logits @ W_fc               through the ResNet's fc             [2048]
          dA[k,y,x] = g_pooled[k] / (H*W)          avgpool spreads it evenly over space
          alpha_k = spatial mean of dA_k = g_pooled[k] / (H*W)
          gradcam = ReLU(sum_k alpha_k * A_k)      raw, not normalised
        """
        g = (score * (1 - score))[:, None] * self.fc12.weight  # [N,256]
        layers = self.hidden_layers()
        for fc, m in zip(reversed(layers[1:]), reversed(masks[1:])):
            g = (g * m) @ fc.weight
        g = (g * masks[0]) @ layers[0].weight[:, CONV_FEATURES:]  # [N,1000]
        g_pooled = g @ self.features.fc.weight  # [N,2048]
        alpha = g_pooled / (A.shape[2] * A.shape[3])
        return F.relu((alpha[:, :, None, None] * A).sum(dim=1))  # [N,8,8]


class PublishedScore(nn.Module):
    """The published forward alone, as [N]: the plain export that measures the ONNX floor."""

    def __init__(self, model: ResMem):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.published_forward(x).squeeze(1)
