"""Hand-written He et al. 2016 CIFAR-10 ResNets (resnet20/56/110), a test oracle.

Layout (Sec. 4.2 of "Deep Residual Learning for Image Recognition"): a 3x3 conv
to 16 channels, then 3 stages of n basic blocks at widths 16/32/64 (depth =
6n + 2), global average pooling and a 64->10 linear layer. Shortcuts are
option A: parameter-free (subsample + zero-pad channels), so all parameters
live in convs, BNs and the classifier. Published sizes: 0.27M / 0.85M / 1.7M.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        # Convs have no bias: BN right after them makes a bias redundant.
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # Option A shortcut only when the shape changes (stride 2 and 2x width).
        self.needs_pad = stride != 1 or in_planes != planes
        self.planes = planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.needs_pad:
            return x
        # Take every other pixel, then zero-pad the channel dimension equally on
        # both sides (planes//4 each side doubles in_planes = planes//2).
        pad = self.planes // 4
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))  # ReLU after the add


class CifarResNet(nn.Module):
    def __init__(self, n: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            stage = []
            for i in range(n):
                stage.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet20() -> nn.Module:
    return CifarResNet(3)


def resnet56() -> nn.Module:
    return CifarResNet(9)


def resnet110() -> nn.Module:
    return CifarResNet(18)


MODELS = {"resnet20": resnet20, "resnet56": resnet56, "resnet110": resnet110}

if __name__ == "__main__":
    for name, make in MODELS.items():
        print(f"{name:10s} {sum(p.numel() for p in make().parameters()):,}")
