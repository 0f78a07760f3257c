"""Just enough torch.distributed: who am I, reductions that are no-ops alone, and a local launcher.

A process is part of a distributed run when ``WORLD_SIZE`` > 1 in its environment, whether
``torchrun`` started it or :func:`spawn` did; gloo serves CPU runs and nccl CUDA runs.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from multiprocessing.connection import wait

from archc.dsl.errors import ArchError, UsageError

RENDEZVOUS = "ARCHC_GROUP_STORE"  # set by spawn for its workers: the file:// URL of their process group's store
JOIN_GRACE_S = 30  # after a failure or Ctrl-C, how long workers get to exit before being terminated


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a distributed run."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; a CUDA process uses the GPU of its local rank."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA is not available on this machine", where="--device cuda", hint="use --device cpu or auto")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank() >= torch.cuda.device_count():
        raise UsageError("more processes than GPUs", where="--nproc", expected=f"at most {torch.cuda.device_count()}",
                         found=str(world()[1]), hint="lower --nproc, or use --device cpu")
    return torch.device("cuda", local_rank())


def precision(name: str, device: torch.device) -> str:
    """The precision ``--precision NAME`` means on ``device``: auto is bf16 autocast on CUDA, fp32 elsewhere."""
    return ("bf16" if device.type == "cuda" else "fp32") if name == "auto" else name


def free_memory(device: torch.device) -> int | None:
    """Bytes ``device`` can still give: the GPU's free memory, or the host's (preflight.host_memory_available)."""
    from archc.runtime.preflight import host_memory_available
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else host_memory_available()


def device_name(device: torch.device) -> str:
    """What the header and summary call the device: the GPU's model, or the CPU threads in use."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def init(device_type: str) -> None:
    """Join the process group: through :func:`spawn`'s rendezvous file, else torchrun's MASTER_ADDR/PORT."""
    rank, size = world()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                init_method=os.environ.get(RENDEZVOUS, "env://"), rank=rank, world_size=size)


def barrier() -> None:
    """Wait for every rank: no rank may tear the group down while a peer still talks to it (gloo
    aborts the process then: "terminate called without an active exception")."""
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def all_min(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any: lets all ranks stop together instead of hanging."""
    return bool(all_sum(torch.tensor([int(flag)], device=device)).item())


def on_rank0(fn: Callable[[], None], device: torch.device, what: str) -> None:
    """Run ``fn`` on rank 0 only (writing files, downloading), then continue or stop on every rank together.

    A failure on rank 0 must stop the other ranks too, or they would wait forever in the next collective.
    """
    error = None
    if world()[0] == 0:
        try:
            fn()
        except ArchError as err:
            error = err
    if any_rank(error is not None, device):
        raise error or ArchError(f"rank 0 failed to {what}; see its message", where=f"rank {world()[0]}")


def _worker(rank: int, nproc: int, store: str, errors: Any, fn: Callable[..., None], args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc), RENDEZVOUS: store})
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))  # share the cores, don't oversubscribe
    try:
        fn(*args)
    except ArchError as err:  # a user-facing error travels back intact (its fields pickle with it)
        errors.put((rank, err))
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def spawn(fn: Callable[..., None], nproc: int, *args: Any) -> None:
    """Run ``fn(*args)`` in ``nproc`` fresh local processes forming one process group.

    If a worker fails, the others are stopped (they would wait forever in a collective) and the
    lowest rank's ArchError is raised here; ``args`` must pickle.
    """
    # The workers (and multiprocessing's resource tracker, started by the queue) run `python -c ...`, which
    # would put the working folder first on sys.path before they import anything: a `multiprocessing/` or
    # `torch/` folder where the user stands would run. PYTHONSAFEPATH (Python 3.11+) leaves it off; they
    # inherit this process's sys.path, which the `archc` script never gives the working folder.
    # The group meets through a file, not a TCP port: a free port found here could be taken by anything on the
    # machine while the workers import torch, which fails the rendezvous.
    ctx = mp.get_context("spawn")
    with _environ(PYTHONSAFEPATH="1"), tempfile.TemporaryDirectory(prefix="archc-group-") as folder:
        errors = ctx.SimpleQueue()
        store = (Path(folder) / "store").as_uri()
        procs = [ctx.Process(target=_worker, args=(r, nproc, store, errors, fn, args)) for r in range(nproc)]
        for p in procs:
            p.start()
        try:
            _join(procs)
        except KeyboardInterrupt:  # the workers got the same Ctrl-C; rank 0 says how to resume
            _stop(procs)
            raise
    failed = []
    while not errors.empty():
        failed.append(errors.get())
    if failed:
        raise min(failed, key=lambda f: f[0])[1]
    codes = {r: p.exitcode for r, p in enumerate(procs) if p.exitcode}
    if codes:
        raise RuntimeError(f"training processes failed with exit codes {codes}; see their output above")


@contextlib.contextmanager
def _environ(**values: str):
    """``values`` in os.environ while the block runs (the workers inherit them), then as they were."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _join(procs: list) -> None:
    alive = list(procs)
    while alive:
        wait([p.sentinel for p in alive])
        alive = [p for p in alive if p.is_alive()]
        if any(p.exitcode for p in procs if not p.is_alive()):
            _stop(alive)
            return


def _stop(procs: list) -> None:
    for p in procs:
        p.join(JOIN_GRACE_S)
        if p.is_alive():
            p.terminate()
            p.join()
