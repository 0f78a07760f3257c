"""``archc compare`` (several archs side by side, or several finished runs) and ``archc sweep``
(one arch's parameter grid).

Both report params, MACs and a static fp32 training-memory estimate from the checked graph,
without building a module, and flag rows that are the same network (equal graph hashes: a
``--set depth=20,21,22`` that rounds to one depth). ``compare --measure`` also times real
training steps, each arch in an isolated child process (runtime/measure.py). ``compare --runs``
reads run folders written by ``archc train`` and sets test accuracy against the costs: the
seed question (ResNet or DenseNet?) answered with measurements.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import sys
from pathlib import Path

import click

from archc.dsl.text import markup, printable
from archc.runtime.cli import BYTES, FILE, parse_sets, spec_options

FORMATS = ("table", "md", "csv", "json")
MEMORY_FORMULA = "4 B × (3 × params + batch × activations)"
MAX_VARIANTS = 500  # --max-variants: a sweep checks every variant (~0.1 s each)


def train_memory(graph, batch: int) -> int:
    """Static fp32 training memory in bytes: weights, grads and SGD momentum (3 × params),
    plus every activation kept for backward, for the whole batch: the estimate archc train checks
    before it allocates (runtime/preflight.py). Workspace and allocator slack are not included;
    ``--measure`` shows them."""
    from archc.runtime.preflight import training_memory
    return training_memory(graph, batch).total


def compile_for(file: str, overrides: dict, limits: dict):
    """The checked graph of ``file`` with the overrides it has a parameter for, and those overrides."""
    from archc.compiler.elaborate import Limits
    from archc.compiler.passes import compile_file
    from archc.dsl.loader import load
    names = {p.name for p in load(file).main.params}
    own = {k: v for k, v in overrides.items() if k in names}
    return compile_file(file, overrides=own, limits=Limits(**limits)).graph, own


def static_row(graph, overrides: dict, batch: int) -> dict:
    from archc.compiler.graphhash import graph_hash
    t = graph.totals()
    label = graph.name + "".join(f" {k}={_show(v)}" for k, v in overrides.items())
    return {"arch": label, "input": "×".join(map(str, graph.input_shape)), "params": t.params,
            "macs": t.macs, "activations_bytes": 4 * t.activations, "train_memory_bytes": train_memory(graph, batch),
            "graph_hash": graph_hash(graph)}


def flag_duplicates(rows: list, name) -> None:
    """``same_as``: the first earlier row with the same graph hash, named by ``name(row)``."""
    first = {}
    for row in rows:
        h = row.get("graph_hash")
        if h and h in first:
            row["same_as"] = first[h]
        elif h:
            first[h] = name(row)


def _show(v) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(map(_show, v)) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


# ---- compare ------------------------------------------------------------------------------
@click.command(name="compare")
@click.argument("paths", nargs=-1, required=True)
@click.option("--runs", is_flag=True, help="PATHS are run folders of `archc train`: plot accuracy against costs.")
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Batch size of the memory estimate and of --measure.")
@click.option("--measure", is_flag=True, help="Also time real training steps (fwd + bwd + SGD) per arch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--steps", type=click.IntRange(1, 10_000), default=4, show_default=True,
              help="Timed steps per round with --measure (after 2 untimed warmup steps).")
@click.option("--rounds", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Timed rounds with --measure: images/s is their median, with the range.")
@click.option("--max-memory", type=BYTES, metavar="SIZE",
              help="--measure: refuse an arch whose estimated training memory exceeds SIZE (e.g. 8GB). "
                   "Default: the device's free memory.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the comparison to this PNG.")
@spec_options
def compare_command(paths, runs, batch_size, measure, device, steps, rounds, max_memory, fmt, plot, sets, **limits):
    """Compare architectures: params, MACs and training memory, optionally measured; or
    compare finished training runs: test accuracy against MACs, params and memory.

    \b
    Training memory (static estimate, fp32, SGD with momentum):
      bytes = 4 B × (3 × params + batch × activations)
    params counted three times: weights, gradients, momentum; activations are the
    per-image elements kept for backward (every non-view op output). --measure runs each
    arch in a fresh, isolated process: images/s over --rounds rounds of --steps training
    steps (median and range) and the peak memory: CUDA max_memory_allocated on a GPU, the
    peak-RSS growth on CPU. A --set applies to every arch that has that parameter. Rows
    that compile to the same network (equal graph hash) are marked "same as".

    \b
    Examples:
      archc compare archs/resnet_uva.arch archs/densenet_uva.arch --measure --plot cmp.png
      archc compare archs/resnet18.arch archs/resnet50.arch --batch-size 64 --format md
      archc compare --runs runs/resnet runs/densenet --plot accuracy.png
    """
    from archc.runtime.paths import check_png
    if runs:
        _refuse_with_runs(measure, sets, max_memory)
        from archc.runtime.rundir import FILES
        from archc.runtime.runs_compare import compare_runs
        if plot:  # a run's own curves.png or summary.json is not to be drawn over
            check_png(plot, [Path(d) / name for d in paths for name in FILES])
        compare_runs(paths, fmt, plot)
        return
    ctx = click.get_current_context()
    arg = next(p for p in ctx.command.params if p.name == "paths")
    files = [FILE.convert(p, arg, ctx) for p in paths]  # specs: the checks `archc compile FILE` makes
    if plot:  # before compiling and measuring: minutes of work must not end in a refused path
        check_png(plot, files)
    if max_memory is not None and not measure:
        from archc.dsl.errors import UsageError
        raise UsageError("--max-memory bounds what --measure allocates", where="--max-memory",
                         hint="add --measure, or drop --max-memory")
    fits = _fits_for_measure(batch_size, device, max_memory) if measure else None
    rows = static_rows(files, parse_sets(sets), limits, batch_size, fits)
    if measure:
        _measure_rows(files, rows, sets, limits, batch_size, device, steps, rounds)
    flag_duplicates(rows, lambda r: r["arch"])
    click.echo(format_rows(rows, _columns(measure, batch_size), fmt), nl=False)
    if fmt == "table":
        click.echo(f"train mem: {MEMORY_FORMULA}, fp32, SGD with momentum; act: kept for backward, per image")
    if plot:
        from archc.runtime.compare_plot import plot_rows
        click.echo(f"wrote {printable(plot_rows(rows, plot, batch_size), None)}", err=True)


def _refuse_with_runs(measure: bool, sets, max_memory) -> None:
    from archc.dsl.errors import UsageError
    for flag, given in (("--measure", measure), ("--set", sets), ("--max-memory", max_memory)):
        if given:
            raise UsageError(f"{flag} does not apply to --runs: a run folder keeps what was trained", where=flag,
                             hint=f"drop {flag}, or compare .arch files without --runs")


def _fits_for_measure(batch: int, device: str, max_memory: int | None):
    """A check of one graph before any child starts: it has weights for the timed training step to update,
    and its training estimate at ``batch`` fits the device's free memory and --max-memory, as `archc train`
    checks it."""
    from archc.dsl.errors import MeasureError
    from archc.runtime import distributed, preflight
    dev = distributed.resolve_device(device)
    free = distributed.free_memory(dev)

    def check(graph) -> None:
        if not graph.totals().params:  # the child's optimizer would fail on an empty parameter list
            raise MeasureError(f"{printable(graph.name)} has no learned parameters: --measure times training steps",
                               where="--measure", hint="drop --measure for this arch (its static columns need none)")
        preflight.check_memory(preflight.training_memory(graph, batch), 1, free, str(dev), max_memory)
    return check


def static_rows(files, overrides: dict, limits: dict, batch: int, check=None) -> list[dict]:
    """A row per spec; ``check(graph)`` first, when given (it raises to refuse the spec)."""
    from archc.dsl.errors import UsageError
    rows, used = [], set()
    for file in files:
        graph, own = compile_for(file, overrides, limits)
        if check is not None:
            check(graph)
        used.update(own)
        rows.append(static_row(graph, own, batch))
    unused = sorted(set(overrides) - used)
    if unused:
        raise UsageError(f"`--set {unused[0]}`: none of these archs has a parameter `{unused[0]}`", where="--set")
    return rows


def _measure_rows(files, rows, sets, limits, batch, device, steps, rounds) -> None:
    from archc.runtime.measure import MeasureSpec, measure_in_child
    for i, (file, row) in enumerate(zip(files, rows), 1):
        click.echo(f"measuring {i}/{len(files)}: {printable(file)} ({device}, batch {batch}, "
                   f"{rounds} rounds of {steps} steps)", err=True)
        spec = MeasureSpec(str(Path(file).resolve()), tuple(sets), limits, batch, device, steps, rounds)
        row.update(measure_in_child(spec, lambda line: click.echo(line, err=True)))


def _columns(measured: bool, batch: int) -> list:
    """(key, header, text formatter) per column."""
    from archc.compiler.summary import human
    cols = [("arch", "arch", str), ("input", "input", str), ("params", "params", "{:,}".format),
            ("macs", "MACs/img", human), ("activations_bytes", "act/img", lambda b: human(b, "B")),
            ("train_memory_bytes", f"train mem @{batch}", lambda b: human(b, "B"))]
    if measured:
        cols += [("images_per_s", "img/s (median)", lambda v: f"{v:,.0f}"),
                 ("images_per_s_range", "range", lambda r: f"{r[0]:,.0f}–{r[1]:,.0f}"),
                 ("peak_bytes", "peak mem", lambda b: human(b, "B")), ("device", "device", str)]
    return cols


# ---- sweep ----------------------------------------------------------------------------------
@click.command(name="sweep")
@click.argument("file", type=FILE)
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Batch size of the memory estimate.")
@click.option("--max-variants", type=click.IntRange(1), default=MAX_VARIANTS, show_default=True,
              help="Refuse grids with more combinations (each one is compiled).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@spec_options
def sweep_command(file, batch_size, max_variants, fmt, sets, **limits):
    """Tabulate params, MACs and training memory over a grid of parameter values.

    Each --set NAME=V1,V2,... gives the values to sweep (commas inside [...] or "..."
    belong to the value); the grid is every combination, at most --max-variants. No module
    is built; variants that fail to check are listed with their error, and a variant that
    compiles to the same network as an earlier one (equal graph hash) is marked "same as".
    Memory as in `archc compare`: 4 B × (3 × params + batch × activations).

    \b
    Example:
      archc sweep archs/densenet40_k12.arch --set growth=12,24,32 --set depth=40,100
      archc sweep archs/densenet121.arch --set "blocks=[6,12,24,16],[6,12,32,32]" --format md
    """
    keys = [item.partition("=")[0].strip() for item in sets]
    rows = sweep_rows(file, sets, limits, batch_size, max_variants)
    cols = [(k, k, _show) for k in keys] + _columns(False, batch_size)[2:]
    click.echo(format_rows(rows, cols, fmt), nl=False)


def sweep_rows(file, sets, limits: dict, batch: int, max_variants: int = MAX_VARIANTS) -> list[dict]:
    """One row per combination: the swept values, then params/MACs/memory or the error."""
    from archc.compiler.elaborate import Limits
    from archc.compiler.passes import compile_file
    from archc.dsl.errors import ArchError, ImportError_, ParseError, UsageError
    keys = [s.partition("=")[0].strip() for s in sets]
    axes = [[f"{key}={v}" for v in split_values(value)] for key, _, value in (s.partition("=") for s in sets)]
    count = math.prod(len(a) for a in axes)  # before expanding anything
    if count > max_variants:
        raise UsageError(f"the grid has {count:,} variants, more than --max-variants {max_variants:,}",
                         where="--max-variants", found=" × ".join(str(len(a)) for a in axes) + " values",
                         hint="sweep fewer values per --set, or raise --max-variants (each variant is compiled)")
    rows = []
    with click.progressbar(itertools.product(*axes), length=count, label="checking variants", file=sys.stderr) as bar:
        for combo in bar:
            overrides = parse_sets(combo)
            row = dict(overrides)
            try:
                graph = compile_file(file, overrides=overrides, limits=Limits(**limits)).graph
            except (UsageError, ParseError, ImportError_):
                raise  # a misspelt --set, the file's syntax or its imports: wrong for every variant
            except ArchError as e:
                row["error"] = f"{e.phase}: {e.what}"
            else:
                row.update(static_row(graph, {}, batch))
            rows.append(row)
    flag_duplicates(rows, lambda r: " ".join(f"{k}={_show(r[k])}" for k in keys))
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
    """Rows as a rich table, a Markdown table, CSV (raw numbers) or JSON (raw numbers).
    User text (arch labels, swept values, errors) is escaped: no markup, no control characters."""
    for key, header, text in (("same_as", "same as", str), ("error", "error", str)):
        if any(key in r for r in rows):
            cols = [*cols, (key, header, text)]
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
        lines = ["| " + " | ".join(_md(h) for _, h, _ in cols) + " |",
                 "|" + "|".join("---" if text in (str, _show) else "---:" for _, _, text in cols) + "|"]
        return "\n".join(lines + ["| " + " | ".join(map(_md, c)) + " |" for c in cells]) + "\n"
    return _rich_table(cols, cells)


def _cell(row: dict, key: str, text) -> str:
    return "" if row.get(key) is None else text(row[key])


def _md(text: str) -> str:
    return printable(text).replace("|", "\\|")


def _rich_table(cols, cells) -> str:
    from rich.console import Console
    from rich.table import Table
    table = Table()
    for _, header, text in cols:
        table.add_column(markup(header), justify="left" if text in (str, _show) else "right")
    for c in cells:
        table.add_row(*map(markup, c))
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    return console.file.getvalue()
