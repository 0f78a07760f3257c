"""Shared pieces of the runtime tests: a tiny CNN, small CIFAR slices, tiny .arch nets, and a launcher for
`archc` in a fresh process.

Kept importable by name (``import runtime_kit``) so spawned processes can unpickle TinyNet.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-subset" / "cifar-10-batches-py"
SAMPLE = REPO / "runtime" / "sample" / "cifar-10-batches-py"


class TinyNet(nn.Module):
    """Two conv stages and a linear head (~1.7k parameters); dropout exercises the RNG state on resume."""

    def __init__(self, bn: bool = True, dropout: float = 0.1):
        super().__init__()
        norm = nn.BatchNorm2d if bn else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=not bn), norm(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=not bn), norm(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_state(out: Path, epoch: int = 0, model: nn.Module | None = None, **config) -> dict:
    """What ``runtime/session.py: state`` stores after ``epoch`` epochs of SGD with a one-cycle-style
    LambdaLR, built without a training run: TinyNet (or ``model``), one optimizer step for momentum buffers."""
    from archc.runtime import rng
    from archc.runtime.config import TrainConfig

    model = model or TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    for p in model.parameters():  # any gradient gives SGD its momentum buffers
        p.grad = torch.ones_like(p)
    optimizer.step()
    schedule.step()
    history = [{"epoch": e, "loss": 2.0 / e, "train_acc": 0.1 * e, "val_acc": 0.1 * e if e % 2 else None,
                "val_loss": 1.0 / e if e % 2 else None, "lr": 0.1, "images_per_s": 500.0, "seconds": 1.5}
               for e in range(1, epoch + 1)]
    return {"epoch": epoch, "config": TrainConfig(out=out, **config).model_dump(mode="json"),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": rng.capture(), "data_generator": torch.Generator().get_state(), "history": history,
            "best": {"val_acc": 0.1 if epoch else None, "epoch": min(epoch, 1)}}


def write_slice(dst: Path, n_train: int, n_test: int, parts: int = 2) -> Path:
    """A cifar-10-batches-py folder with the first images of the bundled sample, split into ``parts`` batches."""
    folder = dst / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = [_load(SAMPLE / f"data_batch_{i}") for i in range(1, 6)]
    data = np.concatenate([b["data"] for b in batches])[:n_train]
    labels = sum((b["labels"] for b in batches), [])[:n_train]
    per = n_train // parts
    for i in range(parts):
        _dump(folder / f"data_batch_{i + 1}", data[i * per:(i + 1) * per], labels[i * per:(i + 1) * per])
    test = _load(SAMPLE / "test_batch")
    _dump(folder / "test_batch", test["data"][:n_test], test["labels"][:n_test])
    return dst


def _load(path: Path) -> dict:
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def _dump(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with path.open("wb") as f:
        pickle.dump({"batch_label": path.name, "labels": list(labels), "data": np.ascontiguousarray(data)}, f)


# A real .arch net for runs through the `archc` command line: ~900 parameters, a few ms per step on
# one CPU thread, with dropout so a resume must restore the RNG streams to match.
TINY_ARCH = """\
arch tiny(width = 8, classes = 10)
input [3, 32, 32]

conv(width, 3, pad = 1, bias = false); bn; relu; maxpool(4)
conv(width, 3, pad = 1); relu
gap; flatten
dropout(0.1)
linear(classes)
"""

# Almost all of its ~82k parameters in the head, so a checkpoint doubles in size once SGD has momentum
# buffers: last.pt of epoch 0 is ~0.35 MB, of epoch 1 ~0.7 MB. A limit in between fails the second write.
WIDE_ARCH = """\
arch wide(width = 8, classes = 10)
input [3, 32, 32]

conv(width, 3, pad = 1, bias = false); bn; relu
flatten
dropout(0.1)
linear(classes)
"""


def archc(args: list, wait: bool = True, prefix: list | None = None, **popen) -> subprocess.Popen | subprocess.CompletedProcess:
    """``python -m archc ARGS`` in a fresh interpreter, on one thread, so reruns compute identically.

    ``prefix`` goes before the interpreter (e.g. ``unshare -m ...``); ``popen`` reaches subprocess as is.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    cmd = [*(prefix or []), sys.executable, "-m", "archc", *map(str, args)]
    if wait:
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, **popen)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def epochs_done(run: Path) -> int:
    """Epochs listed in RUN/metrics.jsonl (written right after each epoch's last.pt); 0 before the first."""
    try:
        return len((run / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def temporaries(run: Path) -> list[str]:
    """Files an atomic write left behind (``.last.pt.XXXX.tmp``)."""
    return sorted(p.name for p in run.glob(".*.tmp"))
