"""One process's training state: built from the config, saved as a checkpoint, restored on --resume."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archc.dsl.errors import CheckpointError, UsageError
from archc.runtime import checkpoint, distributed, rng
from archc.runtime.augment import Augment, for_run
from archc.runtime.config import TrainConfig
from archc.runtime.data import Cifar10, load_cifar10, resolve
from archc.runtime.lookahead import Lookahead
from archc.runtime.schedule import build_optimizer, build_schedule, param_groups, phase_steps
from archc.runtime.whiten import whiten, whitening_layer


RESUME_HINT = ("resume with the .arch file and --set values the run was started with (RUN_DIR/config.json keeps "
               "them, RUN_DIR/spec/ the files), or start a new run with another --out")


@dataclass
class Session:
    """Everything one process trains with. ``net`` is what the steps call (DDP-wrapped and/or compiled);
    ``fast`` is what evaluation calls: ``net`` alone, ``model`` itself under DDP."""

    cfg: TrainConfig
    model: nn.Module
    fast: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # data order and augmentation: seeded alike on every rank
    data: Cifar10  # its training part without the validation images
    val_x: torch.Tensor  # the held-out validation images (uint8) and labels, chosen by cfg.seed
    val_y: torch.Tensor
    device: torch.device
    bf16: bool
    rank: int
    world: int
    steps: int  # optimizer steps per epoch: whole global batches only, so every shard is equal
    augment: Augment  # cfg.augment for this run's training images
    lookahead: Lookahead | None  # cfg.lookahead > 0: the weights' moving average (saved with the run)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


def create(cfg: TrainConfig, model: nn.Module, device: torch.device, images: Cifar10 | None = None) -> Session:
    """Load the data onto ``device`` and wrap ``model`` for it (channels_last, compile, DDP).

    ``images``: the data set already on ``device`` (bench/gpu.py's synthetic sets) instead of ``cfg.data``.
    """
    rank, world = distributed.world()
    if cfg.batch_size % world:
        raise UsageError(f"batch {cfg.batch_size} does not split evenly over {world} processes", where="--batch-size",
                         hint=f"use a multiple of {world}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 32x32 shapes: the autotuned kernels pay off at once
    if images is None:
        distributed.on_rank0(lambda: resolve(cfg.data), device, "fetch the data")  # one download, not one per rank
        images = load_cifar10(cfg.data, device)
    data, val_x, val_y = holdout(images, cfg.val_split, cfg.seed)
    steps = len(data.train_y) // cfg.batch_size
    if steps == 0:
        held = f" ({len(val_y)} more are held out by --val-split {cfg.val_split})" if len(val_y) else ""
        raise UsageError(f"batch {cfg.batch_size} is larger than the {len(data.train_y)} training images{held}",
                         where="--batch-size", hint=f"use at most {len(data.train_y)}")
    model.to(device, memory_format=torch.channels_last)
    whitening = _fixed_weights(cfg, model, data.train_x)  # before DDP, which registers the trained tensors
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:  # outside DDP, so its graph breaks fall on gradient-bucket boundaries
        net = torch.compile(net)
    fast = net if world == 1 else model  # evaluation must not run DDP's collectives
    optimizer = build_optimizer(cfg, param_groups(cfg, model, whitening))
    lookahead = Lookahead(model, cfg.lookahead, phase_steps(cfg, steps)) if cfg.lookahead else None
    return Session(cfg, model, fast, net, optimizer, build_schedule(cfg, optimizer, steps),
                   torch.Generator(device=device).manual_seed(cfg.seed), data, val_x, val_y, device,
                   distributed.precision(cfg.precision, device) == "bf16", rank, world, steps,
                   for_run(cfg.augment, len(data.train_y), cfg.seed, device), lookahead)


def _fixed_weights(cfg: TrainConfig, model: nn.Module, train_x: torch.Tensor) -> nn.Conv2d | None:
    """Freeze what the recipe keeps fixed: BatchNorm weights (``train_norm_weight`` false) and the
    whitening layer, set from the training images (``whiten``); returns that layer. On a resume the
    checkpoint's weights replace the whitening computed here."""
    if not cfg.train_norm_weight:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                m.weight.requires_grad_(False)
    if not cfg.whiten:
        return None
    layer = whitening_layer(model)
    whiten(layer, train_x)
    return layer


def holdout(data: Cifar10, fraction: float, seed: int) -> tuple[Cifar10, torch.Tensor, torch.Tensor]:
    """Split ``fraction`` of the training images off as a validation set (45,000/5,000 on CIFAR-10 at 0.1).

    Drawn by a CPU generator of its own, so the split depends on the seed alone: the same on every
    rank and device, and unchanged by a resume; at least one image when ``fraction`` > 0.
    """
    n = len(data.train_y)
    n_val = min(n, max(1, round(n * fraction))) if fraction > 0 else 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(data.train_x.device)
    val, train = perm[:n_val].sort().values, perm[n_val:].sort().values
    return (dataclasses.replace(data, train_x=data.train_x[train], train_y=data.train_y[train]),
            data.train_x[val], data.train_y[val])


def state(s: Session, epoch: int, history: list[dict], best: dict) -> dict[str, Any]:
    """Everything a resume needs, as tensors and plain values (see checkpoint.load). Call on rank 0."""
    return {"epoch": epoch, "config": s.cfg.model_dump(mode="json"), "model": s.model.state_dict(),
            "optimizer": s.optimizer.state_dict(), "schedule": s.schedule.state_dict(), "rng": rng.capture(),
            "data_generator": s.generator.get_state(), "history": history, "best": best,
            **({"lookahead": s.lookahead.state_dict()} if s.lookahead else {})}


def restore(s: Session) -> tuple[int, list[dict], dict]:
    """Load ``out/last.pt`` into the session; returns (finished epochs, metrics history, best so far)."""
    path = s.cfg.out / "last.pt"
    saved = checkpoint.load(path)
    checkpoint.load_model_state(s.model, saved, path, hint=RESUME_HINT)
    try:
        epoch, history, best, planned = saved["epoch"], saved["history"], saved["best"], saved["config"]["epochs"]
        if not (isinstance(epoch, int) and 0 <= epoch <= s.cfg.epochs and isinstance(history, list) and isinstance(best, dict)):
            raise ValueError(f"epoch {epoch!r} of {s.cfg.epochs}, history {type(history).__name__}, best {type(best).__name__}")
        s.optimizer.load_state_dict(saved["optimizer"])
        s.schedule.load_state_dict(saved["schedule"])
        s.generator.set_state(saved["data_generator"])
        if s.lookahead:
            s.lookahead.load_state_dict(saved["lookahead"])
        if s.rank == 0:
            rng.restore(saved["rng"])
        else:  # other ranks' streams (their dropout masks) need only differ from rank 0's, not replay
            rng.seed_everything(s.cfg.seed + s.rank + s.world * epoch)
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as e:
        found = f"no {e.args[0]!r} entry" if isinstance(e, KeyError) else f"{type(e).__name__}: {str(e)[:200]}"
        raise CheckpointError("the checkpoint's training state does not fit this run", where=str(path),
                              found=found, hint="start a new run with another --out") from None
    if planned != s.cfg.epochs and epoch != planned:  # extending (config._extended) a run that has not finished
        raise UsageError(f"the run stopped at epoch {epoch} of {planned}: finish it before extending it to {s.cfg.epochs}",
                         where="--epochs", hint=f"resume without --epochs first, then with --epochs {s.cfg.epochs}")
    _set_lr(s)
    return epoch, history, best


def _set_lr(s: Session) -> None:
    """The lr of the next step, from the schedule rebuilt for this config: after an extension the saved
    value belongs to the old schedule's end; otherwise this is the very value the schedule set."""
    for group, base, factor in zip(s.optimizer.param_groups, s.schedule.base_lrs, s.schedule.lr_lambdas):
        group["lr"] = base * factor(s.schedule.last_epoch)
