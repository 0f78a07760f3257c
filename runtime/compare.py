"""``archc compare`` (several archs side by side) and ``archc sweep`` (one arch's parameter grid).

Both report params, MACs and a static fp32 training-memory estimate from the checked graph,
without building a module. ``compare --measure`` also times real training steps; each arch
runs in a fresh child process (``python -m archc.runtime.compare SPEC``) so that its peak memory
is its own: CUDA's allocator statistics on a GPU, the growth of the child's peak RSS on CPU.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import click

from archc.runtime.cli import FILE, parse_sets, spec_options

WARMUP_STEPS = 2  # excluded from timing: cuDNN autotuning, allocator growth, lazy init
FORMATS = ("table", "md", "csv", "json")
MEMORY_FORMULA = "4 B × (3 × params + batch × activations)"


def train_memory(graph, batch: int) -> int:
    """Static fp32 training memory in bytes: weights, grads and SGD momentum (3 × params),
    plus every activation kept for backward, for the whole batch. Workspace and allocator
    slack are not included; ``--measure`` shows them."""
    t = graph.totals()
    return 4 * (3 * t.params + batch * t.activations)


def compile_for(file: str, overrides: dict, limits: dict):
    """The checked graph of ``file`` with the overrides it has a parameter for, and those overrides."""
    from archc.compiler.elaborate import Limits
    from archc.compiler.passes import compile_file
    from archc.dsl.loader import load
    names = {p.name for p in load(file).main.params}
    own = {k: v for k, v in overrides.items() if k in names}
    return compile_file(file, overrides=own, limits=Limits(**limits)).graph, own


def static_row(graph, overrides: dict, batch: int) -> dict:
    t = graph.totals()
    label = graph.name + "".join(f" {k}={_show(v)}" for k, v in overrides.items())
    return {"arch": label, "input": "×".join(map(str, graph.input_shape)), "params": t.params,
            "macs": t.macs, "activations_bytes": 4 * t.activations, "train_memory_bytes": train_memory(graph, batch)}


def _show(v) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(map(_show, v)) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


# ---- compare ------------------------------------------------------------------------------
@click.command(name="compare")
@click.argument("files", nargs=-1, required=True, type=FILE)
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Batch size of the memory estimate and of --measure.")
@click.option("--measure", is_flag=True, help="Also time real training steps (fwd + bwd + SGD) per arch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=10, show_default=True,
              help=f"Timed steps per arch with --measure, after {WARMUP_STEPS} untimed warmup steps.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw MACs vs params (and throughput) to this PNG.")
@spec_options
def compare_command(files, batch_size, measure, device, steps, fmt, plot, sets, **limits):
    """Compare architectures: params, MACs and training memory, optionally measured.

    \b
    Training memory (static estimate, fp32, SGD with momentum):
      bytes = 4 B × (3 × params + batch × activations)
    params counted three times: weights, gradients, momentum; activations are the
    per-image elements kept for backward (every non-view op output). --measure reports
    images/s over --steps training steps and the peak memory: CUDA max_memory_allocated
    on a GPU, the peak-RSS growth of a fresh process on CPU. A --set applies to every
    arch that has that parameter.

    \b
    Example:
      archc compare archs/resnet_uva.arch archs/densenet_uva.arch --measure --plot cmp.png
      archc compare archs/resnet18.arch archs/resnet50.arch --batch-size 64 --format md
    """
    overrides = parse_sets(sets)
    rows, used = [], set()
    for file in files:
        graph, own = compile_for(file, overrides, limits)
        used.update(own)
        rows.append(static_row(graph, own, batch_size))
    _check_used(overrides, used)
    if measure:
        for file, row in zip(files, rows):
            row.update(measure_in_child(file, sets, limits, batch_size, device, steps))
    click.echo(format_rows(rows, _columns(measure, batch_size), fmt), nl=False)
    if fmt == "table":
        click.echo(f"train mem: {MEMORY_FORMULA}, fp32, SGD with momentum; act: kept for backward, per image")
    if plot:
        click.echo(f"wrote {plot_rows(rows, plot, batch_size)}", err=True)


def _check_used(overrides: dict, used: set):
    from archc.dsl.errors import UsageError
    unused = sorted(set(overrides) - used)
    if unused:
        raise UsageError(f"`--set {unused[0]}`: none of these archs has a parameter `{unused[0]}`", where="--set")


def _columns(measured: bool, batch: int) -> list:
    """(key, header, text formatter) per column."""
    from archc.compiler.summary import human
    cols = [("arch", "arch", str), ("input", "input", str), ("params", "params", "{:,}".format),
            ("macs", "MACs/img", human), ("activations_bytes", "act/img", lambda b: human(b, "B")),
            ("train_memory_bytes", f"train mem @{batch}", lambda b: human(b, "B"))]
    if measured:
        cols += [("images_per_s", "img/s", lambda v: f"{v:,.0f}"), ("peak_bytes", "peak mem", lambda b: human(b, "B")),
                 ("device", "device", str)]
    return cols


# ---- measuring, one child process per arch -----------------------------------------------
def measure_in_child(file, sets, limits, batch, device, steps) -> dict:
    spec = {"file": file, "sets": list(sets), "limits": limits, "batch": batch, "device": device, "steps": steps}
    click.echo(f"measuring {file} ({device}, batch {batch}, {steps} steps)", err=True)
    proc = subprocess.run([sys.executable, "-m", "archc.runtime.compare", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        click.echo(proc.stderr[-2000:], err=True, nl=False)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"measurement failed: {last}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(spec: dict) -> dict:
    """In the child: build the module, run warmup + timed SGD steps, report speed and peak memory."""
    import torch
    from archc.compiler.builder import build_graph
    graph, _ = compile_for(spec["file"], parse_sets(spec["sets"]), spec["limits"])
    want = spec["device"]
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    elif want == "cuda" and not torch.cuda.is_available():
        return {"error": "CUDA is not available here"}
    dev = torch.device(want)
    if dev.type == "cpu":
        _warm_cpu_runtime(torch)
    rss_before = _peak_rss()
    step = _train_step(torch, build_graph(graph).to(dev).train(), graph, spec["batch"], dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(dev)  # the peak still counts the weights: they stay allocated
    try:
        seconds = _timed(torch, step, spec["steps"], dev)
    except torch.cuda.OutOfMemoryError:
        return {"error": "out of memory", "device": str(dev)}
    if dev.type == "cuda":
        peak, name = torch.cuda.max_memory_allocated(dev), torch.cuda.get_device_name(dev)
    else:
        peak, name = _peak_rss() - rss_before, "cpu"
    return {"images_per_s": spec["batch"] * spec["steps"] / seconds, "peak_bytes": peak, "device": name}


def _warm_cpu_runtime(torch):
    """Train a throwaway conv net for two steps. Torch's first CPU training step sets up thread
    pools, per-thread malloc arenas and kernel caches worth ~200 MB of RSS; doing that before
    the baseline keeps it out of the arch's peak-memory delta."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        net(torch.randn(8, 3, 32, 32)).sum().backward()
        opt.step()


