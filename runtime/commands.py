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
from archc.dsl.text import printable
from archc.runtime import checkpoint as ckpt
from archc.runtime import distributed, preflight, rundir
from archc.runtime.cli import BYTES, FILE, parse_sets
from archc.runtime.config import TrainConfig, resolve_config
from archc.runtime.data import CLASSES
from archc.runtime.data import resolve as resolve_data
from archc.runtime.evaluate import evaluate, print_report
from archc.runtime.loop import EVAL_BATCH
from archc.runtime.memory import check_build_fits
from archc.runtime.paths import check_png
from archc.runtime.train import build_model, train

TRAIN_HELP = """Train the network of FILE on CIFAR-10, writing checkpoints and metrics to RUN_DIR.

\b
Example:
  archc train archs/resnet_uva.arch --data sample --epochs 2     # -> runs/resnet_uva-<time>/
  archc train archs/resnet20.arch --data cifar10 --out runs/r56 --set depth=56 --nproc 2
  archc train archs/resnet_uva.arch --out runs/uva --recipe seed-table   # as zoo-targets.json
  archc train archs/airbench94.arch --data cifar10 --recipe airbench     # airbench94, 10 epochs
  archc train archs/resnet_uva.arch --out runs/demo --resume             # continue a stopped run
  archc train archs/resnet_uva.arch --out runs/demo --resume --epochs 40 # extend a finished run
  torchrun --nproc_per_node 4 -m archc.runtime.train archs/resnet20.arch --out runs/r

A run folder must be new or empty: --resume continues the archc run in it, --force starts over
in it (deleting that run's files, and only those). best.pt is the epoch with the best accuracy
on a validation split held out of the training images (--val-split: 45,000/5,000 on CIFAR-10);
the test set is scored once, at the end, on best.pt. TensorBoard: tensorboard --logdir runs.

--resume continues an interrupted run exactly as if it had not stopped (bit for bit on the
same device and settings); on a finished run it says so. --resume --epochs N on a finished
run of E epochs trains N-E more epochs the way a fresh (N-E)-epoch run would, from the run's
weights, optimizer state and data order: the lr schedule starts over (one-cycle warms up and
anneals again; multistep milestones count within the added epochs). That is not what an
N-epoch run gives, whose schedule would have annealed later; the first E epochs stay as they are.

Flags override the --config TOML file (any TrainConfig key), which overrides the recipe.
"""

EVAL_HELP = """Score a checkpoint of FILE's network on the CIFAR-10 test set: accuracy, per-class accuracy
and the confusion matrix.

\b
Example:
  archc eval archs/resnet_uva.arch --checkpoint runs/demo/best.pt --data sample --plot confusion.png
"""
IMAGE = (3, 32, 32)  # what runtime.data loads: CIFAR-10's channel-major 32×32 RGB images


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
@_setting("--out", "Run folder (RUN_DIR); default: runs/<arch>-<YYYYmmdd-HHMMSS>.", type=click.Path(path_type=Path))
@_setting("--epochs", "Passes over the training set; with --resume, a larger N extends a finished run.", type=int)
@_setting("--batch-size", "Global batch in images, split over --nproc processes.", type=int)
@_setting("--lr", "Peak learning rate.", type=float)
@_setting("--optimizer", "Nesterov-momentum SGD or AdamW.")
@_setting("--schedule", "Learning-rate shape over the run.")
@_setting("--label-smoothing", "Probability mass spread over all classes.", type=float)
@_setting("--aux-weight", "Weight of each auxiliary head's loss (@aux outputs; Inception v3: 0.4).", type=float)
@_setting("--weight-decay", "L2 coefficient (decoupled for AdamW).", type=float)
@_setting("--augment", "standard: reflect-pad-4 crop + flip.")
@_setting("--seed", "Seeds init, data order, augmentation, dropout, the validation split.", type=int)
@_setting("--val-split", "Fraction of the training images held out to choose best.pt (0: none, best.pt is the last epoch).", type=float)
@_setting("--device", "auto: CUDA when available.")
@_setting("--precision", "auto: bf16 on CUDA, fp32 on CPU.")
@_setting("--compile/--no-compile", "torch.compile the model.")
@_setting("--resume", "Continue RUN_DIR/last.pt with the run's own settings.", is_flag=True)
@_setting("--force", "Start over in a RUN_DIR that is not empty, deleting its run files.", is_flag=True)
@_setting("--max-memory", "Refuse a run whose estimated memory per device exceeds this (8GB, 512MiB, bytes).", type=str)
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help="TOML file of settings.")
@click.option("--set", "sets", multiple=True, metavar="K=V", help="Override an arch parameter (repeatable).")
@_setting("--recipe", "seed-table: how zoo-targets.json's reference models were trained; airbench: airbench94's "
                      "training (archs/airbench94.arch).")
