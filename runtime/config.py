"""The training configuration: one pydantic model, filled from defaults < recipe < ``--config`` file < flags.

The default recipe is a short one-cycle SGD schedule that trains CIFAR-10 CNNs to good accuracy in
tens of epochs: Nesterov SGD with momentum 0.9 generalises better than Adam on these nets; one-cycle
(warm up, then anneal) tolerates the high peak lr 0.2 that batch 128 allows, which is what makes short
runs converge; label smoothing 0.1 and weight decay 5e-4 are the usual CIFAR regularisers for small
models without extra data. ``seed-table`` instead reproduces how the reference ("seed table") models in
shared/zoo-targets.json were trained, so their published accuracies can be compared like for like.
``airbench`` mirrors Keller Jordan's airbench94 (github.com/KellerJordan/cifar10-airbench): see ``AIRBENCH``.
"""
from __future__ import annotations

import json
import os
import re
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from archc.dsl.errors import UsageError
from archc.dsl.files import FileRefused, read_regular
from archc.dsl.text import printable

# Keys a resumed run may change: where and how it runs, not what it computes. ``arch`` and ``out``
# may be spelt as another path to the same file; a different net fails to load the checkpoint.
# ``epochs`` may grow (an extension, see ``_extended``).
RESUMABLE = {"resume", "quiet", "device", "compile", "nproc", "data", "precision", "arch", "out", "max_memory",
             "force"}  # force passes only to be refused with --resume by _one_start
