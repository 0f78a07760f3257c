"""What the read-only CLI commands print: summary tables, stage dumps, the registry.

Kept apart from cli.py so the command definitions stay declarative; torch is imported only
for ``--emit python`` and ``--weights``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from archc.runtime.cli import compile_spec, parse_sets


def _write(text: str, output: str | None):
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def print_summary(file, sets, limits, depth, as_json):
    """The cost table; on a shape error, the table up to the failing node, then the error."""
    from archc.compiler.summary import as_json as summary_json
    g, error, failed = _compile_or_partial(file, sets, limits)
    if as_json and error is None:
        click.echo(json.dumps(summary_json(g, depth), indent=1))
    elif not as_json:
        from rich.console import Console
        # Piped output keeps full scope names instead of rich's 80-column truncation.
        console = Console() if sys.stdout.isatty() else Console(width=200)
        console.print(_summary_table(g, depth, failed))
        if error is None:
            click.echo("MACs: multiply-adds of conv and linear; other ops: elementwise work of bn, activations, "
                       "pools and merges; act: forward activations kept for backward, per sample.")
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


def _summary_table(g, depth, failed=None):
    """Rows per scope and a total; the row holding ``failed`` (an OpNode) is shown in red."""
    from rich.table import Table
    from archc.compiler.summary import Row, human, rows
    table = Table(title=f"{g.name}  input {'×'.join(map(str, g.input_shape))}", title_justify="left")
    for col, just in (("scope", "left"), ("op / block", "left"), ("output", "right"), ("params", "right"),
                      ("MACs", "right"), ("other ops", "right"), ("act fp32", "right"), ("act bf16", "right")):
        table.add_column(col, justify=just)
    found = rows(g, depth)
    bad = ".".join(failed.id.split(".")[:depth]) if failed else None
    if bad is not None and bad not in {r.name for r in found}:  # the failing node opens a new row
        found.append(Row(bad, failed.op, 0, (), 0, 0, 0, 0, 0))
    for r in found:
        shape = "✗ shape error" if r.name == bad else "×".join(map(str, r.output_shape))
        table.add_row(r.name, r.kind, shape, f"{r.params:,}", human(r.macs), human(r.other_ops),
                      human(r.act_fp32_bytes, "B"), human(r.act_bf16_bytes, "B"),
                      style="bold red" if r.name == bad else None)
    t = g.totals()
    table.add_section()
    out = "×".join(map(str, g.shapes[g.output_id])) if failed is None else "(so far)"
    table.add_row("total", f"{len(g):,} nodes", out, f"{t.params:,}", human(t.macs), human(t.other_ops),
                  human(4 * t.activations, "B"), human(2 * t.activations, "B"))
    return table


def run_compile(file, emit, render, fmt, depth, weights, output, sets, limits):
    if emit == "ast":
        from archc.dsl.loader import load
        from archc.dsl.ast import dump
        program = load(file)
        _write(dump(program.main), output)
        return
    comp = compile_spec(file, sets, **limits)
    g = comp.graph
    if emit == "ir":
        _write(g.to_text(), output)
    elif emit == "json":
        _write(g.to_json(), output)
    elif emit == "dot":
        from archc.compiler.render import to_dot
        _write(to_dot(g, depth), output)
    elif emit == "python":
        from archc.compiler.builder import emit_python
        _write(emit_python(g), output)
    if render:
        from archc.compiler.render import default_depth, render as draw
        out = output if output and not emit else str(Path(file).with_suffix(f".{fmt}").name)
        path = draw(g, out, fmt, depth)
        click.echo(f"rendered {path} at --depth {default_depth(g) if depth is None else depth}")
    if not emit and not render:
        from archc.compiler.builder import build_graph
        model = build_graph(g)
        if weights:
            from archc.runtime.weights import load_weights
            load_weights(model, weights)
        click.echo(model)
        click.echo(f"# {sum(p.numel() for p in model.parameters()):,} parameters")


def print_registry(as_json):
    from archc.compiler import registry
    from archc.compiler.passes import compile_file
    from archc.compiler.summary import human
    rows = []
    for name in registry.names():
        g = compile_file(registry.path(name)).graph
        t = g.totals()
        rows.append({"name": name, "params": t.params, "macs": t.macs,
                     "input": list(g.input_shape), "nodes": len(g)})
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'arch':<24} {'input':>12} {'params':>14} {'MACs':>10} {'nodes':>7}")
    for r in rows:
        click.echo(f"{r['name']:<24} {'×'.join(map(str, r['input'])):>12} {r['params']:>14,} "
                   f"{human(r['macs']):>10} {r['nodes']:>7,}")
