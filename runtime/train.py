"""``train(cfg, model)``: a full training run with checkpoints, metrics and a summary in ``cfg.out``.

best.pt is the epoch with the best accuracy on a validation split held out of the training images
(``--val-split``); the test set is scored once, at the end, on best.pt, so the accuracy reported is
not the one the checkpoint was chosen on.

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

from archc import __version__
from archc.dsl.errors import CheckpointError, UsageError
from archc.dsl.text import printable
from archc.runtime import atomic, checkpoint, distributed, rng, rundir, session
from archc.runtime.config import TrainConfig, stored_config
from archc.runtime.display import Display
from archc.runtime.loop import heldout, train_epoch
from archc.runtime.report import Board, plot_curves, write_json, write_metrics
from archc.runtime.rundir import SpecFacts
from archc.runtime.session import Session

NO_BEST = {"val_acc": None, "epoch": 0}


def build_model(arch: Path, params: dict[str, Any], seed: int = 0, graph: Any = None) -> nn.Module:
    """The net of the .arch file ``arch`` with parameter overrides ``params``, initialised from ``seed``;
    ``graph`` is its checked graph when the caller has compiled it already."""
    from archc.compiler.builder import build_graph  # torch-side compiler, imported only when a model is built
    from archc.compiler.passes import compile_file

    graph = graph if graph is not None else compile_file(path=str(arch), overrides=params).graph
    rng.seed_everything(seed)
    return build_graph(graph)


def train(cfg: TrainConfig, model: nn.Module, facts: SpecFacts | None = None) -> dict[str, Any]:
    """Train ``model`` as ``cfg`` says and return the summary (also written to ``cfg.out/summary.json``).

    ``facts`` (the spec's name, hash and files) go into the run folder when the net came from a spec.
    With ``cfg.nproc > 1`` outside torchrun, ``nproc`` local processes are started: each rebuilds the
    net from ``cfg.arch`` when set, otherwise receives a pickled copy of ``model``.
    """
    if cfg.resume:
        summary = _check_resumable(cfg, model, facts)
        if summary is not None:
            return summary
    elif distributed.world()[0] == 0:  # refuse an occupied --out before any process loads data (_start_fresh claims it)
        rundir.check_new(cfg.out, cfg.force)
    if cfg.nproc > 1 and distributed.world()[1] == 1:
        # Plain pickle bytes, not the module itself: multiprocessing would put its tensors in shared
        # memory, and every process would then step the same weights.
        distributed.spawn(_spawned, cfg.nproc, cfg, None if cfg.arch else pickle.dumps(model), facts)
        return json.loads((cfg.out / "summary.json").read_text())
    device = distributed.resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts, so each rank's communicator uses its own GPU
    distributed.init(device.type)
    try:
        cfg = cfg.model_copy(update={"device": device.type, "precision": distributed.precision(cfg.precision, device)})
        summary = _train(cfg, model, device, facts)
        distributed.barrier()  # only on success: after a failure a peer may be gone, and this would wait
        return summary
    finally:
        distributed.shutdown()


def _spawned(cfg: TrainConfig, model: bytes | None, facts: SpecFacts | None) -> None:
    train(cfg, build_model(cfg.arch, cfg.params, cfg.seed) if model is None else pickle.loads(model), facts)


def _check_resumable(cfg: TrainConfig, model: nn.Module, facts: SpecFacts | None) -> dict[str, Any] | None:
    """The summary of a run that already finished (after saying so), whose last.pt must still load into
    ``model``; refuses a spec changed since the start."""
    started = rundir.started_from(cfg.out).get("graph_hash")
    if facts is not None and started and started != facts.graph_hash:
        raise UsageError(f"{printable(cfg.arch)} is not the network the run in {printable(cfg.out)} was trained with",
                         where=f"--out {printable(cfg.out)}", expected=f"graph hash {started} (run.json)",
                         found=f"graph hash {facts.graph_hash}",
                         hint=f"resume with the spec as it was (a copy is in {printable(cfg.out / rundir.SPEC)}/), "
                              "or start a new run with another --out")
    summary = rundir.finished(cfg.out, cfg.epochs)
    if summary is not None:  # a damaged or foreign last.pt is reported, not hidden behind "finished"
        path = cfg.out / "last.pt"
        state = checkpoint.load(path)
        checkpoint.load_model_state(model, state, path, hint=session.RESUME_HINT)
        summary = summary if state.get("epoch") == cfg.epochs else None
    if summary is not None and distributed.world()[0] == 0:
        print(f"{printable(cfg.out)} has finished all {cfg.epochs} epochs; nothing to train. To train longer, extend it:\n"
              f"  {_command(cfg, '--resume --epochs N')}   (N > {cfg.epochs}; the lr schedule starts over for the added epochs)")
        print("\n".join(_footer(cfg, summary)), flush=True)
    return summary


def _start_fresh(s: Session, facts: SpecFacts | None) -> None:
    out = s.cfg.out

    def write() -> None:
        rundir.claim(out, s.cfg.force)
        atomic.remove_temporaries(out, rundir.FILES)
        write_json(out / "config.json", s.cfg.model_dump(mode="json", exclude={"force"}))
        rundir.keep(out, facts, {"device": str(s.device), "device_name": distributed.device_name(s.device),
                                 "precision": s.cfg.precision, "torch": torch.__version__})
        checkpoint.save(out / "last.pt", session.state(s, 0, [], NO_BEST))  # fails early if --out is unwritable

    rng.seed_everything(s.cfg.seed + s.rank)  # drives dropout and the like; data order has its own generator
    distributed.on_rank0(write, s.device, "start the run folder")


def _reopen(s: Session) -> None:
    """Tidy what a killed run left; an extension (``--resume --epochs N``) records its new length."""
    out = s.cfg.out

    def tidy() -> None:
        atomic.remove_temporaries(out, rundir.FILES)
        if stored_config(out).get("epochs") != s.cfg.epochs:
            write_json(out / "config.json", s.cfg.model_dump(mode="json", exclude={"force"}))

    distributed.on_rank0(tidy, s.device, "tidy the run folder")


def _train(cfg: TrainConfig, model: nn.Module, device: torch.device, facts: SpecFacts | None) -> dict[str, Any]:
    s = session.create(cfg, model, device)
    if cfg.resume:
        done, history, best = session.restore(s)
        _reopen(s)
    else:
        _start_fresh(s, facts)
        done, history, best = 0, [], NO_BEST
    display = Display(s.rank == 0, cfg.quiet, cfg.epochs, s.steps, cfg.batch_size)
    display.block(_header(s, facts, done))
    boards: list[Board] = []  # rank 0's TensorBoard writer
    distributed.on_rank0(lambda: boards.append(Board(cfg.out, done + 1, display.note)), s.device, "open the TensorBoard log")
    saved = [done]  # the epoch last.pt holds (rank 0), updated the moment its write lands
    try:
        for epoch in range(done + 1, cfg.epochs + 1):
            best = _epoch(s, epoch, history, best, display, boards, saved)
    except KeyboardInterrupt:
        display.note(f"\ninterrupted: {cfg.out / 'last.pt'} holds epoch {saved[0]} of {cfg.epochs}.\n"
                     f"continue with: {_command(cfg, '--resume')}")
        raise
    summary = _finish(s, history, best, facts, boards)
    display.block(_footer(cfg, summary))
    return summary


def _epoch(s: Session, epoch: int, history: list[dict], best: dict, display: Display, boards: list[Board],
           saved: list[int]) -> dict:
    """Train, validate and save one epoch; returns the best epoch so far."""
    start = time.perf_counter()
    with display.epoch(epoch) as progress:
        stats = train_epoch(s, epoch, progress)
    validate = len(s.val_y) and (epoch % s.cfg.eval_every == 0 or epoch == s.cfg.epochs)
    val_acc, val_loss = heldout(s, s.val_x, s.val_y) if validate else (None, None)
    rec = {"epoch": epoch, "loss": stats["loss"], "train_acc": stats["train_acc"], "val_acc": val_acc,
           "val_loss": val_loss, "lr": s.optimizer.param_groups[0]["lr"], "images_per_s": stats["images_per_s"],
           "seconds": time.perf_counter() - start}
    history.append(rec)
    # Without a validation split there is nothing to select on: best.pt is the latest epoch.
    improved = not len(s.val_y) or (val_acc is not None and (best["val_acc"] is None or val_acc > best["val_acc"]))
    best = {"val_acc": val_acc, "epoch": epoch} if improved else best
    distributed.on_rank0(lambda: _save_epoch(s, epoch, history, best, improved, saved, boards[0]), s.device, "save the epoch")
    display.line(rec)
    return best


def _command(cfg: TrainConfig, flags: str) -> str:
    arch = shlex.quote(str(cfg.arch)) if cfg.arch else "FILE"
    return printable(f"archc train {arch} --out {shlex.quote(str(cfg.out))} {flags}", None)


def _save_epoch(s: Session, epoch: int, history: list[dict], best: dict, improved: bool, saved: list[int],
                board: Board) -> None:
    """Write last.pt (then best.pt, metrics.jsonl, curves.png, the TensorBoard log); a failed write says
    what to do, then how to go on."""
    out = s.cfg.out
    try:
        checkpoint.save(out / "last.pt", session.state(s, epoch, history, best))
        saved[0] = epoch
        if improved:
            checkpoint.copy(out / "last.pt", out / "best.pt")
        write_metrics(out / "metrics.jsonl", history)
        plot_curves(out / "curves.png", history, _title(s.cfg), best["epoch"])
        board.epoch(history[-1])
    except CheckpointError as err:  # a full disk, a size limit, a folder gone read-only
        raise CheckpointError(f"{err.what}; training stopped after epoch {epoch}", where=err.where, found=err.found,
                              hint=f"{getattr(err, 'fix', 'fix that')}, then continue from epoch {saved[0]} (what last.pt holds) with: "
                                   f"{_command(s.cfg, '--resume')}") from None


def _title(cfg: TrainConfig) -> str:
    return f"{Path(str(cfg.arch)).stem if cfg.arch else 'model'}: {cfg.out}"


def _finish(s: Session, history: list[dict], best: dict, facts: SpecFacts | None, boards: list[Board]) -> dict[str, Any]:
    """Score best.pt on the test set, once, and write summary.json and the final curves."""
    if best["epoch"] != history[-1]["epoch"]:  # the weights in memory are the last epoch's
        path = s.cfg.out / "best.pt"
        checkpoint.load_model_state(s.model, checkpoint.load(path), path)
    test_acc, test_loss = heldout(s, s.data.test_x, s.data.test_y, s.cfg.tta) if len(s.data.test_y) else (None, None)
    summary = _summary(s, history, best, facts) | {"test_acc": test_acc, "test_loss": test_loss}

    def write() -> None:
        if test_acc is not None:
            boards[0].scalars(best["epoch"], {"accuracy/test_of_best": test_acc})
        plot_curves(s.cfg.out / "curves.png", history, _title(s.cfg), best["epoch"], test_acc)
        write_json(s.cfg.out / "summary.json", summary)

    distributed.on_rank0(write, s.device, "write summary.json")
    return summary


def _summary(s: Session, history: list[dict], best: dict, facts: SpecFacts | None) -> dict[str, Any]:
    images = s.steps * s.cfg.batch_size
    train_seconds = sum(images / r["images_per_s"] for r in history)
    return {"arch": facts.arch if facts else None, "graph_hash": facts.graph_hash if facts else None,
            "macs": facts.macs if facts else None, "params": sum(p.numel() for p in s.model.parameters()),
            "epochs": len(history), "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
            "selected_on": "val" if len(s.val_y) else "last epoch (--val-split 0)", "tta": s.cfg.tta,
            "final_val_acc": history[-1]["val_acc"],
            "images": {"train": len(s.data.train_y), "val": len(s.val_y), "test": len(s.data.test_y)},
            "total_seconds": sum(r["seconds"] for r in history), "images_per_s": images * len(history) / train_seconds,
            "device": s.device.type, "device_name": distributed.device_name(s.device), "nproc": s.world,
            "precision": "bf16" if s.bf16 else "fp32", "torch": torch.__version__, "archc": __version__}


def _header(s: Session, facts: SpecFacts | None, done: int) -> list[str]:
    cfg = s.cfg
    net = (f"{facts.arch} ({printable(facts.path)}), graph {facts.graph_hash[:12]}, {facts.macs / 1e6:,.2f}M MACs/image"
           if facts else type(s.model).__name__)
    params = sum(p.numel() for p in s.model.parameters())
    procs = f", {s.world} processes" if s.world > 1 else ""
    start = "starting" if not done else f"resuming after epoch {done} (last.pt)"
    restarts = f"; the lr schedule starts over after epoch {', '.join(map(str, cfg.restarts))}" if cfg.restarts else ""
    return [f"archc {__version__} train: {net}, {params:,} params",
            f"device: {distributed.device_name(s.device)}, {'bf16 autocast' if s.bf16 else 'fp32'}{procs}",
            f"data: {printable(cfg.data)}: {len(s.data.train_y):,} train / {len(s.val_y):,} val / "
            f"{len(s.data.test_y):,} test images; {s.steps} step{'s' * (s.steps != 1)} of {cfg.batch_size} per epoch",
            f"run: {printable(cfg.out)} ({start}, {cfg.epochs} epoch{'s' * (cfg.epochs != 1)}{restarts}; tensorboard --logdir {printable(cfg.out.parent)})"]


def _footer(cfg: TrainConfig, summary: dict[str, Any]) -> list[str]:
    """Where the result is and how to use it; from summary.json alone, so a finished run can say it again."""
    best = f"epoch {summary['best_epoch']}"
    chosen = (f"best.pt: {best}, chosen on validation accuracy {summary['best_val_acc']:.2%}"
              if summary.get("best_val_acc") is not None else f"best.pt: {best}, the last (no validation split)")
    test = summary.get("test_acc")
    views = f", {summary['tta']} test-time views" if summary.get("tta", "none") != "none" else ""
    scored = f"test accuracy {test:.2%} on {summary['images']['test']:,} images (measured once, on best.pt{views})" \
        if test is not None else "no test images"
    arch = shlex.quote(str(cfg.arch)) if cfg.arch else "FILE"
    best_pt = shlex.quote(str(cfg.out / "best.pt"))
    return [f"{chosen}; {scored}",
            f"checkpoint: {printable(cfg.out / 'best.pt')}   curves: {printable(cfg.out / 'curves.png')}",
            printable(f"evaluate: archc eval {arch} --checkpoint {best_pt} --data {shlex.quote(cfg.data)}", None)]


if __name__ == "__main__":
    from archc.runtime.commands import run_standalone, train_command

    run_standalone(train_command)
