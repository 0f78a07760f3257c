"""The measurements behind bench/gpu.py: training passes (archc's runtime, plain loops), peak memory,
host-sync counting, a DDP step. Device-agnostic: the same code runs on CUDA and, at toy sizes, on a CPU.

A *pass* is a closure that runs a fixed number of training steps and returns without syncing;
:func:`seconds_per_pass` times one after a warm-up pass (cudnn autotuning, torch.compile).
"""
from __future__ import annotations

import contextlib
import copy
import os
import time
import warnings
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from archc.runtime import loop, session
from archc.runtime.config import TrainConfig
from archc.runtime.data import Cifar10
from archc.runtime.display import Silent
from handwritten_loop import MEAN, STD  # the plain loops' own normalisation, not archc's

Pass = Callable[[], None]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def seconds_per_pass(make: Callable[[], Pass], dev: torch.device) -> tuple[float, float]:
    """(first pass, second pass) seconds of a fresh pass function: the first pays for warm-up and compilation."""
    one_pass = make()
    times = []
    for _ in range(2):
        sync(dev)
        start = time.perf_counter()
        one_pass()
        sync(dev)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def archc_runtime(model: nn.Module, data: Cifar10, batch: int, compiled: bool, dev: torch.device,
                  **settings) -> Pass:
    """archc's own training loop (runtime.loop.train_epoch) on ``data``: one pass = one epoch."""
    cfg = TrainConfig(out="unused", device=dev.type, batch_size=batch, epochs=2, val_split=0, compile=compiled,
                      quiet=True, precision="bf16" if dev.type == "cuda" else "fp32", **settings)
    s = session.create(cfg, model, dev, images=data)
    epochs = iter(range(1, 1_000_000))
    return lambda: loop.train_epoch(s, next(epochs), Silent())


def plain_cifar(model: nn.Module, data: Cifar10, batch: int, compiled: bool, dev: torch.device) -> Pass:
    """A minimal hand-written loop over the same kind of data: per step a random batch is normalised,
    reflect-padded, randomly cropped and flipped, then fwd/bwd/SGD under bf16 autocast (fp32 on a CPU),
    channels_last, label smoothing 0.1, Nesterov SGD with a one-cycle schedule."""
    model = model.to(dev, memory_format=torch.channels_last).train()
    net = torch.compile(model) if compiled else model
    steps = len(data.train_y) // batch
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.2, total_steps=10 * steps)  # room for warm-up, timed, profiled passes
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    mean, std = (torch.tensor(v, device=dev).view(1, 3, 1, 1) * 255 for v in (MEAN, STD))
    bf16 = dev.type == "cuda"

    def one_pass() -> None:
        perm = torch.randperm(len(data.train_y), device=dev)
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            x = _crop_flip((data.train_x[idx].float() - mean) / std)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(net(x), data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return one_pass


def _crop_flip(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy, dx = torch.randint(0, 9, (2, n, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    out = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None],
                 rows, cols]
    flip = (torch.rand(n, device=x.device) < 0.5)[:, None, None, None]
    return torch.where(flip, out.flip(3), out).contiguous(memory_format=torch.channels_last)


def plain_fixed(model: nn.Module, batch: int, size: int, steps: int, compiled: bool, dev: torch.device,
                classes: int = 1000) -> Pass:
    """The plain loop on one fixed random batch (ImageNet-shaped: no data pipeline in the way)."""
    model = model.to(dev, memory_format=torch.channels_last).train()
    net = torch.compile(model) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=dev)
    bf16 = dev.type == "cuda"

    def one_pass() -> None:
        for _ in range(steps):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return one_pass


def peak_memory(model: nn.Module, batch: int, size: int, dev: torch.device) -> tuple[int | None, int | None]:
    """(peak bytes allocated, growth over the step) of one training step after a warm-up step;
    (None, None) off CUDA, where torch keeps no allocator statistics."""
    one_pass = plain_fixed(model, batch, size, 1, False, dev)
    one_pass()
    sync(dev)
    if dev.type != "cuda":
        one_pass()
        return None, None
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    one_pass()
    sync(dev)
    peak = torch.cuda.max_memory_allocated(dev)
    return peak, peak - base


class HostReads(TorchFunctionMode):
    """Counts the calls that read a tensor's value on the host (each a device sync on CUDA)."""

    READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__bool__,
             torch.Tensor.__int__, torch.Tensor.__float__}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func in self.READS
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def counting_syncs(dev: torch.device) -> Iterator[dict]:
    """{"host_reads": n, "cuda_syncs": n or None}: host reads of tensor values, and on CUDA every
    synchronising operation torch's sync debug mode reports."""
    counts = {"host_reads": 0, "cuda_syncs": None}
    reads = HostReads()
    with warnings.catch_warnings(record=True) as caught, reads:
        warnings.simplefilter("always")
        if dev.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counts
        finally:
            if dev.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
    counts["host_reads"] = reads.count
    if dev.type == "cuda":
        counts["cuda_syncs"] = sum("synchroniz" in str(w.message) for w in caught)


def fresh(model: nn.Module) -> nn.Module:
    """An untrained copy, so each side of a comparison starts from the same weights."""
    return copy.deepcopy(model)


def ddp_step(rank: int, world: int, backend: str, store: str, out: str, batch: int, steps: int) -> None:
    """One process of a DDP run of resnet_uva: ``steps`` timed steps after two warm-up steps; rank 0
    writes images/s over all ranks and whether the weights stayed identical across ranks to ``out``.
    ``store`` is the group's rendezvous, a file:// URL."""
    import json

    import torch.distributed as dist

    from archc import build

    dist.init_process_group(backend, init_method=store, rank=rank, world_size=world)
    try:
        dev = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        torch.manual_seed(0)
        model = build(os.path.join(os.path.dirname(__file__), "..", "archs", "resnet_uva.arch"))
        model = model.to(dev, memory_format=torch.channels_last)
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[rank] if dev.type == "cuda" else None)
        one_pass = plain_fixed(ddp, batch // world, 32, steps, False, dev, classes=10)
        first, timed = seconds_per_pass(lambda: one_pass, dev)
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        spread = flat.clone()
        dist.all_reduce(spread, op=dist.ReduceOp.MAX)
        same = bool(torch.equal(spread, flat))
        same = all(x for x in _gathered(same, world))
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"images_per_s": steps * batch / timed, "first_pass_s": first, "in_sync": same}, f)
    finally:
        dist.destroy_process_group()


def _gathered(flag: bool, world: int) -> list:
    import torch.distributed as dist

    flags = [None] * world
    dist.all_gather_object(flags, flag)
    return flags