def _train_step(torch, model, graph, batch: int, dev):
    """One fwd + bwd + SGD-momentum step on a fixed random batch (cross-entropy for class scores)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, *graph.input_shape, device=dev)
    out_shape = graph.shapes[graph.output_id]
    y = torch.randint(0, out_shape[0], (batch,), device=dev) if len(out_shape) == 1 else None

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, y) if y is not None else out.float().square().mean()
        loss.backward()
        opt.step()
    return step


def _timed(torch, step, steps: int, dev) -> float:
    """Seconds for ``steps`` steps after the warmup; CUDA is synchronised at both ends."""
    import time
    for _ in range(WARMUP_STEPS):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - start


def _peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux reports KiB, macOS bytes)."""
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ---- sweep ----------------------------------------------------------------------------------
@click.command(name="sweep")
@click.argument("file", type=FILE)
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Batch size of the memory estimate.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@spec_options
def sweep_command(file, batch_size, fmt, sets, **limits):
    """Tabulate params, MACs and training memory over a grid of parameter values.

    Each --set NAME=V1,V2,... gives the values to sweep (commas inside [...] or "..."
    belong to the value); the grid is every combination. No module is built; variants
    that fail to check are listed with their error. Memory as in `archc compare`:
    4 B × (3 × params + batch × activations).

    \b
    Example:
      archc sweep archs/densenet40_k12.arch --set growth=12,24,32 --set depth=40,100
      archc sweep archs/densenet121.arch --set "blocks=[6,12,24,16],[6,12,32,32]" --format md
    """
    keys = [item.partition("=")[0].strip() for item in sets]
    rows = sweep_rows(file, sets, limits, batch_size)
    click.echo(format_rows(rows, [(k, k, _show) for k in keys] + _columns(False, batch_size)[2:], fmt), nl=False)


