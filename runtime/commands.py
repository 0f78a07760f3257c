"""The click commands behind ``archc train`` and ``archc eval``; runtime/cli.py adds them to its group.

User errors are raised as ArchError subclasses for the caller to print; :func:`run_standalone`
does that printing when a command runs as its own program (``python -m runtime.train``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from dsl.errors import ArchError
from runtime import checkpoint as ckpt
from runtime.cli import FILE, parse_sets
from runtime.config import resolve_config
from runtime.evaluate import evaluate, print_report
from runtime.train import build_model, train

TRAIN_HELP = """Train the network of FILE on CIFAR-10, writing checkpoints and metrics to RUN_DIR.

\b
Example:
  archc train archs/resnet_uva.arch --data sample --out runs/demo --epochs 2
  archc train archs/resnet_uva.arch --data cifar10 --out runs/r --set depth=3 --recipe seed-table
  archc train archs/resnet_uva.arch --out runs/r --resume        # continue an interrupted run

Flags override the --config TOML file, which overrides the recipe's defaults.
"""

EVAL_HELP = """Score a checkpoint of FILE's network on the CIFAR-10 test set.

\b
Example:
  archc eval archs/resnet_uva.arch --checkpoint runs/demo/best.pt --data sample --plot confusion.png
"""


def _choice(*values: str) -> click.Choice:
    return click.Choice(values)


@click.command("train", help=TRAIN_HELP)
@click.argument("file", type=FILE)
@click.option("--data", help="cifar10 (downloaded once), sample (bundled), or a folder with cifar-10-batches-py.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Run folder (RUN_DIR).")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int, help="Global batch in images, split over --nproc processes.")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--optimizer", type=_choice("sgd", "adamw"))
@click.option("--schedule", type=_choice("onecycle", "cosine", "multistep"))
@click.option("--label-smoothing", type=float)
@click.option("--weight-decay", type=float)
@click.option("--augment", type=_choice("standard", "none", "seed-table"))
@click.option("--seed", type=int)
@click.option("--device", type=_choice("auto", "cpu", "cuda"))
@click.option("--precision", type=_choice("auto", "fp32", "bf16"), help="auto: bf16 on CUDA, fp32 on CPU.")
@click.option("--compile/--no-compile", default=None, help="torch.compile the model.")
@click.option("--resume", is_flag=True, default=None, help="Continue RUN_DIR/last.pt with the run's own settings.")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help="TOML file of settings.")
@click.option("--set", "sets", multiple=True, metavar="K=V", help="Override an arch parameter (repeatable).")
@click.option("--recipe", type=_choice("default", "seed-table"), help="seed-table: the recipe of zoo-targets.json.")
@click.option("--nproc", type=int, help="Local processes for DistributedDataParallel.")
@click.option("--quiet", is_flag=True, default=None, help="One plain line per epoch, no live progress.")
def train_command(file: Path, config_file: Path | None, sets: tuple[str, ...], **flags: Any) -> None:
    cfg = resolve_config({"arch": file, "params": parse_sets(sets), **flags}, config_file)
    model = build_model(cfg.arch, cfg.params, cfg.seed)
    try:
        train(cfg, model, extra=_arch_facts(cfg.arch, cfg.params))
    except KeyboardInterrupt:  # train() has said how to resume; SystemExit passes any click main unchanged
        raise SystemExit(130) from None


def _arch_facts(arch: Path, params: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``arch`` and ``macs`` (per 32x32 image), from the compiler's checked graph."""
    from compiler.passes import compile_file

    graph = compile_file(path=str(arch), overrides=params).graph
    return {"arch": graph.name, "macs": graph.totals().macs}


@click.command("eval", help=EVAL_HELP)
@click.argument("file", type=FILE)
@click.option("--checkpoint", "checkpoint_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="A last.pt or best.pt written by archc train.")
@click.option("--data", default="cifar10", show_default=True, help="cifar10, sample, or a folder with cifar-10-batches-py.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), help="Write the confusion matrix as a PNG.")
@click.option("--set", "sets", multiple=True, metavar="K=V", help="Arch parameter override (default: the run's own).")
@click.option("--device", type=_choice("auto", "cpu", "cuda"), default="auto", show_default=True)
def eval_command(file: Path, checkpoint_path: Path, data: str, as_json: bool, plot: Path | None,
                 sets: tuple[str, ...], device: str) -> None:
    state = ckpt.load(checkpoint_path)
    params = {**state["config"].get("params", {}), **parse_sets(sets)}  # build the net the run trained
    result = evaluate(build_model(file, params), checkpoint_path, data, device=device, plot=plot, state=state)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_report(result)


def run_standalone(command: click.Command) -> None:
    """Run a command as a program: ArchErrors become their message and exit code, not a traceback."""
    try:
        command.main()
    except ArchError as err:
        print(err, file=sys.stderr)
        sys.exit(err.exit_code)