MAX_CONFIG_BYTES = 1 << 20  # a TOML of settings is a few hundred bytes; refuse anything that is not one
RUNS = Path("runs")  # where a run without --out goes: runs/<arch>-<timestamp>
SIZE = re.compile(r"\s*(\d{1,19}(?:\.\d{1,9})?)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)  # digits bounded: no overflow
UNITS = {"": 1, "b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def _seed_table(data: dict[str, Any]) -> dict[str, Any]:
    """zoo-targets.json's ``seed_table_source_training``: ResNets used SGD, GoogleNet/DenseNet AdamW."""
    common = {"batch_size": 128, "epochs": 180, "schedule": "multistep", "milestones": [100, 150],
              "augment": "seed-table", "label_smoothing": 0.0, "weight_decay": 1e-4}
    if "resnet" in Path(str(data.get("arch") or "")).name.lower():
        return common | {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False}
    return common | {"optimizer": "adamw", "lr": 1e-3}


# airbench94's hyperparameters, which it states per 1024 images of a summed loss with decoupled
# momentum (lr 11.5, weight decay 0.0153, momentum 0.85), turned into torch SGD on a mean loss: the same
# steps are lr = 11.5 / (1 + 1 / (1 - 0.85)) = 1.5 and weight decay 0.0153 / 11.5 (decay per step
# lr x wd). It trains 9.9 epochs; epochs are whole here, so 10 (480 steps on CIFAR-10 instead of 476).
AIRBENCH = {"batch_size": 1024, "epochs": 10, "optimizer": "sgd", "lr": 1.5, "momentum": 0.85, "nesterov": True,
            "weight_decay": 0.0153 / 11.5, "schedule": "linear", "label_smoothing": 0.2, "augment": "airbench",
            "val_split": 0.0, "norm_bias_lr": 64.0, "train_norm_weight": False, "whiten": True,
            "whiten_bias_epochs": 3, "lookahead": 5, "tta": "flip-translate"}
RECIPES = {"seed-table": _seed_table, "airbench": lambda data: AIRBENCH}


def parse_size(value: Any) -> Any:
    """``8GB``, ``512MiB``, ``1.5G`` or a plain number of bytes, as an int; anything else is left for
    pydantic to refuse with the value shown."""
    m = SIZE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return value
    unit = (m[2] or "").lower().removesuffix("b")
    return int(float(m[1]) * UNITS[unit])


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's share), not the host's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no NaN or inf in any float setting

    arch: Path | None = None  # path of the .arch file (None when a caller hands train() a ready module)
    params: dict[str, Any] = Field(default_factory=dict)  # arch parameter overrides, from --set k=v
    data: str = Field("cifar10", max_length=4096)  # "cifar10" (cached download), "sample" (bundled), or a folder path
    out: Path  # run folder: config.json, run.json, spec/, metrics.jsonl, last.pt, best.pt, curves.png, summary.json
    epochs: int = Field(30, ge=1, le=1_000_000)  # full passes over the training set
    batch_size: int = Field(128, ge=1)  # global batch in images, summed over all processes
    lr: float = Field(0.2, gt=0)  # peak learning rate per step (one-cycle maximum, cosine/multistep start)
    optimizer: Literal["sgd", "adamw"] = "sgd"  # sgd: (Nesterov) momentum SGD; adamw: Adam with decoupled decay
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD momentum (AdamW uses its own betas)
    nesterov: bool = True  # Nesterov momentum for SGD
    weight_decay: float = Field(5e-4, ge=0)  # L2 coefficient on every weight (decoupled for AdamW)
    # lr shape over all steps of the run; linear: airbench's warm-up from 0.2x to the peak, then down to 0.07x
    schedule: Literal["onecycle", "cosine", "multistep", "linear"] = "onecycle"
    # multistep only, lr x0.1 at each: values < 1 are fractions of the epochs, values >= 1 epoch numbers
    milestones: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [0.5, 0.75])
    # epochs after which the lr schedule starts over (set by `--resume --epochs N`: see config._extended)
    restarts: list[int] = Field(default_factory=list)
    label_smoothing: float = Field(0.1, ge=0, lt=1)  # probability mass spread over all classes
    # weight of each auxiliary head's loss (`@aux` outputs) added to the main loss: torchvision's GoogLeNet
    # recipe uses 0.3 per head, Inception v3's 0.4; at most 1, so no head outweighs the main output
    aux_weight: float = Field(0.3, ge=0, le=1)
    # standard: reflect-pad-4 crop + flip; airbench: reflect-pad-2 crop + alternating flips (augment.alternating)
    augment: Literal["standard", "none", "seed-table", "airbench"] = "standard"
    # BatchNorm biases step with this multiple of the lr, their decay per step kept (airbench: 64)
    norm_bias_lr: float = Field(1.0, gt=0, le=1e4)
    train_norm_weight: bool = True  # false: BatchNorm weights stay at their initial 1 (airbench)
    # the first conv becomes a whitening layer: weights from the training images' patch covariance, then fixed
    whiten: bool = False
    whiten_bias_epochs: int | None = Field(None, ge=0)  # the whitening layer's bias trains this many epochs, then stops
    lookahead: int = Field(0, ge=0, le=1_000_000)  # every N steps, pull the weights to their moving average (0: off)
    tta: Literal["none", "flip", "flip-translate"] = "none"  # test-time views averaged when scoring the test set
    seed: int = Field(0, ge=0, lt=2**32)  # seeds model init, data order, augmentation, dropout, the val split
    val_split: float = Field(0.1, ge=0, le=0.5)  # fraction of training images held out to select best.pt
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available (config.json keeps the resolved one)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model (slow start, faster steps on CUDA)
    resume: bool = False  # continue from out/last.pt
    force: bool = False  # start a new run in a folder that is not empty (its run files are deleted)
    nproc: int = Field(1, ge=1)  # local processes for DistributedDataParallel (gloo on CPU, nccl on CUDA)
    max_memory: int | None = Field(None, ge=1)  # bytes a run may use per device (estimated before allocating)
    quiet: bool = False  # one plain line per epoch instead of a live progress bar or progress lines
    eval_every: int = Field(1, ge=1)  # epochs between validation passes (the last epoch always validates)
    recipe: Literal["default", "seed-table", "airbench"] = "default"  # which defaults the unset keys take

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, data: Any) -> Any:
        """Recipe values fill only the keys the file and the flags left unset."""
        recipe = data.get("recipe") if isinstance(data, dict) else None
        return RECIPES[recipe](data) | data if isinstance(recipe, str) and recipe in RECIPES else data

    @field_validator("max_memory", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v)

    @field_validator("restarts")
    @classmethod
    def _restarts(cls, v: list[int], info: ValidationInfo) -> list[int]:
        epochs = info.data.get("epochs", 1)
        if any(not 1 <= r < epochs for r in v) or v != sorted(set(v)):
            raise ValueError(f"increasing epoch numbers between 1 and {epochs - 1} (epochs is {epochs})")
        return v

    @field_validator("nproc")
    @classmethod
    def _processes(cls, v: int, info: ValidationInfo) -> int:
        """One process per GPU, or per CPU core: more would only share a core (or fail to find a GPU)."""
        import torch  # deferred: reading a config needs no torch, validating --nproc does

        gpus = info.data.get("device") != "cpu" and torch.cuda.is_available()
        limit = torch.cuda.device_count() if gpus else usable_cores()
        if v > limit:
            raise ValueError(f"at most {limit}: one process per {'GPU' if gpus else 'CPU core this process may use'}")
        return v

    @model_validator(mode="after")
    def _one_start(self) -> TrainConfig:
        if self.resume and self.force:
            raise ValueError("--resume continues the run in --out; --force starts over in it: pass one of them")
        if self.whiten_bias_epochs is not None and not self.whiten:
            raise ValueError("whiten_bias_epochs applies to the whitening layer: set whiten = true, or drop it")
        return self

    def milestone_epochs(self, epochs: int | None = None) -> list[float]:
        """The multistep milestones in epochs of a phase of ``epochs`` (default: the whole run)."""
        epochs = self.epochs if epochs is None else epochs
        return sorted(m * epochs if m < 1 else m for m in self.milestones)


