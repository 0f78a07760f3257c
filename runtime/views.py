"""What the read-only CLI commands print: summary tables, stage dumps, the registry.

Kept apart from cli.py so the command definitions stay declarative; torch is imported only
when a module is built (``compile`` without --emit/--render, ``--emit python``).
Tables are plain text laid out here in one linear pass: rich needed ~8 ms a row, minutes for a
100k-node graph, and cut long scope names to the terminal's width.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from archc.compiler.ops import fmt
from archc.compiler.render import FORMATS, image_path, render, to_dot
from archc.compiler.summary import human
from archc.dsl.errors import ArchError, UsageError
from archc.dsl.loader import shown
from archc.dsl.text import printable
from archc.runtime.cli import compile_spec, parse_sets
from archc.runtime.paths import refuse_overwrite, write_output

NOTE = ("MACs: multiply-adds of conv and linear; other ops: elementwise work of bn, activations, "
        "pools and merges; act: forward activations kept for backward, per sample.")


def _write(text: str, output: str | None):
    if output:
        write_output(output, text.encode(), "-o", parents=True)
        click.echo(f"wrote {printable(output, None)}", err=True)
    elif sys.stdout.isatty():  # spec strings may hold ESC sequences or bidi overrides: not for a terminal
        click.echo("\n".join(printable(line, None) for line in text.splitlines()))
    else:  # a pipe gets the exact text
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Aligned text lines: a header, a rule, the rows. Cells are already printable text."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(header), "-" * sum(w + 2 for w in widths), *map(line, rows)]


def print_summary(file, sets, limits, depth, as_json):
    """The cost table; on a shape error, the table up to the failing node, then the error."""
    from archc.compiler.summary import as_json as summary_json
    g, error, failed = _compile_or_partial(file, sets, limits)
    if as_json and error is None:
        click.echo(json.dumps(summary_json(g, depth), indent=1))
    elif not as_json:
        title, lines, bad = _summary_lines(g, depth, failed)
        click.echo(title)
        for i, text in enumerate(lines):
            click.secho(text, fg="red" if i == bad else None, bold=i == bad)  # no colour when piped
        if error is None:
            kept_input = 4 * g.costs[g.input_id].activations
            click.echo(NOTE + (f" The total also counts the input itself ({human(kept_input, 'B')} fp32), "
                               "which the first layers' backward reads." if kept_input else ""))
    if error is not None:
        raise error


def _compile_or_partial(file, sets, limits):
    """(graph, None, None), or after a ShapeError (graph so far, the error, the failing node)."""
    from archc.compiler.elaborate import Limits
    from archc.compiler.passes import Compilation, run
    from archc.compiler.summary import partial
    from archc.dsl.errors import ShapeError
    comp = Compilation(file, None, parse_sets(sets), Limits(**limits))
    try:
        return run(comp).graph, None, None
    except ShapeError as e:
        g, failed = partial(comp.graph)
        return g, e, failed


def _summary_lines(g, depth, failed=None) -> tuple[str, list[str], int | None]:
    """(title, table lines, index of the failing row's line or None). Every user string is printable."""
    from archc.compiler.summary import Row, outputs, rows, scope_key
    found = rows(g, depth)
    bad = (scope_key(failed.id, depth) or g.name) if failed else None
    if bad is not None and bad not in {r.name for r in found}:  # the failing node opens a new row
        found.append(Row(bad, failed.op, 0, (), 0, 0, 0, 0, 0))
    cells = [[printable(r.name, None), printable(r.kind), "✗ shape error" if r.name == bad else fmt(r.output_shape),
              f"{r.params:,}", human(r.macs), human(r.other_ops), human(r.act_fp32_bytes, "B"),
              human(r.act_bf16_bytes, "B")] for r in found]
    t = g.totals()
    out = fmt(g.shapes[g.output_id]) if failed is None else "(so far)"
    cells.append(["total", f"{len(g):,} nodes", out, f"{t.params:,}", human(t.macs), human(t.other_ops),
                  human(4 * t.activations, "B"), human(2 * t.activations, "B")])
    header = ["scope", "op / block", "output", "params", "MACs", "other ops", "act fp32", "act bf16"]
    lines = table(header, cells, right=set(range(2, 8)))
    lines.insert(len(lines) - 1, lines[1])  # a rule above the total
    if g.aux_ids and failed is None:
        lines += [_output_line(o, i) for i, o in enumerate(outputs(g))]
    bad_line = next((i + 2 for i, r in enumerate(found) if r.name == bad), None)
    return f"{printable(g.name)}  input {fmt(g.input_shape)}", lines, bad_line


def _output_line(o, i: int) -> str:
    """``output 1000: 1.50G MACs in eval`` / ``aux 2 (aux1) 1000: +0.01G MACs, +3.4M params in training``."""
    if i == 0:
        return f"output {fmt(o.shape)}: {human(o.macs)} MACs in eval (the auxiliary heads run only in training)"
    return (f"aux {i} ({printable(o.name)}) {fmt(o.shape)}: +{human(o.macs)} MACs, "
            f"+{o.params:,} params in training")


# ---- compile -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompileFlags:
    emit: str | None
    render: bool
    fmt: str | None
    depth: int | None
    rankdir: str | None
    dpi: int | None
    max_render_nodes: int | None
    weights: str | None
    max_memory: int | None
    output: str | None

    @property
    def builds(self) -> bool:
        return not self.emit and not self.render

    @property
    def draws(self) -> bool:
        return self.render or self.emit == "dot"


PICTURES = {*FORMATS, "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"}  # suffixes that promise an image


def check_compile_flags(f: CompileFlags, sets) -> None:
    """Refuse flags that contradict each other or do not apply to the job, naming the flag."""
    suffix = Path(f.output).suffix[1:] if f.output else ""
    drawing_flag = next((flag for flag, v in (("--depth", f.depth), ("--rankdir", f.rankdir),
                                              ("--max-render-nodes", f.max_render_nodes)) if v is not None), None)
    rules = [
        (f.emit and f.render, "--render", "--emit and --render are separate jobs",
         "run archc compile twice, e.g. `--emit dot -o x.dot`, then `--render -o x.svg`"),
        (f.output and f.builds, "-o", "-o needs --emit or --render: building the module prints it and writes nothing",
         "add --emit python to write the module's source, or --render to draw it"),
        (f.weights and not f.builds, "--weights", "--weights loads weights into the built module; "
         f"--{'emit' if f.emit else 'render'} builds none", "drop --weights, or drop --emit/--render"),
        (f.max_memory is not None and not f.builds, "--max-memory", "--max-memory bounds building the module",
         "drop it: --emit and --render build no module"),
        (f.emit == "ast" and sets, "--set", "--emit ast shows the file before parameters are bound",
         "drop --set, or use --emit ir to see the graph with them"),
        (not f.draws and drawing_flag, drawing_flag, f"{drawing_flag} shapes a drawing",
         "use it with --render or --emit dot"),
        (f.fmt and not f.render, "--format", "--format is the image format of --render",
         "add --render, or drop --format"),
        (f.dpi and not (f.render and (suffix or f.fmt) == "png"), "--dpi", "--dpi applies to --render as PNG only",
         "add --render --format png, or -o NAME.png"),
        (f.render and suffix and suffix not in FORMATS, "-o", f"--render writes svg, png or pdf, not .{printable(suffix)}",
         "name the output NAME.svg, NAME.png or NAME.pdf"),
        (f.render and f.fmt and suffix in FORMATS and suffix != f.fmt, "--format",
         f"--format {f.fmt} contradicts -o ...{printable(suffix)}", "drop one of them: -o's suffix alone picks the format"),
        (f.emit and suffix.lower() in PICTURES, "-o", f"--emit {f.emit} writes text, but -o names a .{printable(suffix)} image",
         "use --render for an image, or name the output e.g. x.txt, x.json, x.dot, x.py"),
    ]
    for broken, flag, what, hint in rules:
        if broken:
            raise UsageError(what, where=flag, hint=hint)


def run_compile(file, sets, limits, f: CompileFlags):
    check_compile_flags(f, sets)
    if f.emit == "ast":
        from archc.dsl.ast import dump
        from archc.dsl.loader import load
        program = load(file, max_depth=limits["max_depth"])
        _guard(f.output, program.files)
        _write(dump(program.main), f.output)
        return
    comp = compile_spec(file, sets, **limits)
    if f.render:
        out = image_path(f.output or Path(file).with_suffix("").name, f.fmt or "svg")  # -o, else FILE's name here
        _guard(out, comp.program.files)
        _render(comp.graph, out, f)
    elif f.emit:
        _guard(f.output, comp.program.files)
        _write(_dump(comp.graph, f), f.output)
    else:
        _build(comp.graph, f)


def _guard(output, inputs):
    if output is not None:
        refuse_overwrite(output, inputs)


def _draw_options(f: CompileFlags) -> dict:
    given = {"rankdir": f.rankdir, "max_boxes": f.max_render_nodes}
    return {k: v for k, v in given.items() if v is not None}


def _dump(g, f: CompileFlags) -> str:
    if f.emit == "ir":
        return g.to_text()
    if f.emit == "json":
        return g.to_json()
    if f.emit == "dot":
        return to_dot(g, f.depth, **_draw_options(f))
    from archc.compiler.builder import emit_python
    return emit_python(g)


def _render(g, out: Path, f: CompileFlags):
    opts = {**_draw_options(f), **({"dpi": f.dpi} if f.dpi else {})}
    drawn = render(g, out, out.suffix[1:], f.depth, **opts,
                   write=lambda p, data: write_output(p, data, "-o" if f.output else "--render", parents=True))
    click.echo(f"rendered {printable(drawn.path, None)} at --depth {drawn.depth}")


def _build(g, f: CompileFlags):
    from archc.runtime.memory import check_build_fits
    check_build_fits(g, f.max_memory)
    from archc.compiler.builder import build_graph
    model = build_graph(g)
    if f.weights:
        from archc.runtime.weights import load_weights
        load_weights(model, f.weights)
    click.echo(model)
    click.echo(f"# {sum(p.numel() for p in model.parameters()):,} parameters")


# ---- list ----------------------------------------------------------------------------------------
def print_registry(as_json):
    """Every registered arch with its costs; a file that fails to compile gets a row with its
    error instead of hiding the others, and the command then ends with exit code 2."""
    from archc.compiler.registry import entries
    rows = [_registry_row(e) for e in entries()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        _print_registry_table(rows)
    broken = [r for r in rows if "error" in r]
    if broken:
        raise UsageError(f"{len(broken)} of {len(rows)} specs in the registry do not compile", where="archc list",
                         found=", ".join(printable(shown(r["path"])) for r in broken),
                         hint="fix or move these files (`archc check FILE` prints the whole message)")


def _print_registry_table(rows):
    cells = []
    for r in rows:
        where = "bundled" if r["bundled"] else printable(shown(Path(r["path"]).parent))
        if "error" in r:
            cells.append([printable(r["name"]), "", "", "", "", f"{where}  error: {printable(r['error'])}"])
        else:
            cells.append([printable(r["name"]), fmt(r["input"]), f"{r['params']:,}", human(r["macs"]),
                          f"{r['nodes']:,}", where])
    for line in table(["arch", "input", "params", "MACs", "nodes", "from"], cells, right={1, 2, 3, 4}):
        click.echo(line)


def _registry_row(e) -> dict:
    from archc.compiler.passes import compile_file
    row = {"name": e.name, "path": str(e.path), "bundled": e.bundled}
    try:
        g = compile_file(e.path).graph
    except ArchError as err:
        return {**row, "error": str(err).splitlines()[0]}
    t = g.totals()
    return {**row, "params": t.params, "macs": t.macs, "input": list(g.input_shape), "nodes": len(g)}


# ---- diff ----------------------------------------------------------------------------------------
def print_diff(a, b, depth: int, show_nodes: bool, show_all: bool, as_json: bool):
    """``a`` and ``b`` are compiled graphs; the scope table (changed rows unless ``show_all``), then nodes."""
    from archc.compiler.diff import diff
    d = diff(a, b, depth)
    if as_json:
        click.echo(json.dumps(_diff_json(d, a, b), indent=1))
        return
    for side, g, h in (("A", a, d.hash_a), ("B", b, d.hash_b)):
        t = g.totals()
        click.echo(f"{side}: {printable(g.name)}  {t.params:,} params  {t.macs:,} MACs  "
                   f"{human(4 * t.activations, 'B')} activations/image  {len(g):,} nodes  hash {h}")
    verdict = "the same architecture (graph hashes equal)" if d.same_architecture else "different architectures"
    click.echo(f"{verdict}; nodes: {d.count('added')} added, {d.count('removed')} removed, {d.count('changed')} "
               f"changed, {d.count('renamed')} renamed; edges: {d.edges_added} added, {d.edges_removed} removed")
    shown_scopes = [s for s in d.scopes if show_all or s.status != "same"]
    if shown_scopes:
        for line in table(["scope", "status", "A", "B", "nodes", "Δ params", "Δ MACs", "Δ act fp32"],
                          [_scope_cells(s) for s in shown_scopes], right={4, 5, 6, 7}):
            click.echo(line)
    hidden = len(d.scopes) - len(shown_scopes)
    if hidden:
        click.echo(f"({hidden} unchanged scopes at --depth {depth} not shown; --all shows them)")
    if show_nodes:
        _print_node_changes(d, a, b)


def _scope_cells(s) -> list[str]:
    def delta(field, unit=""):
        x, y = (getattr(r, field) if r else 0 for r in (s.a, s.b))
        return "0" if x == y else ("+" if y > x else "") + (f"{y - x:,}" if field == "params" else human(y - x, unit))
    kinds = [printable(r.kind) if r else "" for r in (s.a, s.b)]
    nodes = [r.nodes if r else 0 for r in (s.a, s.b)]
    return [printable(s.name, None), s.status, *kinds, f"{nodes[0]}→{nodes[1]}",
            delta("params"), delta("macs"), delta("act_fp32_bytes", "B")]


def _print_node_changes(d, a, b):
    lines = [dict(zip(g.topo(), g.to_text().splitlines()[1:])) for g in (a, b)]
    mark = {"added": "+", "removed": "-", "changed": "~", "renamed": ">"}
    for c in d.nodes:
        if c.status in ("added", "removed"):
            click.echo(f"{mark[c.status]} {printable(lines[c.a is None][c.a or c.b], None)}")
        else:
            what = f"  ({', '.join(c.what)})" if c.what else ""
            click.echo(f"{mark[c.status]} {printable(c.a, None)}" + (f" -> {printable(c.b, None)}" if c.a != c.b else "") + what)
            click.echo(f"    A: {printable(lines[0][c.a], None)}")
            click.echo(f"    B: {printable(lines[1][c.b], None)}")


def _diff_json(d, a, b) -> dict:
    from dataclasses import asdict
    return {"a": {"name": d.a, "graph_hash": d.hash_a, "params": a.totals().params, "nodes": len(a)},
            "b": {"name": d.b, "graph_hash": d.hash_b, "params": b.totals().params, "nodes": len(b)},
            "same_architecture": d.same_architecture, "edges_added": d.edges_added, "edges_removed": d.edges_removed,
            "nodes": [asdict(c) for c in d.nodes], "scopes": [asdict(s) for s in d.scopes]}
