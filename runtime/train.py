"""``train(cfg, model)``: a full training run with checkpoints, metrics and a summary in ``cfg.out``.

Also an entry point taking the ``archc train`` flags, so torchrun can start the processes itself:
``torchrun --nproc_per_node 2 -m archc.runtime.train FILE --data DIR --out RUN_DIR``.
"""
from __future__ import annotations

import json
import pickle
import shlex
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archc.dsl.errors import CheckpointError, UsageError
from archc.runtime import atomic, checkpoint, distributed, rng, session
from archc.runtime.config import TrainConfig
from archc.runtime.loop import heldout_accuracy, train_epoch
from archc.runtime.report import Display, plot_curves, write_json, write_metrics
from archc.runtime.session import Session

STALE = ("best.pt", "summary.json", "metrics.jsonl", "curves.png")  # a fresh run in an old folder drops these
RUN_FILES = ("config.json", "last.pt", *STALE)
NO_BEST = {"test_acc": None, "epoch": 0}


def build_model(arch: Path, params: dict[str, Any], seed: int = 0) -> nn.Module:
    """The net of the .arch file ``arch`` with parameter overrides ``params``, initialised from ``seed``."""
    from archc.compiler.builder import build  # torch-side compiler, imported only when a model is built from a file

    rng.seed_everything(seed)
    return build(Path(arch), overrides=params)  # a Path is always read as a file, whatever its suffix


