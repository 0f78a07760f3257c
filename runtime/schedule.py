"""Optimizer and per-step learning-rate schedule.

Every schedule is a pure function of the step number wrapped in one ``LambdaLR``: its state is just
counters, so it survives a ``weights_only`` checkpoint (torch's MultiStepLR keeps a Counter, and
OneCycleLR also cycles momentum, which the resume state would then have to carry too).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from archc.runtime.config import TrainConfig

ONECYCLE_WARMUP = 0.3  # fraction of steps spent rising to the peak (torch OneCycleLR's pct_start)
ONECYCLE_START = 1 / 25  # start at peak/25 (div_factor) ...
ONECYCLE_END = 1 / 25e4  # ... and end at peak/(25 * 1e4) (final_div_factor), as torch OneCycleLR
MULTISTEP_GAMMA = 0.1  # lr factor at each milestone


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _cos(start: float, end: float, frac: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the peak lr at each optimizer step (0-based), over every phase of the run.

    A run has one phase unless it was extended (``cfg.restarts``): each phase runs the whole schedule
    over its own epochs, as a fresh run of that length would.
    """
    bounds = [0, *cfg.restarts, cfg.epochs]
    phases = [(a * steps_per_epoch, _phase(cfg, b - a, steps_per_epoch)) for a, b in zip(bounds, bounds[1:])]

    def factor(s: int) -> float:
        start, f = next(p for p in reversed(phases) if p[0] <= s)
        return f(s - start)
    return factor


def _phase(cfg: TrainConfig, epochs: int, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule of one phase of ``epochs`` epochs, by its own step number."""
    total = epochs * steps_per_epoch
    if cfg.schedule == "onecycle":  # torch OneCycleLR's two phases, ending on steps peak and total - 1
        peak = max(1.0, ONECYCLE_WARMUP * total - 1)
        return lambda s: (_cos(ONECYCLE_START, 1.0, s / peak) if s <= peak
                          else _cos(1.0, ONECYCLE_END, min(1.0, (s - peak) / max(1.0, total - 1 - peak))))
    if cfg.schedule == "cosine":
        return lambda s: _cos(1.0, 0.0, min(1.0, s / total))
    bounds = [round(m * steps_per_epoch) for m in cfg.milestone_epochs(epochs)]
    return lambda s: MULTISTEP_GAMMA ** sum(s >= b for b in bounds)


def build_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, steps_per_epoch))
