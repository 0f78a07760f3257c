"""What a run prints: a header, progress within each epoch, one line per epoch, and a footer.

On a terminal the progress is a live bar; anywhere else (CI, nohup, a pipe) it is a plain line at
every ~10% of an epoch, so a log shows the run is alive long before an epoch ends. ``--quiet`` keeps
the header, the epoch lines and the footer only. Ranks other than 0 print nothing.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LIVE_EVERY = 20  # steps between updates of the live bar: each costs a device sync
LINES = 10  # progress lines per epoch off a terminal (one every 10%, the last being the epoch line)


def format_epoch(rec: dict[str, Any], epochs: int) -> str:
    val = f"{rec['val_acc']:6.2%}" if rec["val_acc"] is not None else "     -"
    val_loss = f"{rec['val_loss']:.4f}" if rec["val_loss"] is not None else "     -"
    return (f"epoch {rec['epoch']:>{len(str(epochs))}}/{epochs}  loss {rec['loss']:.4f}  train {rec['train_acc']:6.2%}  "
            f"val {val} (loss {val_loss})  lr {rec['lr']:.2e}  {rec['images_per_s']:,.0f} img/s  {rec['seconds']:.1f}s")


class Silent:
    """Progress that shows nothing, so the loop never reads the device for it (also bench/gpu.py's)."""

    def wants(self, step: int) -> bool:
        return False

    def show(self, step: int, loss: float, acc: float) -> None:
        pass


class _Lines:
    """A plain line at every ~10% of the epoch (at most LINES - 1 of them; the epoch line ends it)."""

    def __init__(self, epoch: int, epochs: int, steps: int, batch: int):
        self.epoch, self.epochs, self.steps, self.batch = epoch, epochs, steps, batch
        self.marks = {steps * k // LINES for k in range(1, LINES)} - {0, steps}
        self.start = time.perf_counter()

    def wants(self, step: int) -> bool:
        return step in self.marks

    def show(self, step: int, loss: float, acc: float) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        print(f"  epoch {self.epoch:>{len(str(self.epochs))}}/{self.epochs} {100 * step // self.steps:3d}%  "
              f"step {step}/{self.steps}  loss {loss:.4f}  train {acc:6.2%}  {step * self.batch / elapsed:,.0f} img/s  "
              f"{(self.steps - step) * elapsed / step:.0f}s left in the epoch", flush=True)


class _Bar:
    def __init__(self, bar: Progress, task: Any, batch: int):
        self.bar, self.task, self.batch, self.start = bar, task, batch, time.perf_counter()

    def wants(self, step: int) -> bool:
        return step % LIVE_EVERY == 0

    def show(self, step: int, loss: float, acc: float) -> None:
        rate = step * self.batch / max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, completed=step, stats=f"loss {loss:.4f}  acc {acc:6.2%}  {rate:,.0f} img/s")


class Display:
    """The run's output on stdout (notes on stderr); everything is silent off rank 0."""

    def __init__(self, enabled: bool, quiet: bool, epochs: int, steps: int, batch: int):
        self.enabled, self.epochs, self.steps, self.batch = enabled, epochs, steps, batch
        self.mode = "silent" if not enabled or quiet else "live" if sys.stdout.isatty() else "lines"

    @contextlib.contextmanager
    def epoch(self, epoch: int) -> Iterator[Silent | _Lines | _Bar]:
        if self.mode != "live":
            yield _Lines(epoch, self.epochs, self.steps, self.batch) if self.mode == "lines" else Silent()
            return
        columns = (TextColumn(f"epoch {epoch}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn())
        with Progress(*columns, transient=True) as bar:
            yield _Bar(bar, bar.add_task("", total=self.steps, stats=""), self.batch)

    def line(self, rec: dict[str, Any]) -> None:
        if self.enabled:
            print(format_epoch(rec, self.epochs), flush=True)

    def block(self, lines: list[str]) -> None:
        """The header or the footer."""
        if self.enabled:
            print("\n".join(lines), flush=True)

    def note(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)
