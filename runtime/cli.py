"""The ``archc`` command line. The top layer: it may import everything, but lazily, so
``archc check`` never loads torch. Every ``ArchError`` is printed as a located message and
ends the process with its exit code (2 for user errors), never a traceback.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from archc import __version__
from archc.dsl.errors import ArchError, LimitError, UsageError
from archc.dsl.text import printable

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

    FILE is a path, or a name (resnet50, densenet121.arch) looked up in the working
    folder, then the folders of $ARCHC_PATH (separated by ':'), then the registry
    bundled with archc (`archc list`). Imports inside a spec search its own folder first.

    \b
    Example:
      archc check densenet121 --set growth=12
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


class SpecFile(click.ParamType):
    """A spec: a path, or a bare name (``resnet50``, ``densenet121.arch``) looked up in the
    working folder, then the folders of $ARCHC_PATH, then the registry bundled with archc."""
    name = "file"

    def convert(self, value, param, ctx):
        from archc.dsl.loader import resolve
        try:
            path = resolve(str(value))
        except LookupError:
            from archc.compiler.registry import not_found
            self.fail(not_found(str(value)), param, ctx)
        if not os.path.exists(path):
            self.fail(f"{printable(value)!r} does not exist.", param, ctx)
        if os.path.isdir(path):
            self.fail(f"{printable(value)!r} is a directory.", param, ctx)
        if not os.access(path, os.R_OK):
            self.fail(f"{printable(value)!r} is not readable.", param, ctx)
        return str(path)  # a FIFO or a device passes here: the loader refuses it with a located message


FILE = SpecFile()


class ByteSize(click.ParamType):
    """A memory size as train's --max-memory reads it: 8GB (decimal), 512MiB (binary), or bytes."""
    name = "size"

    def convert(self, value, param, ctx):
        from archc.runtime.config import parse_size
        size = parse_size(value)
        if not isinstance(size, int) or size < 1:
            self.fail(f"{printable(value)!r} is not a size (e.g. 8GB, 512MiB, or a number of bytes)", param, ctx)
        return size


BYTES = ByteSize()