def _usage(err: ValidationError, flags: set[str], config_file: Path | None) -> UsageError:
    """The first validation error, placed at the flag or the file that supplied the value."""
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "config"
    top = str(e["loc"][0]) if e["loc"] else ""
    file = f"--config {config_file}" if config_file else "configuration"
    where = ("--set" if top == "params" else "--" + top.replace("_", "-")) if top in flags else file
    if e["type"] == "extra_forbidden":
        return UsageError(f"unknown config key '{printable(key, 60)}'", where=where,
                          expected="one of " + ", ".join(TrainConfig.model_fields),
                          found=printable(key), hint="check the spelling; arch parameters go under [params] or --set k=v")
    if not e["loc"]:  # a rule across keys (_one_start)
        return UsageError("conflicting settings", where=file, found=e["msg"].removeprefix("Value error, "))
    return UsageError(f"bad value for '{key}'", where=where, expected=e["msg"].removeprefix("Value error, "),
                      found=printable(repr(e.get("input"))), hint=f"change the value given at {where}")


def _read_toml(path: Path) -> dict[str, Any]:
    where = f"--config {printable(path)}"
    try:
        return tomllib.loads(read_regular(path, MAX_CONFIG_BYTES).decode())
    except FileNotFoundError:
        raise UsageError("config file not found", where=where, hint="check the path") from None
    except FileRefused as e:
        raise UsageError(f"config file {e.what}", where=where, expected=e.expected or "a TOML file",
                         hint=e.hint or "pass a TOML file of TrainConfig keys") from None
    except (OSError, ValueError, RecursionError) as e:  # TOMLDecodeError, bad UTF-8, a 5,000-digit int, deep nesting
        raise UsageError("cannot read config file", where=where, expected="a UTF-8 TOML file",
                         found=printable(e)) from None


