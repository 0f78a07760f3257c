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
LINEAR_WARMUP, LINEAR_START, LINEAR_END = 0.23, 0.2, 0.07  # airbench94's get_lr: fraction of steps, start and end factors


def param_groups(cfg: TrainConfig, model: torch.nn.Module, whitening: torch.nn.Module | None = None) -> list[dict]:
    """The trained tensors, one group unless ``cfg.norm_bias_lr`` or a whitening layer sets some apart.

    A group's ``role`` names its lr rule (see ``build_schedule``): BatchNorm biases take ``norm_bias_lr``
    times the lr with the weight decay divided by as much, so their decay per step stays the others';
    the whitening layer's bias stops after ``cfg.whiten_bias_epochs``. Frozen tensors (requires_grad
    false: fixed BatchNorm weights, the whitening weights) are left out.
    """
    norm_biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   and m.bias is not None and m.bias.requires_grad] if cfg.norm_bias_lr != 1 else []
    white_bias = [whitening.bias] if whitening is not None and whitening.bias is not None and \
        cfg.whiten_bias_epochs is not None else []
    apart = {id(p) for p in norm_biases + white_bias}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in apart]}]
    if norm_biases:
        groups.append({"params": norm_biases, "lr": cfg.lr * cfg.norm_bias_lr,
                       "weight_decay": cfg.weight_decay / cfg.norm_bias_lr, "role": "norm_bias"})
    if white_bias:
        groups.append({"params": white_bias, "role": "whiten_bias"})
    return groups


def build_optimizer(cfg: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


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


def phase_steps(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], tuple[int, int]]:
    """(steps done in its phase, steps of that phase) after ``s`` steps of the run: how far the
    phase's schedule has gone, for rules that follow it (the lookahead's decay)."""
    bounds = [e * steps_per_epoch for e in (0, *cfg.restarts, cfg.epochs)]

    def position(s: int) -> tuple[int, int]:
        i = sum(b < s for b in bounds[1:-1])  # phases ended before step s (a phase's last step is its own)
        return s - bounds[i], bounds[i + 1] - bounds[i]
    return position


def _phase(cfg: TrainConfig, epochs: int, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule of one phase of ``epochs`` epochs, by its own step number."""
    total = epochs * steps_per_epoch
    if cfg.schedule == "onecycle":  # torch OneCycleLR's two phases, ending on steps peak and total - 1
        peak = max(1.0, ONECYCLE_WARMUP * total - 1)
        return lambda s: (_cos(ONECYCLE_START, 1.0, s / peak) if s <= peak
                          else _cos(1.0, ONECYCLE_END, min(1.0, (s - peak) / max(1.0, total - 1 - peak))))
    if cfg.schedule == "cosine":
        return lambda s: _cos(1.0, 0.0, min(1.0, s / total))
    if cfg.schedule == "linear":  # airbench94: int(23% of the steps) up from 0.2x, then down to 0.07x at the end
        up = int(LINEAR_WARMUP * total)
        return lambda s: (LINEAR_START + (1 - LINEAR_START) * s / up if s < up
                          else 1 + (LINEAR_END - 1) * min(1.0, (s - up) / (total - up)))
    bounds = [round(m * steps_per_epoch) for m in cfg.milestone_epochs(epochs)]
    return lambda s: MULTISTEP_GAMMA ** sum(s >= b for b in bounds)


def build_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """One factor per parameter group: the schedule's, and for the whitening bias zero once it stops."""
    factor = lr_factor(cfg, steps_per_epoch)
    if len(optimizer.param_groups) == 1:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    stop = (cfg.whiten_bias_epochs or 0) * steps_per_epoch
    rules = {"whiten_bias": lambda s: factor(s) if s < stop else 0.0}
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [rules.get(g.get("role"), factor) for g in optimizer.param_groups])
