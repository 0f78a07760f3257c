"""airbench94's training, re-implemented minimally in plain PyTorch: the baseline for archs/airbench94.arch.

Learned from Keller Jordan's airbench94.py (github.com/KellerJordan/cifar10-airbench, legacy/airbench94.py),
not copied: the same network, data pipeline and training, written here without archc so that
`archc train archs/airbench94.arch --recipe airbench` can be timed against it (bench/gpu.py).

- net: 2x2 whitening conv (24 filters) + GELU, three groups (conv3x3, maxpool 2, BN, GELU, conv3x3, BN,
  GELU) of widths 64/256/256, maxpool 3, linear without bias, logits x 1/9; BN eps 1e-12, torch momentum
  0.4, weights frozen at 1; convs PyTorch-initialised with zero biases and their first C_in filters set
  to the identity (dirac); the whitening filters from the patch covariance of 5,000 training images,
  frozen; its bias trains for 3 epochs.
- data, on the device: normalised once, half of the images mirrored once at random, every other epoch
  all of them mirrored (alternating flips); each epoch a fresh reflect-pad-2 random crop of the whole
  set; batches of 1024 of a random permutation, the last partial one dropped.
- training: Nesterov SGD on the summed label-smoothed (0.2) loss, lr 11.5 and weight decay 0.0153 per
  1024 images in decoupled form (momentum 0.85), BN biases at 64x the lr; lr linear from 0.2x up to the
  peak over 23% of the steps, then down to 0.07x; every 5 steps the weights are pulled to their moving
  average (lookahead, decay 0.95^5 x progress^3), and become it at the end.
- evaluation: logits averaged over 6 views (mirror x {no shift, 1 px up-left, 1 px down-right}).

precision "fp16" is airbench's own (half weights and inputs, BatchNorm in float32); "bf16" runs the
float32 net under bf16 autocast, as `archc train` does on CUDA; "fp32" is for CPUs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from handwritten_loop import MEAN, STD  # CIFAR-10's channel statistics, as every plain loop here uses them

WIDTHS = (64, 256, 256)
BN_MOMENTUM = 0.6  # airbench's: the weight of the old running value (torch's momentum is 1 - this)
SCALING = 1 / 9
BATCH, EPOCHS = 1024, 9.9
LR, WD, MOMENTUM, BIAS_SCALER, SMOOTHING = 11.5, 0.0153, 0.85, 64.0, 0.2
WHITEN_BIAS_EPOCHS, TRANSLATE, EMA_EVERY = 3, 2, 5


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _conv(c_in: int, c_out: int, k: int = 3, bias: bool = False) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding="same" if k == 3 else 0, bias=bias)
    with torch.no_grad():
        if bias:
            conv.bias.zero_()
        nn.init.dirac_(conv.weight[:c_in])  # the first C_in filters pass their input channel through
    return conv


def _norm(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, eps=1e-12, momentum=1 - BN_MOMENTUM)
    bn.weight.requires_grad_(False)
    return bn


class Group(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.pool, self.norm1 = _conv(c_in, c_out), nn.MaxPool2d(2), _norm(c_out)
        self.conv2, self.norm2, self.activ = _conv(c_out, c_out), _norm(c_out), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


def make_net(classes: int = 10) -> nn.Sequential:
    """airbench94's network, float32 (``train`` casts it for fp16)."""
    w0 = 2 * 3 * 2 * 2
    net = nn.Sequential(_conv(3, w0, 2, bias=True), nn.GELU(), Group(w0, WIDTHS[0]), Group(WIDTHS[0], WIDTHS[1]),
                        Group(WIDTHS[1], WIDTHS[2]), nn.MaxPool2d(3), nn.Flatten(), nn.Linear(WIDTHS[2], classes, bias=False),
                        Scale(SCALING))
    net[0].weight.requires_grad_(False)
    return net


@torch.no_grad()
def whitening_filters(images: torch.Tensor, k: int = 2, eps: float = 5e-4) -> torch.Tensor:
    """(2 d, C, k, k) filters: the eigenvectors of the k×k patches' covariance over 1/sqrt(eigenvalue + eps),
    strongest first, then their negatives; ``images`` normalised float (N, C, H, W)."""
    c = images.shape[1]
    p = images.unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
    p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).float()
    cov = p.T @ p / len(p)
    values, vectors = torch.linalg.eigh(cov)
    order = values.argsort(descending=True)
    filters = (vectors[:, order] / (values[order] + eps).sqrt()).T.reshape(-1, c, k, k)
    return torch.cat([filters, -filters])


