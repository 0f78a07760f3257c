"""Hand-written reference models for the CIFAR-10 "seed table" of the UvA Deep
Learning course, Tutorial 5 ("Inception, ResNet and DenseNet", Phillip Lippe).

These are test oracles: they are written directly from the tutorial's layer
lists, independently of archc, so that a compiled ``.arch`` model can be checked
against them (parameter counts, state-dict shapes, numerics).  Module attribute
names follow the tutorial (``input_net``, ``inception_blocks``/``blocks``,
``output_net``) so state dicts line up with its checkpoints.

All models: ReLU, 10 classes, 3x32x32 input.  Parameter counts (which are also
printed in the tutorial's results table):

    googlenet      260,650
    resnet         272,378
    preact_resnet  272,250
    densenet       239,146
"""
from __future__ import annotations

import torch
import torch.nn as nn

NUM_CLASSES = 10


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> list[nn.Module]:
    # The tutorial's inception convs keep their bias even though BN follows;
    # that redundant bias is part of the 260,650 count, so keep it.
    return [nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(c_out), nn.ReLU()]


def _init(model: nn.Module, mode: str) -> nn.Module:
    # Same init as the tutorial (Kaiming-normal convs, BN = identity). Only
    # matters for training comparisons; parameter counts don't depend on it.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


# --------------------------------------------------------------------------
# GoogleNet
# --------------------------------------------------------------------------
class InceptionBlock(nn.Module):
    """Four parallel branches, concatenated in the order [1x1, 3x3, 5x5, max]."""

    def __init__(self, c_in: int, c_red: dict, c_out: dict):
        super().__init__()
        self.conv_1x1 = nn.Sequential(*conv_bn_relu(c_in, c_out["1x1"], 1))
        self.conv_3x3 = nn.Sequential(*conv_bn_relu(c_in, c_red["3x3"], 1),
                                      *conv_bn_relu(c_red["3x3"], c_out["3x3"], 3))
        self.conv_5x5 = nn.Sequential(*conv_bn_relu(c_in, c_red["5x5"], 1),
                                      *conv_bn_relu(c_red["5x5"], c_out["5x5"], 5))
        # Pool first (stride 1, so the spatial size is unchanged), then project.
        self.max_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                      *conv_bn_relu(c_in, c_out["max"], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv_1x1(x), self.conv_3x3(x),
                          self.conv_5x5(x), self.max_pool(x)], dim=1)


def _inception(c_in, red3, red5, o1, o3, o5, om) -> InceptionBlock:
    return InceptionBlock(c_in, {"3x3": red3, "5x5": red5},
                          {"1x1": o1, "3x3": o3, "5x5": o5, "max": om})


class GoogleNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.input_net = nn.Sequential(*conv_bn_relu(3, 64, 3))
        # Rows: c_in, reduce 3x3, reduce 5x5, out 1x1, out 3x3, out 5x5, out max.
        self.inception_blocks = nn.Sequential(
            _inception(64, 32, 16, 16, 32, 8, 8),      # -> 64
            _inception(64, 32, 16, 24, 48, 12, 12),    # -> 96
            nn.MaxPool2d(3, stride=2, padding=1),      # 32x32 -> 16x16
            _inception(96, 32, 16, 24, 48, 12, 12),    # -> 96
            _inception(96, 32, 16, 16, 48, 16, 16),    # -> 96
            _inception(96, 32, 16, 16, 48, 16, 16),    # -> 96
            _inception(96, 32, 16, 32, 48, 24, 24),    # -> 128
            nn.MaxPool2d(3, stride=2, padding=1),      # 16x16 -> 8x8
            _inception(128, 48, 16, 32, 64, 16, 16),   # -> 128
            _inception(128, 48, 16, 32, 64, 16, 16),   # -> 128
        )
        self.output_net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(128, num_classes))
        _init(self, mode="fan_in")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_net(self.inception_blocks(self.input_net(x)))


# --------------------------------------------------------------------------
# ResNet / PreActResNet (same skeleton, different block)
# --------------------------------------------------------------------------
class ResNetBlock(nn.Module):
    """Post-activation block: conv-BN-ReLU-conv-BN, add, then ReLU."""

    def __init__(self, c_in: int, c_out: int, subsample: bool):
        super().__init__()
        stride = 2 if subsample else 1
        self.net = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out))
        # The tutorial's projection shortcut is a bare 1x1 stride-2 conv that
        # keeps its bias (no BN after it) - that bias is in the 272,378 count.
        self.downsample = nn.Conv2d(c_in, c_out, 1, stride=2) if subsample else None
        self.act_fn = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        return self.act_fn(self.net(x) + skip)


class PreActResNetBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv-BN-ReLU-conv, plain add (no ReLU after)."""

    def __init__(self, c_in: int, c_out: int, subsample: bool):
        super().__init__()
        stride = 2 if subsample else 1
        self.net = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(),
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False))
        # Shortcut gets its own BN+ReLU (not shared with the residual branch).
        self.downsample = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(),
            nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)) if subsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        return self.net(x) + skip


class ResNet(nn.Module):
    def __init__(self, block=ResNetBlock, num_blocks=(3, 3, 3), c_hidden=(16, 32, 64),
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        if block is PreActResNetBlock:
            # Pre-act blocks start with BN-ReLU themselves, so the stem is a bare conv.
            self.input_net = nn.Sequential(nn.Conv2d(3, c_hidden[0], 3, padding=1, bias=False))
        else:
            self.input_net = nn.Sequential(nn.Conv2d(3, c_hidden[0], 3, padding=1, bias=False),
                                           nn.BatchNorm2d(c_hidden[0]), nn.ReLU())
        blocks = []
        c_in = c_hidden[0]
        for stage, (n, c_out) in enumerate(zip(num_blocks, c_hidden)):
            for i in range(n):
                # Only the first block of stages 2, 3, ... halves the resolution.
                blocks.append(block(c_in, c_out, subsample=(i == 0 and stage > 0)))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        # Note: even the pre-act variant has no final BN-ReLU before pooling
        # (faithful to the tutorial).
        self.output_net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(c_hidden[-1], num_classes))
        _init(self, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_net(self.blocks(self.input_net(x)))


# --------------------------------------------------------------------------
# DenseNet
# --------------------------------------------------------------------------
class DenseLayer(nn.Module):
    def __init__(self, c_in: int, bn_size: int, growth_rate: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(),
            nn.Conv2d(c_in, bn_size * growth_rate, 1, bias=False),
            nn.BatchNorm2d(bn_size * growth_rate), nn.ReLU(),
            nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # New features go FIRST, then the input - the opposite of torchvision's
        # DenseNet. Count is unaffected, but channel order (and thus weights of
        # every later layer) depends on it.
        return torch.cat([self.net(x), x], dim=1)


class DenseBlock(nn.Module):
    def __init__(self, c_in: int, num_layers: int, bn_size: int, growth_rate: int):
        super().__init__()
        self.block = nn.Sequential(*[DenseLayer(c_in + i * growth_rate, bn_size, growth_rate)
                                     for i in range(num_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class TransitionLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.transition = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(),
                                        nn.Conv2d(c_in, c_out, 1, bias=False),
                                        nn.AvgPool2d(2, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transition(x)


class DenseNet(nn.Module):
    def __init__(self, num_layers=(6, 6, 6, 6), bn_size: int = 2, growth_rate: int = 16,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        c = bn_size * growth_rate  # 32 stem channels
        # Stem conv keeps its bias: no BN directly follows it (the dense layer's
        # BN comes after the concat). The bias is in the 239,146 count.
        self.input_net = nn.Sequential(nn.Conv2d(3, c, 3, padding=1))
        blocks = []
        for i, n in enumerate(num_layers):
            blocks.append(DenseBlock(c, n, bn_size, growth_rate))
            c += n * growth_rate
            if i < len(num_layers) - 1:  # no transition after the last block
                blocks.append(TransitionLayer(c, c // 2))
                c //= 2
        self.blocks = nn.Sequential(*blocks)
        # Features are still pre-activation here, hence the BN-ReLU before pooling.
        self.output_net = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                        nn.Flatten(), nn.Linear(c, num_classes))
        _init(self, mode="fan_in")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_net(self.blocks(self.input_net(x)))


# --------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------
def googlenet() -> nn.Module:
    return GoogleNet()


def resnet() -> nn.Module:
    return ResNet(ResNetBlock)


def preact_resnet() -> nn.Module:
    return ResNet(PreActResNetBlock)


def densenet() -> nn.Module:
    return DenseNet()


MODELS = {
    "googlenet_uva": googlenet,
    "resnet_uva": resnet,
    "preact_resnet_uva": preact_resnet,
    "densenet_uva": densenet,
}

if __name__ == "__main__":
    for name, make in MODELS.items():
        print(f"{name:20s} {sum(p.numel() for p in make().parameters()):,}")
