"""What a run shows and writes: the per-epoch progress display, metrics.jsonl, curves.png, JSON files.

Every file is replaced atomically, so a run killed at any moment leaves readable files behind.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from archc.runtime.atomic import atomic_write


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl: one JSON object per finished epoch (rewritten whole, so a resume never duplicates)."""
    atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in history).encode()))


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """curves.png: training loss, and train/test accuracy, per epoch."""
    from matplotlib.figure import Figure  # the object API renders with Agg and leaves pyplot's backend alone
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    loss_ax.plot(epochs, [r["loss"] for r in history], marker=".")
    loss_ax.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.plot(epochs, [r["train_acc"] for r in history], marker=".", label="train")
    tested = [r for r in history if r["test_acc"] is not None]
    acc_ax.plot([r["epoch"] for r in tested], [r["test_acc"] for r in tested], marker=".", label="test")
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="fraction correct")
    acc_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def format_epoch(rec: dict[str, Any], epochs: int) -> str:
    test = f"{rec['test_acc']:6.2%}" if rec["test_acc"] is not None else "     -"
    return (f"epoch {rec['epoch']:>{len(str(epochs))}}/{epochs}  loss {rec['loss']:.4f}  train {rec['train_acc']:6.2%}  "
            f"test {test}  lr {rec['lr']:.2e}  {rec['images_per_s']:,.0f} img/s  {rec['seconds']:.1f}s")


class Display:
    """A live bar per epoch on a terminal, else nothing until the epoch's one plain line; silent off rank 0."""

    def __init__(self, enabled: bool, quiet: bool, epochs: int, steps: int, batch: int):
        self.enabled, self.epochs, self.steps, self.batch = enabled, epochs, steps, batch
        self.live = enabled and not quiet and sys.stdout.isatty()

    @contextlib.contextmanager
    def epoch(self, epoch: int) -> Iterator[Callable[[int, float, float], None]]:
        if not self.live:
            yield lambda step, loss, acc: None
            return
        columns = (TextColumn(f"epoch {epoch}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn())
        with Progress(*columns, transient=True) as bar:
            task, start = bar.add_task("", total=self.steps, stats=""), time.perf_counter()

            def show(step: int, loss: float, acc: float) -> None:
                rate = step * self.batch / max(time.perf_counter() - start, 1e-9)
                bar.update(task, completed=step, stats=f"loss {loss:.4f}  acc {acc:6.2%}  {rate:,.0f} img/s")

            yield show

    def line(self, rec: dict[str, Any]) -> None:
        if self.enabled:
            print(format_epoch(rec, self.epochs), flush=True)

    def note(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)