@_setting("--nproc", "Local processes for DistributedDataParallel.", type=int)
@_setting("--quiet", "One plain line per epoch: no live bar, no progress lines.", is_flag=True)
def train_command(file: Path, config_file: Path | None, sets: tuple[str, ...], **flags: Any) -> None:
    cfg = resolve_config({"arch": file, "params": parse_sets(sets), **flags}, config_file)
    try:
        run(cfg)
    except KeyboardInterrupt:  # train() has said how to resume; SystemExit passes any click main unchanged
        raise SystemExit(130) from None


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Check the net of ``cfg.arch`` against the data and the memory, build it and train it; returns the summary."""
    if cfg.resume:
        rundir.check_run_files(cfg.out)
    comp = compile_checked(cfg.arch, cfg.params)
    _check_memory(cfg, comp.graph)
    model = build_model(cfg.arch, cfg.params, cfg.seed, graph=comp.graph)
    return train(cfg, model, rundir.spec_facts(comp, str(cfg.arch)))


def train_spec(spec: str | Path, params: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``archc.train``: the Python twin of ``archc train``, settings as TrainConfig keys; ``spec`` is a path,
    or a name found as ``archc train`` finds it (``resnet_uva``)."""
    from archc.compiler.registry import find
    path = find(str(spec), "archc.train", "pass the path of a .arch file, or a name `archc list` shows")
    return run(resolve_config({"arch": path, "params": params, **settings}))


def compile_checked(arch: Path | str, params: dict[str, Any]):
    """The torch-free compilation of ``arch``, refused unless its input and output fit CIFAR-10."""
    from archc.compiler.passes import compile_file

    comp = compile_file(path=str(arch), overrides=params)
    preflight.check_fits_data(comp, IMAGE, len(CLASSES))
    return comp


def _check_memory(cfg: TrainConfig, graph: Any) -> None:
    """The static estimate against the device's free memory and --max-memory, before anything is allocated."""
    device = distributed.resolve_device(cfg.device)
    world = max(distributed.world()[1], cfg.nproc)
    est = preflight.training_memory(graph, max(1, cfg.batch_size // world), cfg.optimizer, cfg.momentum,
                                    distributed.precision(cfg.precision, device))
    free = distributed.free_memory(device)
    preflight.check_memory(est, preflight.processes_sharing(device.type, world), free, str(device), cfg.max_memory)
    check_build_fits(graph, cfg.max_memory, EVAL_BATCH, free)  # validation and the test score: EVAL_BATCH images at once


@click.command("eval", help=EVAL_HELP)
@click.argument("file", type=FILE)
@click.option("--checkpoint", "checkpoint_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="A last.pt or best.pt written by archc train.")
@click.option("--data", default="cifar10", show_default=True, help="cifar10, sample, or a folder with cifar-10-batches-py.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), help="Write the confusion matrix as a PNG.")
@click.option("--set", "sets", multiple=True, metavar="K=V", help="Arch parameter override (default: the run's own).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--max-memory", type=BYTES, metavar="SIZE",
              help="Refuse to build a network whose estimated memory exceeds SIZE. Default: the memory available now.")
def eval_command(file: Path, checkpoint_path: Path, data: str, as_json: bool, plot: Path | None,
                 sets: tuple[str, ...], device: str, max_memory: int | None) -> None:
    state = ckpt.load(checkpoint_path)
    trained = ckpt.run_params(state)
    params = {**trained, **parse_sets(sets)}  # build the net the run trained
    try:
        comp = compile_checked(file, params)
    except ArchError as err:  # the run's --set values do not suit this FILE: a checkpoint of another net
        if not trained or err.where != "--set":
            raise
        raise CheckpointError(f"checkpoint does not fit {printable(Path(file).name)}", where=str(checkpoint_path),
                              found=f"it was trained from {printable(ckpt.trained_with(state))}; with those values "
                                    f"--set: {err.what}",
                              hint="evaluate with the .arch file the run was trained with, or override its values "
                                   "with --set") from None
    if plot:
        inputs = [Path(f) for f in comp.program.files] + [checkpoint_path] + sorted(resolve_data(data).iterdir())
        check_png(plot, inputs)
    check_build_fits(comp.graph, max_memory, EVAL_BATCH, distributed.free_memory(distributed.resolve_device(device)))
    model = build_model(file, params, graph=comp.graph)
    result = evaluate(model, checkpoint_path, data, device=device, plot=plot, state=state)
    if as_json:
        click.echo(json.dumps(result | ({"plot": str(plot)} if plot else {}), indent=2))
        if plot:
            click.echo(f"confusion matrix plot: {printable(plot)}", err=True)
    else:
        print_report(result, plot)


def run_standalone(command: click.Command) -> None:
    """Run a command as a program: ArchErrors become their message and exit code, not a traceback."""
    try:
        command.main()
    except ArchError as err:
        print(err, file=sys.stderr)
        sys.exit(err.exit_code)
