"""A minimal, plain hand-written PyTorch CIFAR-10 training loop.

This is the baseline that archc's trainer is benchmarked against, so it is
deliberately ordinary: no archc imports, no DataLoader workers, no tricks
beyond the recipe below.

Recipe: random crop (reflect pad 4) + horizontal flip, per-channel
normalisation, SGD (nesterov, momentum 0.9, weight decay 5e-4), OneCycleLR
peaking at `lr`, cross-entropy with label smoothing, channels_last.

    python bench/handwritten_loop.py [--data DIR] [--epochs 15]
"""
from __future__ import annotations

import argparse
import math
import pickle
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-subset"


def _batches_dir(data_dir) -> Path:
    # Accept either the folder holding `cifar-10-batches-py` or that folder itself.
    p = Path(data_dir)
    return p if (p / "test_batch").exists() else p / "cifar-10-batches-py"


def _load_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    # Rows are 3072 bytes, channel-major (1024 R, 1024 G, 1024 B), so a plain
    # reshape gives N x 3 x 32 x 32 with no transpose.
    x = torch.as_tensor(d["data"]).reshape(-1, 3, 32, 32)
    y = torch.as_tensor(d["labels"], dtype=torch.long)
    return x, y


def load_cifar10(data_dir) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Returns ((train_x, train_y), (test_x, test_y)); images stay uint8."""
    root = _batches_dir(data_dir)
    parts = [_load_batch(root / f"data_batch_{i}") for i in range(1, 6)
             if (root / f"data_batch_{i}").exists()]  # subsets may ship fewer batches
    if not parts:
        raise FileNotFoundError(f"no data_batch_* files in {root}")
    train = (torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]))
    return train, _load_batch(root / "test_batch")


def _normalize(x_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x_uint8.device).view(1, 3, 1, 1)
    return (x_uint8.float().div_(255) - mean) / std


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the reflect-padded (40x40) image, then random h-flip.

    Done per batch with tensor indexing; random numbers come from a CPU
    generator so the augmentation stream is the same on every device.
    """
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy = torch.randint(0, 9, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 9, (n,), generator=gen).to(x.device)
    ar = torch.arange(32, device=x.device)
    rows = (dy[:, None] + ar)[:, None, :, None]  # n x 1 x 32 x 1
    cols = (dx[:, None] + ar)[:, None, None, :]  # n x 1 x 1 x 32
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(3, device=x.device)[None, :, None, None]
    out = padded[idx_n, idx_c, rows, cols]
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, out.flip(3), out)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = _normalize(x[i:i + batch_size]).contiguous(memory_format=torch.channels_last)
        correct += (model(xb).argmax(1) == y[i:i + batch_size]).sum().item()
    return correct / len(x)


def train_handwritten(model: nn.Module, data_dir, epochs: int = 15, batch_size: int = 128,
                      lr: float = 0.2, label_smoothing: float = 0.1, seed: int = 0,
                      device: str = "cpu") -> dict:
    """Train `model` on CIFAR-10 at `data_dir`; returns test accuracy and timings."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # shuffling + augmentation
    (xtr, ytr), (xte, yte) = load_cifar10(data_dir)
    # The whole dataset lives on the device as uint8 (150 MB for full CIFAR).
    xtr, ytr, xte, yte = (t.to(device) for t in (xtr, ytr, xte, yte))

    model = model.to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(xtr) / batch_size)  # the last, partial batch is kept
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr,
                                                total_steps=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    epoch_seconds = []
    for epoch in range(epochs):
        model.train()
        if device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr), generator=gen).to(device)
        for i in range(0, len(xtr), batch_size):
            idx = perm[i:i + batch_size]
            xb = _augment(_normalize(xtr[idx]), gen).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(xb), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        epoch_seconds.append(time.perf_counter() - t0)

    return {
        "test_acc": evaluate(model, xte, yte),
        "epoch_seconds": epoch_seconds,
        "images_per_s": epochs * len(xtr) / sum(epoch_seconds),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    # Run as a script, sys.path[0] is bench/; the reference models live under tests/.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.reference.uva_models import resnet

    torch.manual_seed(args.seed)  # model init
    result = train_handwritten(resnet(), args.data, epochs=args.epochs, batch_size=args.batch_size,
                               lr=args.lr, seed=args.seed, device=args.device)
    for i, s in enumerate(result["epoch_seconds"], 1):
        print(f"epoch {i:3d}: {s:.2f} s")
    mean_s = sum(result["epoch_seconds"]) / len(result["epoch_seconds"])
    print(f"test accuracy: {100 * result['test_acc']:.1f}%")
    print(f"seconds/epoch: {mean_s:.2f}  ({result['images_per_s']:.0f} images/s, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
