"""The training configuration: one pydantic model, filled from defaults < recipe < ``--config`` file < flags.

The default recipe is a short one-cycle SGD schedule that trains CIFAR-10 CNNs to good accuracy in
tens of epochs: Nesterov SGD with momentum 0.9 generalises better than Adam on these nets; one-cycle
(warm up, then anneal) tolerates the high peak lr 0.2 that batch 128 allows, which is what makes short
runs converge; label smoothing 0.1 and weight decay 5e-4 are the usual CIFAR regularisers for small
models without extra data. ``seed-table`` instead reproduces how the reference ("seed table") models in
shared/zoo-targets.json were trained, so their published accuracies can be compared like for like.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from archc.dsl.errors import UsageError

# Keys a resumed run may change: where and how it runs, not what it computes. ``arch`` and ``out``
# may be spelt as another path to the same file; a different net fails to load the checkpoint.
RESUMABLE = {"resume", "quiet", "device", "compile", "nproc", "data", "precision", "arch", "out"}


def _seed_table(data: dict[str, Any]) -> dict[str, Any]:
    """zoo-targets.json's ``seed_table_source_training``: ResNets used SGD, GoogleNet/DenseNet AdamW."""
    common = {"batch_size": 128, "epochs": 180, "schedule": "multistep", "milestones": [100, 150],
              "augment": "seed-table", "label_smoothing": 0.0, "weight_decay": 1e-4}
    if "resnet" in Path(str(data.get("arch") or "")).name.lower():
        return common | {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False}
    return common | {"optimizer": "adamw", "lr": 1e-3}


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arch: Path | None = None  # path of the .arch file (None when a caller hands train() a ready module)
    params: dict[str, Any] = Field(default_factory=dict)  # arch parameter overrides, from --set k=v
    data: str = "cifar10"  # "cifar10" (cached download), "sample" (bundled), or a folder path
    out: Path  # run folder: config.json, metrics.jsonl, last.pt, best.pt, curves.png, summary.json
    epochs: int = Field(30, ge=1)  # full passes over the training set
    batch_size: int = Field(128, ge=1)  # global batch in images, summed over all processes
    lr: float = Field(0.2, gt=0)  # peak learning rate per step (one-cycle maximum, cosine/multistep start)
    optimizer: Literal["sgd", "adamw"] = "sgd"  # sgd: (Nesterov) momentum SGD; adamw: Adam with decoupled decay
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD momentum (AdamW uses its own betas)
    nesterov: bool = True  # Nesterov momentum for SGD
    weight_decay: float = Field(5e-4, ge=0)  # L2 coefficient on every weight (decoupled for AdamW)
    schedule: Literal["onecycle", "cosine", "multistep"] = "onecycle"  # lr shape over all steps of the run
    # multistep only, lr x0.1 at each: values < 1 are fractions of the epochs, values >= 1 epoch numbers
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    label_smoothing: float = Field(0.1, ge=0, lt=1)  # probability mass spread over all classes
    augment: Literal["standard", "none", "seed-table"] = "standard"  # standard: reflect-pad-4 crop + flip
    seed: int = 0  # seeds model init, data order, augmentation and dropout
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model (slow start, faster steps on CUDA)
    resume: bool = False  # continue from out/last.pt
    nproc: int = Field(1, ge=1)  # local processes for DistributedDataParallel (gloo on CPU, nccl on CUDA)
    quiet: bool = False  # one plain line per epoch instead of a live progress bar
    eval_every: int = Field(1, ge=1)  # epochs between test-set evaluations (the last epoch always evaluates)
    recipe: Literal["default", "seed-table"] = "default"  # which defaults the unset keys take

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, data: Any) -> Any:
        """Recipe values fill only the keys the file and the flags left unset."""
        if isinstance(data, dict) and data.get("recipe") == "seed-table":
            return _seed_table(data) | data
        return data

    def milestone_epochs(self) -> list[float]:
        """The multistep milestones in epochs, fractions resolved against ``epochs``."""
        return sorted(m * self.epochs if m < 1 else m for m in self.milestones)


def _usage(err: ValidationError, flags: set[str], config_file: Path | None) -> UsageError:
    """The first validation error, placed at the flag or the file that supplied the value."""
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "config"
    top = str(e["loc"][0]) if e["loc"] else ""
    file = f"--config {config_file}" if config_file else "configuration"
    where = ("--set" if top == "params" else "--" + top.replace("_", "-")) if top in flags else file
    if e["type"] == "extra_forbidden":
        return UsageError(f"unknown config key '{key}'", where=where, expected="one of " + ", ".join(TrainConfig.model_fields),
                          found=key, hint="check the spelling; arch parameters go under [params] or --set k=v")
    if e["type"] == "missing":
        return UsageError(f"'{key}' is required", where=where, hint=f"pass --{key.replace('_', '-')} or set {key} in the --config file")
    return UsageError(f"bad value for '{key}'", where=where, expected=e["msg"], found=repr(e.get("input")),
                      hint=f"change the value given at {where}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError("config file not found", where=f"--config {path}", hint="check the path") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError("cannot read config file", where=str(path), expected="a TOML file", found=str(e)) from None


def _resumed(explicit: dict[str, Any]) -> dict[str, Any]:
    """The stored config of the run being resumed; explicit keys may only change where it runs."""
    if "out" not in explicit:
        raise UsageError("--resume needs the run folder", where="--resume", hint="pass --out RUN_DIR of the run to continue")
    stored_path = Path(explicit["out"]) / "config.json"
    try:
        stored = json.loads(stored_path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError("nothing to resume", where=str(stored_path), expected="config.json of an earlier run",
                         found=str(e), hint="drop --resume to start a new run") from None
    changed = sorted(k for k, v in explicit.items() if k not in RESUMABLE and _jsonable(v) != stored.get(k))
    if changed:
        k = changed[0]
        raise UsageError(f"--resume cannot change '{k}'", where=str(stored_path), expected=repr(stored.get(k)),
                         found=repr(explicit[k]), hint="resume with the original settings, or use a new --out to start over")
    return stored | {k: v for k, v in explicit.items() if k in RESUMABLE}


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def resolve_config(flags: dict[str, Any], config_file: Path | None = None) -> TrainConfig:
    """Merge ``--config`` TOML and explicitly given flags (None means not given) into a TrainConfig."""
    explicit = _read_toml(config_file) if config_file else {}
    explicit |= {k: v for k, v in flags.items() if v is not None and k != "params"}
    if flags.get("params"):  # --set overrides single [params] entries, not the whole table
        base = explicit.get("params", {})
        explicit["params"] = {**base, **flags["params"]} if isinstance(base, dict) else base
    if explicit.get("resume"):
        explicit = _resumed(explicit)
    try:
        return TrainConfig.model_validate(explicit)
    except ValidationError as err:
        given = {k for k, v in flags.items() if v is not None and v != {}}
        raise _usage(err, given, config_file) from None
