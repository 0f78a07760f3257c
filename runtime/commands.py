"""The click commands behind ``archc train`` and ``archc eval``; runtime/cli.py adds them to its group.

User errors are raised as ArchError subclasses for the caller to print; :func:`run_standalone`
does that printing when a command runs as its own program (``python -m archc.runtime.train``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Literal, get_args, get_origin

import click
from pydantic_core import PydanticUndefined

from archc.dsl.errors import ArchError, CheckpointError
from archc.runtime import checkpoint as ckpt
from archc.runtime.cli import FILE, parse_sets
from archc.runtime.config import TrainConfig, resolve_config
from archc.runtime.evaluate import evaluate, print_report
from archc.runtime.train import build_model, train

TRAIN_HELP = """Train the network of FILE on CIFAR-10, writing checkpoints and metrics to RUN_DIR.

\b
Example:
  archc train archs/resnet_uva.arch --data sample --out runs/demo --epochs 2
  archc train archs/resnet20.arch --data cifar10 --out runs/r56 --set depth=56 --nproc 2
  archc train archs/resnet_uva.arch --out runs/uva --recipe seed-table   # as zoo-targets.json
  archc train archs/resnet_uva.arch --out runs/demo --resume             # continue a stopped run
  torchrun --nproc_per_node 4 -m archc.runtime.train archs/resnet20.arch --out runs/r

Flags override the --config TOML file (any TrainConfig key), which overrides the recipe.
"""

EVAL_HELP = """Score a checkpoint of FILE's network on the CIFAR-10 test set.

\b
Example:
  archc eval archs/resnet_uva.arch --checkpoint runs/demo/best.pt --data sample --plot confusion.png
"""


def _setting(flag: str, text: str, **kw: Any) -> Callable:
    """A flag for a TrainConfig key; its choices and the default shown come from the config model.

    The click default stays None, meaning "not given", so the --config file and recipe can fill it.
    """
    field = TrainConfig.model_fields[flag.split("/")[0].lstrip("-").replace("-", "_")]
    if get_origin(field.annotation) is Literal:
        kw["type"] = click.Choice(get_args(field.annotation))
    if field.default not in (PydanticUndefined, None) and not isinstance(field.default, bool):  # flags need none
        text = f"{text} [default: {field.default}]"
    return click.option(flag, help=text, default=None, **kw)


@click.command("train", help=TRAIN_HELP)
@click.argument("file", type=FILE)
@_setting("--data", "cifar10 (downloaded once), sample (bundled), or a folder with cifar-10-batches-py.")
@_setting("--out", "Run folder (RUN_DIR).", type=click.Path(path_type=Path, file_okay=False))
@_setting("--epochs", "Passes over the training set.", type=int)
@_setting("--batch-size", "Global batch in images, split over --nproc processes.", type=int)
@_setting("--lr", "Peak learning rate.", type=float)
@_setting("--optimizer", "Nesterov-momentum SGD or AdamW.")
@_setting("--schedule", "Learning-rate shape over the run.")
@_setting("--label-smoothing", "Probability mass spread over all classes.", type=float)
@_setting("--weight-decay", "L2 coefficient (decoupled for AdamW).", type=float)
@_setting("--augment", "standard: reflect-pad-4 crop + flip.")
@_setting("--seed", "Seeds init, data order, augmentation, dropout.", type=int)
@_setting("--device", "auto: CUDA when available.")
@_setting("--precision", "auto: bf16 on CUDA, fp32 on CPU.")
@_setting("--compile/--no-compile", "torch.compile the model.")
@_setting("--resume", "Continue RUN_DIR/last.pt with the run's own settings.", is_flag=True)
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help="TOML file of settings.")
@click.option("--set", "sets", multiple=True, metavar="K=V", help="Override an arch parameter (repeatable).")
@_setting("--recipe", "seed-table: how zoo-targets.json's reference models were trained.")
@_setting("--nproc", "Local processes for DistributedDataParallel.", type=int)
@_setting("--quiet", "One plain line per epoch, no live progress.", is_flag=True)
def train_command(file: Path, config_file: Path | None, sets: tuple[str, ...], **flags: Any) -> None:
    cfg = resolve_config({"arch": file, "params": parse_sets(sets), **flags}, config_file)
    try:
        run(cfg)
    except KeyboardInterrupt:  # train() has said how to resume; SystemExit passes any click main unchanged
        raise SystemExit(130) from None


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Build the net of ``cfg.arch`` and train it; returns the run's summary."""
    model = build_model(cfg.arch, cfg.params, cfg.seed)
    return train(cfg, model, extra=_arch_facts(cfg.arch, cfg.params))


def train_spec(spec: str | Path, params: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``archc.train``: the Python twin of ``archc train``, settings as TrainConfig keys."""
    return run(resolve_config({"arch": Path(spec), "params": params, **settings}))


def _arch_facts(arch: Path, params: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``arch`` and ``macs`` (per 32x32 image), from the compiler's checked graph."""
    from archc.compiler.passes import compile_file

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
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def eval_command(file: Path, checkpoint_path: Path, data: str, as_json: bool, plot: Path | None,
                 sets: tuple[str, ...], device: str) -> None:
    state = ckpt.load(checkpoint_path)
    trained = ckpt.run_params(state, checkpoint_path)
    params = {**trained, **parse_sets(sets)}  # build the net the run trained
    try:
        model = build_model(file, params)
    except ArchError as err:  # the run's --set values do not suit this FILE: a checkpoint of another net
        if not trained or err.where != "--set":
            raise
        raise CheckpointError(f"checkpoint does not fit {Path(file).name}", where=str(checkpoint_path),
                              found=f"it was trained from {ckpt.trained_with(state)}; with those values "
                                    f"--set: {err.what}",
                              hint="evaluate with the .arch file the run was trained with, or override its values "
                                   "with --set") from None
    result = evaluate(model, checkpoint_path, data, device=device, plot=plot, state=state)
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
