"""Shared pieces of the runtime tests: a tiny CNN, small CIFAR slices, and a training-run launcher.

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
HERE = Path(__file__).resolve().parent


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


RUN = """
import sys, torch
sys.path[:0] = {paths!r}
from runtime.config import TrainConfig
from runtime.rng import seed_everything
from runtime.train import train
from runtime_kit import TinyNet
cfg = TrainConfig(**{cfg!r})
seed_everything(cfg.seed)
train(cfg, TinyNet(bn={bn!r}))
"""


def run_training(cfg: dict, bn: bool = True, wait: bool = True, threads: int = 1) -> subprocess.Popen | subprocess.CompletedProcess:
    """Train TinyNet in a fresh interpreter (fixed thread count, so reruns compute identically)."""
    code = RUN.format(paths=[str(REPO), str(HERE)], cfg={k: str(v) if isinstance(v, Path) else v for k, v in cfg.items()}, bn=bn)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONHASHSEED": "0"}
    args = [sys.executable, "-c", code]
    if wait:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
