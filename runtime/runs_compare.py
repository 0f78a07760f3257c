"""``archc compare --runs DIR...``: finished training runs side by side, accuracy against costs.

A run folder is what ``archc train --out DIR`` wrote: summary.json (accuracies, params, MACs,
graph hash), config.json (batch size, --set values), run.json and spec/ (the .arch files as
trained). summary.json has grown keys over archc versions, so every key is read defensively:
a missing or mistyped figure is shown as empty, never guessed. The memory estimate needs the
graph: it is compiled from the run's own copy of the spec (spec/), not from today's file.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from archc.dsl.text import printable

# summary.json keys for the test accuracy of best.pt, newest first (older runs named it differently)
TEST_ACC_KEYS = ("test_acc", "best_test_acc", "final_test_acc")


@dataclass(frozen=True)
class RunRow:
    run: str  # the folder's name
    arch: str | None
    sets: str | None  # the --set values it was trained with, as .arch writes them
    group: str  # runs of the same network share it: the graph hash, else the arch name, else the folder
    graph_hash: str | None
    test_acc: float | None
    best_val_acc: float | None
    params: int | None
    macs: int | None
    train_memory_bytes: int | None  # at the run's batch size, from its copy of the spec
    batch: int | None
    images_per_s: float | None  # training throughput the run measured
    device: str | None


def compare_runs(dirs, fmt: str, plot: str | None) -> None:
    from archc.runtime.compare import flag_duplicates, format_rows
    rows = [asdict(read_run(Path(d))) for d in dirs]
    flag_duplicates(rows, lambda r: r["run"])
    click.echo(format_rows(rows, _columns(), fmt), nl=False)
    if plot:
        from archc.runtime.compare_plot import plot_runs
        click.echo(f"wrote {printable(plot_runs(rows, plot), None)}", err=True)


def read_run(path: Path) -> RunRow:
    """The figures of one finished run; UsageError naming the folder when it is not one."""
    from archc.dsl.errors import UsageError
    from archc.runtime import rundir
    summary = rundir.finished(path)
    if summary is None:
        raise UsageError("not a finished archc run", where=printable(path),
                         expected="a folder with summary.json, written by `archc train --out DIR` when it finishes",
                         hint="pass the --out folder of a finished run (resume an interrupted one with --resume)")
    about, config = rundir.started_from(path), rundir.read_object(path / "config.json")
    arch = _str(summary.get("arch")) or _str(about.get("arch"))
    batch = _int(config.get("batch_size"))
    params = config.get("params") if isinstance(config.get("params"), dict) else {}
    graph = _graph(path, about, params)
    memory = None
    if graph is not None and batch is not None:
        from archc.runtime.compare import train_memory
        memory = train_memory(graph, batch)
    digest = _str(summary.get("graph_hash")) or _str(about.get("graph_hash")) or _hash(graph)
    test = next((v for v in (_fraction(summary.get(k)) for k in TEST_ACC_KEYS) if v is not None), None)
    return RunRow(path.name or str(path), arch, _sets(params), digest or arch or str(path), digest, test,
                  _fraction(summary.get("best_val_acc")), _int(summary.get("params")), _int(summary.get("macs")),
                  memory, batch, _number(summary.get("images_per_s")), _str(summary.get("device")))


def _sets(params: dict) -> str | None:
    from archc.compiler.evaluate import show
    return printable(" ".join(f"{k}={show(_tuples(v))}" for k, v in params.items()), 80) or None


def _graph(path: Path, about: dict, params: dict):
    """The run's network compiled from its spec/ copy with its --set values; None when the run kept
    no copy or the copy no longer compiles."""
    from archc.compiler.passes import compile_file
    from archc.dsl.errors import ArchError
    copy = _str(about.get("copy"))
    spec = (path / copy) if copy else None
    if spec is None or not spec.resolve().is_relative_to(path.resolve()) or not spec.is_file():
        return None
    try:
        g = compile_file(str(spec), overrides={k: _tuples(v) for k, v in params.items()}).graph
    except ArchError:
        return None
    return g


def _hash(graph) -> str | None:
    """The graph hash of a run whose folder records none (an older archc): computed from its spec/ copy."""
    from archc.compiler.graphhash import graph_hash
    return graph_hash(graph) if graph is not None else None


def _columns() -> list:
    from archc.compiler.summary import human
    return [("run", "run", str), ("arch", "arch", str), ("sets", "--set", str), ("graph_hash", "graph", lambda h: h[:12]),
            ("test_acc", "test acc", _percent), ("best_val_acc", "val acc", _percent),
            ("params", "params", "{:,}".format),
            ("macs", "MACs/img", human), ("train_memory_bytes", "train mem (est.)", lambda b: human(b, "B")),
            ("batch", "batch", str), ("images_per_s", "train img/s", lambda v: f"{v:,.0f}"), ("device", "device", str)]


def _percent(v: float) -> str:
    return f"{100 * v:.2f}%"


# ---- defensive readers: a figure of the wrong type is absent, not an error ------------------------
def _number(v) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def _int(v) -> int | None:
    n = _number(v)
    return int(n) if n is not None and n == int(n) and n >= 0 else None


def _fraction(v) -> float | None:
    n = _number(v)
    return n if n is not None and 0 <= n <= 1 else None


def _str(v) -> str | None:
    return v if isinstance(v, str) and v else None


def _tuples(v):
    """JSON lists back to the tuples the compiler takes for list values."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v