class Loader:
    """The training set on the device, airbench's way: normalised, pre-flipped and pre-padded once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype, batch: int = BATCH):
        mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1)
        x = ((images.to(dtype) / 255 - mean.to(dtype)) / std.to(dtype)).contiguous(memory_format=torch.channels_last)
        self.normalised = x
        flip = torch.rand(len(x), device=x.device) < 0.5
        self.padded = F.pad(torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x), (TRANSLATE,) * 4, mode="reflect")
        self.labels, self.batch, self.epoch = labels, batch, 0

    def __len__(self) -> int:
        return len(self.labels) // self.batch

    def _crops(self) -> torch.Tensor:
        """A random crop of every padded image, by one gather per axis."""
        n, c, h, w = self.padded.shape
        size = h - 2 * TRANSLATE
        shift = torch.randint(0, 2 * TRANSLATE + 1, (2, n), device=self.padded.device)
        ar = torch.arange(size, device=self.padded.device)
        rows = (shift[0, :, None] + ar).view(n, 1, size, 1).expand(n, c, size, w)
        x = self.padded.gather(2, rows)
        cols = (shift[1, :, None] + ar).view(n, 1, 1, size).expand(n, c, size, size)
        return x.gather(3, cols)

    def __iter__(self):
        images = self._crops()
        if self.epoch % 2 == 1:
            images = images.flip(-1)
        self.epoch += 1
        order = torch.randperm(len(images), device=images.device)
        for i in range(len(self)):
            idx = order[i * self.batch:(i + 1) * self.batch]
            yield images[idx].contiguous(memory_format=torch.channels_last), self.labels[idx]


class Lookahead:
    def __init__(self, net: nn.Module):
        self.ema = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: nn.Module, decay: float) -> None:
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                self.ema[k].lerp_(v, 1 - decay)
                v.copy_(self.ema[k])


@torch.no_grad()
def tta_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mirror x {no shift, one pixel up-left, one down-right}, weighted 1/2, 1/4, 1/4."""
    def mirror(v):
        return 0.5 * net(v).float() + 0.5 * net(v.flip(-1)).float()

    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    h, w = x.shape[-2:]
    shifted = [mirror(padded[..., d:d + h, d:d + w]) for d in (0, 2)]
    return 0.5 * mirror(x) + 0.25 * (shifted[0] + shifted[1])


@dataclass
class Result:
    epoch_seconds: list[float] = field(default_factory=list)  # training steps of each epoch, synced
    whiten_seconds: float = 0.0
    steps: int = 0
    tta_acc: float | None = None
    acc: float | None = None  # without test-time views


def train(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
          epochs: float = EPOCHS, precision: str = "fp16", batch: int = BATCH, seed: int = 0) -> Result:
    """Train airbench94 on uint8 images already on the device; returns timings and test accuracy."""
    torch.manual_seed(seed)
    dev = train_x.device
    dtype = {"fp16": torch.half, "bf16": torch.float32, "fp32": torch.float32}[precision]
    net = make_net().to(dev, memory_format=torch.channels_last)
    if precision == "fp16":
        net.half()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.float()
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    loader = Loader(train_x, train_y, dtype, batch)
    total = math.ceil(len(loader) * epochs)
    kilostep = 1024 * (1 + 1 / (1 - MOMENTUM))  # decoupled -> torch: step size per summed gradient
    lr, wd = LR / kilostep, WD * batch / kilostep
    norm_biases = [p for n, p in net.named_parameters() if "norm" in n and p.requires_grad]
    others = [p for n, p in net.named_parameters() if "norm" not in n and p.requires_grad]
    opt = torch.optim.SGD([{"params": norm_biases, "lr": lr * BIAS_SCALER, "weight_decay": wd / (lr * BIAS_SCALER)},
                           {"params": others, "lr": lr, "weight_decay": wd / lr}], momentum=MOMENTUM, nesterov=True)
    up = int(0.23 * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.2 + 0.8 * s / up if s < up else 1 - 0.93 * (s - up) / (total - up))
    alpha = [0.95 ** EMA_EVERY * (s / total) ** 3 for s in range(total + 1)]
    lookahead = Lookahead(net)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=SMOOTHING, reduction="sum")
    result = Result()

    _sync(dev)
    start = time.perf_counter()
    net[0].weight.data.copy_(whitening_filters(loader.normalised[:5000]))
    _sync(dev)
    result.whiten_seconds = time.perf_counter() - start
    step = 0
    for epoch in range(math.ceil(epochs)):
        net[0].bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)
        start = time.perf_counter()
        net.train()
        for x, y in loader:
            with autocast:
                loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % EMA_EVERY == 0:
                lookahead.update(net, alpha[step])
            if step >= total:
                lookahead.update(net, 1.0)
                break
        _sync(dev)
        result.epoch_seconds.append(time.perf_counter() - start)
    result.steps = step
    result.acc, result.tta_acc = _score(net, loader, test_x, test_y, dtype, autocast)
    return result


@torch.no_grad()
def _score(net, loader, test_x, test_y, dtype, autocast) -> tuple[float, float]:
    net.eval()
    mean, std = (torch.tensor(v, device=test_x.device).view(1, 3, 1, 1).to(dtype) for v in (MEAN, STD))
    hits = [0, 0]
    for i in range(0, len(test_x), 2000):
        x = ((test_x[i:i + 2000].to(dtype) / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
        y = test_y[i:i + 2000]
        with autocast:
            hits[0] += (net(x).argmax(1) == y).sum().item()
            hits[1] += (tta_logits(net, x).argmax(1) == y).sum().item()
    return hits[0] / len(test_y), hits[1] / len(test_y)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
