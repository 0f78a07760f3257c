"""What a run writes besides checkpoints: metrics.jsonl, curves.png, JSON files, TensorBoard events.

Every file is replaced atomically, so a run killed at any moment leaves readable files behind. The
TensorBoard event files are the exception, append-only by design (see ``Board``).
"""
from __future__ import annotations

import io
import itertools
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from archc.dsl.errors import CheckpointError
from archc.dsl.text import printable
from archc.runtime.atomic import atomic_write

FIX = "free space on that disk, or make the folder writable"
SCALARS = {"loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train", "val_acc": "accuracy/val",
           "lr": "lr", "images_per_s": "images_per_s"}  # metrics.jsonl key -> TensorBoard tag


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl: one JSON object per finished epoch (rewritten whole, so a resume never duplicates)."""
    atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in history).encode()))


def plot_curves(path: Path, history: list[dict[str, Any]], title: str, best_epoch: int,
                test_acc: float | None = None) -> None:
    """curves.png: train/val loss, train/val accuracy in %, and the learning rate per epoch, the epoch
    best.pt holds marked on each; ``test_acc`` (of best.pt, measured once at the end) on the accuracy panel."""
    from matplotlib.figure import Figure  # the object API renders with Agg and leaves pyplot's backend alone
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(13, 4), layout="constrained")
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    epochs = [r["epoch"] for r in history]
    validated = [r for r in history if r["val_acc"] is not None]
    loss_ax.plot(epochs, [r["loss"] for r in history], marker=".", label="train (with label smoothing)")
    loss_ax.plot([r["epoch"] for r in validated], [r["val_loss"] for r in validated], marker=".", label="val")
    loss_ax.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.plot(epochs, [100 * r["train_acc"] for r in history], marker=".", label="train")
    acc_ax.plot([r["epoch"] for r in validated], [100 * r["val_acc"] for r in validated], marker=".", label="val")
    if test_acc is not None:
        acc_ax.plot([best_epoch], [100 * test_acc], marker="*", markersize=12, linestyle="none",
                    label=f"test of best.pt: {test_acc:.2%}")
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="% correct")
    lr_ax.plot(epochs, [r["lr"] for r in history], marker=".")
    lr_ax.set(title="learning rate (at the end of each epoch)", xlabel="epoch", ylabel="lr")
    for ax in (loss_ax, acc_ax, lr_ax):
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best.pt (epoch {best_epoch})")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.legend(fontsize=8)
    acc_ax.legend(fontsize=8)
    fig.suptitle(printable(title, 150))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


class Board:
    """TensorBoard scalars in the run folder itself, so ``tensorboard --logdir runs`` lists every run.

    Each process that starts or resumes the run writes its own event file, appending one epoch's
    records at a time and closing it in between: no file stays open (a folder can be remounted, a
    disk unplugged between epochs), and a record cut off by a kill ends a file nothing appends to
    again. The first records purge whatever an earlier, killed process logged after its last
    checkpoint (TensorBoard drops earlier events at or past that step), so each epoch shows once.
    """

    def __init__(self, out: Path, first_epoch: int, note: Callable[[str], None]):
        try:  # deferred: only a run needs it
            from tensorboard.compat.proto.event_pb2 import Event, SessionLog
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.record_writer import RecordWriter
        except ImportError:  # a dependency, but an older environment may lack it: train on without the log
            note("TensorBoard log off: the tensorboard package is missing (pip install tensorboard)")
            self.path = None
            return
        self.Event, self.Summary, self.RecordWriter = Event, Summary, RecordWriter
        # TensorBoard reads a folder's event files in name order and, when a later file restarts at an
        # earlier step, drops what it read past that step: names must sort as the runs began. So the
        # name carries the time to the nanosecond, then a fixed-width count for clocks too coarse to
        # tell two runs apart (a resume right after Ctrl-C in the same process).
        ns = time.time_ns()
        stem = f"events.out.tfevents.{ns // 10**9:010d}.{ns % 10**9:09d}.{socket.gethostname()}.{os.getpid()}"
        self.path = next(p for n in itertools.count() if not (p := out / f"{stem}.{n:03d}.archc").exists())
        self._append([Event(wall_time=time.time(), file_version="brain.Event:2"),
                      Event(wall_time=time.time(), step=first_epoch, session_log=SessionLog(status=SessionLog.START))])

    def epoch(self, rec: dict[str, Any]) -> None:
        self.scalars(rec["epoch"], {tag: rec[key] for key, tag in SCALARS.items() if rec.get(key) is not None})

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.path is not None:
            summary = self.Summary(value=[self.Summary.Value(tag=t, simple_value=v) for t, v in values.items()])
            self._append([self.Event(wall_time=time.time(), step=step, summary=summary)])

    def _append(self, events: list) -> None:
        try:
            with open(self.path, "ab") as f:
                writer = self.RecordWriter(f)
                for event in events:
                    writer.write(event.SerializeToString())
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            err = CheckpointError(f"could not write the TensorBoard log: {e.strerror or e}", where=str(self.path),
                                  found=f"{type(e).__name__}: {printable(e)}", hint=f"{FIX}, or write somewhere else")
            err.fix = FIX  # what _save_epoch puts before its resume command
            raise err from None