def stored_config(out: Path) -> dict[str, Any]:
    """RUN_DIR/config.json of an earlier run, as written by ``archc train``."""
    path = Path(out) / "config.json"
    try:
        stored = json.loads(read_regular(path, MAX_CONFIG_BYTES))
    except (OSError, ValueError, RecursionError, FileRefused) as e:  # RecursionError: JSON nested 100,000 deep
        raise UsageError("nothing to resume", where=printable(path), expected="config.json of an earlier run",
                         found=printable(getattr(e, "what", None) or e), hint="drop --resume to start a new run") from None
    if not isinstance(stored, dict):
        raise UsageError("nothing to resume", where=printable(path), expected="config.json of an earlier run",
                         found=f"a JSON {type(stored).__name__}", hint="drop --resume to start a new run")
    return stored


def _resumed(explicit: dict[str, Any]) -> dict[str, Any]:
    """The stored config of the run being resumed; explicit keys may only change where it runs, or extend it."""
    if "out" not in explicit:
        raise UsageError("--resume needs the run folder", where="--resume", hint="pass --out RUN_DIR of the run to continue")
    stored = stored_config(explicit["out"])
    where = printable(Path(explicit["out"]) / "config.json")
    changed = sorted(k for k, v in explicit.items()
                     if k not in RESUMABLE and k != "epochs" and _jsonable(v) != stored.get(k))
    if changed:
        k = changed[0]
        raise UsageError(f"--resume cannot change '{k}'", where=where, expected=printable(repr(stored.get(k))),
                         found=printable(repr(explicit[k])),
                         hint="resume with the original settings, or use a new --out to start over")
    merged = stored | {k: v for k, v in explicit.items() if k in RESUMABLE}
    return _extended(merged, explicit.get("epochs"), where)


def _extended(stored: dict[str, Any], epochs: Any, where: str) -> dict[str, Any]:
    """``--resume --epochs N`` past the run's E epochs: N - E more epochs, whose lr schedule starts over.

    The added epochs train as a fresh (N - E)-epoch run would, from the run's weights, optimizer state
    and data order: one-cycle warms up and anneals again, cosine restarts from the peak, multistep
    milestones count within the added epochs. So the result is not an N-epoch run (whose schedule
    would have annealed later), and the first E epochs stay exactly as they were trained.
    """
    before = stored.get("epochs")
    if epochs is None or epochs == before or not isinstance(before, int) or not isinstance(epochs, int):
        return stored if epochs is None else stored | {"epochs": epochs}
    if epochs < before:
        raise UsageError(f"--resume cannot shorten the run to {epochs} epochs", where="--epochs",
                         expected=f"more than the run's {before} epochs (to extend it)", found=str(epochs),
                         hint="drop --epochs to continue the run as planned")
    return stored | {"epochs": epochs, "restarts": [*stored.get("restarts", []), before]}


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def default_out(arch: Path | str | None) -> Path:
    """runs/<arch>-<YYYYmmdd-HHMMSS>, with -2, -3 ... when a run started in the same second."""
    stem = f"{Path(str(arch)).stem if arch else 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, n = RUNS / stem, 1
    while out.exists():
        n += 1
        out = RUNS / f"{stem}-{n}"
    return out


def resolve_config(flags: dict[str, Any], config_file: Path | None = None) -> TrainConfig:
    """Merge ``--config`` TOML and explicitly given flags (None means not given) into a TrainConfig."""
    explicit = _read_toml(config_file) if config_file else {}
    explicit |= {k: v for k, v in flags.items() if v is not None and k != "params"}
    if flags.get("params"):  # --set overrides single [params] entries, not the whole table
        base = explicit.get("params", {})
        explicit["params"] = {**base, **flags["params"]} if isinstance(base, dict) else base
    if explicit.get("resume"):
        explicit = _resumed(explicit)
    elif "out" not in explicit:
        if int(os.environ.get("WORLD_SIZE", 1)) > 1:  # each process would pick its own timestamp
            raise UsageError("a run started by torchrun needs --out", where="--out",
                             hint="pass --out RUN_DIR, the same for every process")
        explicit["out"] = default_out(explicit.get("arch"))
    try:
        return TrainConfig.model_validate(explicit)
    except ValidationError as err:
        given = {k for k, v in flags.items() if v is not None and v != {}}
        raise _usage(err, given, config_file) from None
