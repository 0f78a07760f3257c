"""The ``archc`` command line. The top layer: it may import everything, but lazily, so
``archc check`` never loads torch. Every ``ArchError`` is printed as a located message and
ends the process with its exit code (2 for user errors), never a traceback.
"""
from __future__ import annotations

import importlib
import sys

import click

from archc import __version__
from archc.dsl.errors import ArchError

# Commands that live in other modules, loaded only when invoked (they may import torch).
LAZY = {
    "train": "archc.runtime.commands:train_command",
    "eval": "archc.runtime.commands:eval_command",
    "compare": "archc.runtime.compare:compare_command",
    "sweep": "archc.runtime.compare:sweep_command",
}


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx, name):
        if name in LAZY:
            module, attr = LAZY[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archc")
def cli():
    """archc: write a CNN architecture once as a .arch file; check, cost, render,
    compile and train it.

    \b
    Example:
      archc check archs/densenet121.arch --set growth=12
    """


def spec_options(f):
    """Options shared by every command that reads a spec."""
    f = click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                     help="Override an arch parameter (an .arch value: 12, [6,12], true).")(f)
    f = click.option("--max-nodes", type=click.IntRange(1), default=1_000_000, show_default=True,
                     help="Refuse graphs with more nodes.")(f)
    f = click.option("--max-params", type=click.IntRange(1), default=10 ** 11, show_default=True,
                     help="Refuse networks with more parameters.")(f)
    f = click.option("--max-depth", type=click.IntRange(1), default=100, show_default=True,
                     help="Refuse deeper nesting of blocks, merges and imports.")(f)
    return f


FILE = click.Path(exists=True, dir_okay=False, readable=True)


def parse_sets(sets) -> dict:
    from archc.compiler.passes import parse_value
    from archc.dsl.errors import UsageError
    out = {}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"`--set {item}` is not NAME=VALUE", where="--set", hint="e.g. --set growth=12")
        out[key.strip()] = parse_value(value.strip(), key.strip())
    return out


def compile_spec(file, sets, max_nodes, max_params, max_depth, until=None):
    from archc.compiler.elaborate import Limits
    from archc.compiler.passes import compile_file
    return compile_file(file, overrides=parse_sets(sets), limits=Limits(max_nodes, max_params, max_depth), until=until)


@cli.command()
@click.argument("file", type=FILE)
@spec_options
def check(file, sets, **limits):
    """Parse, validate and infer shapes; print one line.

    \b
    Example:
      archc check archs/resnet50.arch
      -> resnet50: 189 nodes, 25,557,032 params, 4.089 GMACs, output 1000
    """
    g = compile_spec(file, sets, **limits).graph
    t = g.totals()
    shape = "×".join(map(str, g.shapes[g.output_id]))
    click.echo(f"{g.name}: {len(g):,} nodes, {t.params:,} params, {t.macs / 1e9:.3f} GMACs, output {shape}")


@cli.command()
@click.argument("file", type=FILE)
@click.option("--depth", type=click.IntRange(1), default=2, show_default=True, help="Scope levels per row.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
@spec_options
def summary(file, depth, as_json, sets, **limits):
    """Per-block table: output shape, params, MACs, activation memory.

    \b
    Example:
      archc summary archs/densenet121.arch --depth 2
      archc summary archs/resnet50.arch --json | jq .params
    """
    from archc.runtime.views import print_summary
    print_summary(file, sets, limits, depth, as_json)


@cli.command(name="compile")
@click.argument("file", type=FILE)
@click.option("--emit", type=click.Choice(["ast", "ir", "json", "dot", "python"]), help="Dump a stage.")
@click.option("--render", is_flag=True, help="Draw the graph with Graphviz.")
@click.option("--format", "fmt", type=click.Choice(["svg", "png", "pdf"]), default="svg", show_default=True)
@click.option("--depth", type=click.IntRange(0), default=None, help="Collapse blocks below this depth.")
@click.option("--weights", metavar="torchvision:NAME[:ENUM]", help="Load torchvision weights into the module.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here, not stdout.")
@spec_options
def compile_(file, emit, render, fmt, depth, weights, output, sets, **limits):
    """Compile a spec; dump any stage, render it, or build the PyTorch module.

    \b
    Examples:
      archc compile archs/resnet18.arch --emit ir
      archc compile archs/densenet121.arch --render -o densenet121.svg
      archc compile archs/resnet50.arch --emit python -o resnet50.py
    """
    from archc.runtime.views import run_compile
    run_compile(file, emit, render, fmt, depth, weights, output, sets, limits)


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json):
    """Print the architecture registry (archs/) with params and MACs.

    \b
    Example:
      archc list
    """
    from archc.runtime.views import print_registry
    print_registry(as_json)


def main(argv=None) -> int:
    try:
        code = cli.main(args=argv, prog_name="archc", standalone_mode=False)  # ctx.exit(n) returns n
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except ArchError as e:
        click.echo(str(e), err=True)
        return e.exit_code
    except BrokenPipeError:
        return 0
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