def train(cfg: TrainConfig, model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``model`` as ``cfg`` says and return the summary (also written to ``cfg.out/summary.json``).

    ``extra`` is merged into the summary (e.g. ``macs``, ``arch``). With ``cfg.nproc > 1`` outside
    torchrun, ``nproc`` local processes are started: each rebuilds the net from ``cfg.arch`` when
    set, otherwise receives a pickled copy of ``model``.
    """
    if cfg.nproc > 1 and distributed.world()[1] == 1:
        # Plain pickle bytes, not the module itself: multiprocessing would put its tensors in shared
        # memory, and every process would then step the same weights.
        distributed.spawn(_spawned, cfg.nproc, cfg, None if cfg.arch else pickle.dumps(model), extra)
        return json.loads((cfg.out / "summary.json").read_text())
    device = distributed.resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts, so each rank's communicator uses its own GPU
    distributed.init(device.type)
    try:
        summary = _train(cfg, model, device, extra or {})
        distributed.barrier()  # only on success: after a failure a peer may be gone, and this would wait
        return summary
    finally:
        distributed.shutdown()


def _spawned(cfg: TrainConfig, model: bytes | None, extra: dict[str, Any] | None) -> None:
    train(cfg, build_model(cfg.arch, cfg.params, cfg.seed) if model is None else pickle.loads(model), extra)


def _start_fresh(s: Session) -> None:
    out = s.cfg.out

    def write() -> None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError("cannot create the run folder", where=f"--out {out}", found=str(e), hint="choose a writable path") from None
        try:
            for name in STALE:
                (out / name).unlink(missing_ok=True)
        except OSError as e:  # e.g. a read-only folder holding an earlier run
            raise UsageError("cannot clear the earlier run's files from the run folder", where=f"--out {out}",
                             found=f"{e.filename}: {e.strerror or e}", hint="make it writable, or choose another --out") from None
        atomic.remove_temporaries(out, RUN_FILES)
        write_json(out / "config.json", s.cfg.model_dump(mode="json"))
        checkpoint.save(out / "last.pt", session.state(s, 0, [], NO_BEST))  # fails early if --out is unwritable

    rng.seed_everything(s.cfg.seed + s.rank)  # drives dropout and the like; data order has its own generator
    distributed.on_rank0(write, s.device, "start the run folder")


def _train(cfg: TrainConfig, model: nn.Module, device: torch.device, extra: dict[str, Any]) -> dict[str, Any]:
    s = session.create(cfg, model, device)
    if cfg.resume:
        done, history, best = session.restore(s)
        distributed.on_rank0(lambda: atomic.remove_temporaries(cfg.out, RUN_FILES), s.device, "tidy the run folder")
    else:
        _start_fresh(s)
        done, history, best = 0, [], NO_BEST
    saved = [done]  # the epoch last.pt holds (rank 0), updated the moment its write lands
    display = Display(s.rank == 0, cfg.quiet, cfg.epochs, s.steps, cfg.batch_size)
    try:
        for epoch in range(done + 1, cfg.epochs + 1):
            start = time.perf_counter()
            with display.epoch(epoch) as show:
                stats = train_epoch(s, epoch, show)
            test_acc = heldout_accuracy(s) if epoch % cfg.eval_every == 0 or epoch == cfg.epochs else None
            rec = {"epoch": epoch, "loss": stats["loss"], "train_acc": stats["train_acc"], "test_acc": test_acc,
                   "lr": s.optimizer.param_groups[0]["lr"], "images_per_s": stats["images_per_s"],
                   "seconds": time.perf_counter() - start}
            history.append(rec)
            improved = test_acc is not None and (best["test_acc"] is None or test_acc > best["test_acc"])
            best = {"test_acc": test_acc, "epoch": epoch} if improved else best
            distributed.on_rank0(lambda: _save_epoch(s, epoch, history, best, improved, saved), s.device, "save the epoch")
            display.line(rec)
    except KeyboardInterrupt:
        display.note(f"\ninterrupted: {cfg.out / 'last.pt'} holds epoch {saved[0]} of {cfg.epochs}.\n"
                     f"continue with: {_resume_command(cfg)}")
        raise
    summary = _summary(s, history, best) | extra
    distributed.on_rank0(lambda: write_json(cfg.out / "summary.json", summary), s.device, "write summary.json")
    return summary


def _resume_command(cfg: TrainConfig) -> str:
    return f"archc train {shlex.quote(str(cfg.arch)) if cfg.arch else 'FILE'} --out {shlex.quote(str(cfg.out))} --resume"


def _save_epoch(s: Session, epoch: int, history: list[dict], best: dict, improved: bool, saved: list[int]) -> None:
    """Write last.pt (then best.pt, metrics.jsonl, curves.png); a failed write says what to do, then how to go on."""
    out = s.cfg.out
    try:
        checkpoint.save(out / "last.pt", session.state(s, epoch, history, best))
        saved[0] = epoch
        if improved:
            checkpoint.copy(out / "last.pt", out / "best.pt")
        write_metrics(out / "metrics.jsonl", history)
        plot_curves(out / "curves.png", history)
    except CheckpointError as err:  # a full disk, a size limit, a folder gone read-only
        raise CheckpointError(f"{err.what}; training stopped after epoch {epoch}", where=err.where, found=err.found,
                              hint=f"{getattr(err, 'fix', 'fix that')}, then continue from epoch {saved[0]} (what last.pt holds) with: "
                                   f"{_resume_command(s.cfg)}") from None


def _summary(s: Session, history: list[dict], best: dict) -> dict[str, Any]:
    images = s.steps * s.cfg.batch_size
    train_seconds = sum(images / r["images_per_s"] for r in history)
    device = torch.cuda.get_device_name(s.device) if s.device.type == "cuda" else "cpu"
    return {"final_test_acc": history[-1]["test_acc"] if history else None, "best_test_acc": best["test_acc"],
            "best_epoch": best["epoch"], "epochs": len(history), "total_seconds": sum(r["seconds"] for r in history),
            "images_per_s": images * len(history) / train_seconds if history else None,
            "params": sum(p.numel() for p in s.model.parameters()), "device": device, "nproc": s.world,
            "precision": "bf16" if s.bf16 else "fp32", "torch": torch.__version__,
            "arch": str(s.cfg.arch) if s.cfg.arch else None, "macs": None}


if __name__ == "__main__":
    from archc.runtime.commands import run_standalone, train_command

    run_standalone(train_command)