def sweep_rows(file, sets, limits: dict, batch: int) -> list[dict]:
    """One row per combination: the swept values, then params/MACs/memory or the error."""
    from archc.compiler.elaborate import Limits
    from archc.compiler.passes import compile_file
    from archc.dsl.errors import ArchError, UsageError
    axes = [[f"{key}={v}" for v in split_values(value)] for key, _, value in (s.partition("=") for s in sets)]
    rows = []
    for combo in itertools.product(*axes):
        overrides = parse_sets(combo)
        row = dict(overrides)
        try:
            graph = compile_file(file, overrides=overrides, limits=Limits(**limits)).graph
        except UsageError:
            raise  # a misspelt or mistyped --set is wrong for every variant
        except ArchError as e:
            row["error"] = f"{e.phase}: {e.what}"
        else:
            row.update(static_row(graph, {}, batch))
        rows.append(row)
    return rows


def split_values(text: str) -> list[str]:
    """``12,24`` -> ['12', '24']; ``[6,12],[6,24]`` -> ['[6,12]', '[6,24]'] (top-level commas only)."""
    parts, depth, quoted, cur = [], 0, False, ""
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "[(":
            depth += 1
        elif not quoted and ch in "])":
            depth -= 1
        elif ch == "," and depth == 0 and not quoted:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += ch
    return [*parts, cur.strip()]


# ---- output ---------------------------------------------------------------------------------
def format_rows(rows: list, cols: list, fmt: str) -> str:
    """Rows as a rich table, a Markdown table, CSV (raw numbers) or JSON (raw numbers)."""
    if any("error" in r for r in rows):
        cols = [*cols, ("error", "error", str)]
    if fmt == "json":
        return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, [k for k, _, _ in cols], extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    cells = [[_cell(r, key, text) for key, _, text in cols] for r in rows]
    if fmt == "md":
        lines = ["| " + " | ".join(h for _, h, _ in cols) + " |",
                 "|" + "|".join("---" if text is str else "---:" for _, _, text in cols) + "|"]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells]) + "\n"
    return _rich_table(cols, cells)


def _cell(row: dict, key: str, text) -> str:
    return "" if row.get(key) is None else text(row[key])


def _rich_table(cols, cells) -> str:
    from rich.console import Console
    from rich.table import Table
    table = Table()
    for _, header, text in cols:
        table.add_column(header, justify="left" if text is str else "right")
    for c in cells:
        table.add_row(*c)
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    return console.file.getvalue()


# ---- plot -----------------------------------------------------------------------------------
def plot_rows(rows: list, path: str, batch: int) -> Path:
    """MACs vs params, bubble area ∝ training memory; a throughput panel when measured."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    measured = [r for r in rows if "images_per_s" in r]
    fig, axes = plt.subplots(1, 2 if measured else 1, figsize=(12 if measured else 6.5, 4.8), squeeze=False)
    _scatter(axes[0][0], rows, batch)
    if measured:
        _throughput(axes[0][1], measured, batch)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def _scatter(ax, rows: list, batch: int):
    from archc.compiler.summary import human
    xs, ys = [r["params"] / 1e6 for r in rows], [r["macs"] / 1e9 for r in rows]
    mem = [r["train_memory_bytes"] for r in rows]
    sizes = [80 + 2000 * m / max(mem) for m in mem]
    ax.scatter(xs, ys, s=sizes, alpha=0.45, c=[f"C{i}" for i in range(len(rows))], edgecolors="k")
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(f"{r['arch']}\n{human(r['train_memory_bytes'], 'B')}", (x, y), xytext=(8, 6),
                    textcoords="offset points", fontsize=8)
    for axis, values in (("x", xs), ("y", ys)):
        if min(values) > 0 and max(values) / min(values) > 20:  # spans decades: log scale keeps all readable
            getattr(ax, f"set_{axis}scale")("log")
    ax.margins(0.25)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("GMACs per image")
    ax.set_title(f"bubble area ∝ training memory at batch {batch} (estimate)", fontsize=10)
    ax.grid(alpha=0.3)


def _throughput(ax, rows: list, batch: int):
    from archc.compiler.summary import human
    names = [r["arch"] for r in rows]
    speed = [r["images_per_s"] for r in rows]
    bars = ax.barh(names, speed, color=[f"C{i}" for i in range(len(rows))], alpha=0.7)
    for bar, r in zip(bars, rows):
        ax.annotate(f" {r['images_per_s']:,.0f} img/s, peak {human(r['peak_bytes'], 'B')}",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(speed) * 1.6)
    ax.set_xlabel("training images/s (fwd + bwd + SGD)")
    ax.set_title(f"measured on {rows[0]['device']}, batch {batch}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)


if __name__ == "__main__":  # the child process of measure_in_child
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