def parse_sets(sets) -> dict:
    from archc.compiler.passes import parse_value
    from archc.dsl.loader import MAX_FILE_BYTES
    size = sum(len(item) for item in sets)
    if size > MAX_FILE_BYTES:  # .arch text, parsed at a spec file's pace: a 1 MB list took minutes
        raise UsageError(f"--set values of {size:,} characters", where="--set",
                         expected=f"at most {MAX_FILE_BYTES:,} characters together, as in a spec file",
                         hint="put large values in the .arch file, as parameter defaults")
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
      archc check resnet50
      -> resnet50: 189 nodes, 25,557,032 params, 4.089 GMACs, output 1000
    """
    from archc.compiler.summary import outputs
    g = compile_spec(file, sets, **limits).graph
    main, *aux = outputs(g)
    shape = "×".join(map(str, main.shape))
    extra = (f" (eval); aux {', '.join('×'.join(map(str, o.shape)) for o in aux)} "
             f"(+{sum(o.macs for o in aux) / 1e9:.3f} GMACs in training)") if aux else ""
    click.echo(f"{g.name}: {len(g):,} nodes, {g.totals().params:,} params, {main.macs / 1e9:.3f} GMACs, "
               f"output {shape}{extra}")


@cli.command()
@click.argument("file", type=FILE)
@click.option("--depth", type=click.IntRange(0), default=2, show_default=True,
              help="Scope levels per row (0: the whole network in one row).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
@spec_options
def summary(file, depth, as_json, sets, **limits):
    """Per-block table: output shape, params, MACs, activation memory.

    \b
    Example:
      archc summary densenet121 --depth 2
      archc summary resnet50 --json | jq .params
    """
    from archc.runtime.views import print_summary
    print_summary(file, sets, limits, depth, as_json)


@cli.command(name="compile")
@click.argument("file", type=FILE)
@click.option("--emit", type=click.Choice(["ast", "ir", "json", "dot", "python"]), help="Dump a stage.")
@click.option("--render", is_flag=True, help="Draw the graph with Graphviz.")
@click.option("--format", "fmt", type=click.Choice(["svg", "png", "pdf"]),
              help="Image format of --render. Default: the suffix of -o, else svg; -o without a suffix gets one.")
@click.option("--depth", type=click.IntRange(0), default=None,
              help="--render / --emit dot: collapse scopes deeper than this (0: one box). Default: what fits a page.")
@click.option("--rankdir", type=click.Choice(["TB", "LR", "BT", "RL"]), help="--render / --emit dot: layout direction.")
@click.option("--dpi", type=click.IntRange(1, 1200),  # Graphviz spent 80 s on --dpi 10**9 to draw 7 boxes
              help="--render to PNG: resolution (default 200).")
@click.option("--max-render-nodes", type=click.IntRange(1),
              help="--render / --emit dot: refuse drawings with more boxes (Graphviz slows down sharply beyond a few thousand).")
@click.option("--weights", metavar="torchvision:NAME[:ENUM]", help="Load torchvision weights into the built module.")
@click.option("--max-memory", type=BYTES, metavar="SIZE",
              help="Refuse to build a module whose estimated memory exceeds SIZE (e.g. 8G). Default: the memory available now.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="With --emit or --render: write here, not stdout.")
@spec_options
def compile_(file, sets, max_nodes, max_params, max_depth, **flags):
    """Compile a spec; dump any stage, render it, or build the PyTorch module.

    Without --emit or --render the module is built and printed. --emit and --render are
    separate jobs (run twice for both); flags that do not apply to the job are refused.

    \b
    Examples:
      archc compile resnet18 --emit ir
      archc compile densenet121 --render -o densenet121.svg
      archc compile resnet50 --emit python -o resnet50.py
      archc compile resnet50 --weights torchvision:resnet50
    """
    from archc.runtime.views import CompileFlags, run_compile
    run_compile(file, sets, dict(max_nodes=max_nodes, max_params=max_params, max_depth=max_depth),
                CompileFlags(**flags))


@cli.command()
@click.argument("a", metavar="A", type=FILE)
@click.argument("b", metavar="B", type=FILE)
@click.option("--set-a", "sets_a", multiple=True, metavar="NAME=VALUE", help="Override a parameter of A only.")
@click.option("--set-b", "sets_b", multiple=True, metavar="NAME=VALUE", help="Override a parameter of B only.")
@click.option("--depth", type=click.IntRange(0), default=2, show_default=True, help="Scope levels per row, as in summary.")
@click.option("--nodes", "show_nodes", is_flag=True, help="Also list every added, removed, changed or renamed node.")
@click.option("--all", "show_all", is_flag=True, help="Show unchanged scopes too.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead.")
@spec_options
def diff(a, b, sets_a, sets_b, depth, show_nodes, show_all, as_json, sets, **limits):
    """What differs between networks A and B: nodes and scopes added, removed or changed,
    and the params / MACs / activation memory delta per scope.

    --set applies to both sides, then --set-a / --set-b to one (the later wins), so one
    file against itself compares two settings. Nodes match by scope path; a node found
    only on one side whose whole upstream graph equals one on the other is a rename.

    \b
    Examples:
      archc diff resnet18 plain18
      archc diff densenet121 densenet121 --set-b growth=12
      archc diff resnet20 resnet56 --depth 1 --nodes
    """
    from archc.runtime.views import print_diff
    ga = compile_spec(a, (*sets, *sets_a), **limits).graph
    gb = compile_spec(b, (*sets, *sets_b), **limits).graph
    print_diff(ga, gb, depth, show_nodes, show_all, as_json)


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead.")
def list_(as_json):
    """Print the registry: the specs on $ARCHC_PATH and those bundled with archc, with
    params and MACs. A spec that fails to compile is listed with its error, and the
    command then exits with 2.

    \b
    Example:
      archc list
    """
    from archc.runtime.views import print_registry
    print_registry(as_json)


@cli.command(name="ops")
@click.option("--markdown", is_flag=True, help="Print a Markdown table (the README's).")
def ops_(markdown):
    """Print the ops and merges .arch files can use: signature, family and what each computes
    (the built-in ones and those registered by ARCHC_PLUGINS modules).

    \b
    Example:
      archc ops
    """
    from archc.compiler.ops import OPS
    from archc.compiler.ops.registry import BUILTIN_IO, ops_markdown, signature
    if markdown:
        click.echo(ops_markdown(), nl=False)
        return
    for name, op in sorted(OPS.items()):
        if name not in BUILTIN_IO:
            click.echo(f"{printable(signature(op), 90):<48} {op.family:<12} {printable(op.doc, 300)}")


def load_plugins() -> None:
    """Import the modules named in ``ARCHC_PLUGINS`` (comma-separated): they register their own ops
    (``archc.register_op``) so that .arch files can use them from the command line too."""
    for name in filter(None, (n.strip() for n in os.environ.get("ARCHC_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except Exception as e:  # a plugin's own failure, whatever it is, is the user's to fix
            raise UsageError(f"cannot load plugin `{name}`: {type(e).__name__}: {printable(e)}", where="ARCHC_PLUGINS",
                             hint="check the module name and that it imports (python -c 'import NAME')") from None


def main(argv=None) -> int:
    try:
        load_plugins()
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
    except (MemoryError, RuntimeError) as e:
        if not _out_of_memory(e):
            raise
        click.echo(str(_memory_error(e)), err=True)
        return 2
    return code if isinstance(code, int) else 0


def _out_of_memory(e: BaseException) -> bool:
    """An allocation the estimates let through failed (they are floors): torch's CPU allocator, CUDA, Python."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(e)


def _memory_error(e: BaseException) -> ArchError:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return LimitError("out of memory: an allocation failed although the estimate fitted", where="--max-memory",
                      found=printable(detail, 300),
                      hint="lower --batch-size or make the network smaller; --max-memory set below what the machine "
                           "has leaves room for what the estimate does not count")


if __name__ == "__main__":
    sys.exit(main())
