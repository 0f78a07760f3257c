"""What a checkpoint holds: one pydantic model, checked when a checkpoint is written and when it is read.

A file that loads (``weights_only``) can still hold any plain value anywhere: a nested list where a
tensor belongs, a history entry without its loss, ``best`` as a string. :func:`first_problem` reports the first
difference from what ``archc train`` writes, located by key path (``history[3].loss``), with what was
expected and a one-line description of what was found; unknown keys are errors. The writer
(``runtime/session.py: state``) adds a field here first: ``checkpoint.save`` validates too, so a field
missing from this model fails the first save in the tests instead of writing unreadable checkpoints.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, get_args

import torch
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model,
                      model_validator)
from pydantic_core import PydanticCustomError

from archc.dsl.text import printable
from archc.runtime.config import TrainConfig
from archc.runtime.values import describe

FORMAT = "archc-checkpoint"  # marks our files, so a foreign .pt is told apart from a damaged one
VERSION = 1
MAX_NESTING = 8  # of the plain values torch's optimizers and schedules store (a OneCycleLR's is 3)

Tensor = torch.Tensor
FailFast = Field(fail_fast=True)  # stop at the first bad item: a million bad entries must not make a million errors


def _plain(value: Any, nesting: int = MAX_NESTING) -> Any:
    """``value`` when it is None, a number, a string, a tensor, or lists / tuples / dicts of them, nested at
    most ``nesting`` deep and never containing itself (walked without recursion; a path is spelt out only
    for the value that fails, so a 3,000,000-element list costs a pass, not 3,000,000 strings). A container
    met again is walked again only when met deeper (less room below it): a pickle's memo can share one list
    a thousand times per level, and walking every path through such a graph would never end."""
    stack, on_path, checked = [(value, 0, None)], set(), {}
    while stack:
        item, depth, where = stack.pop()  # ``where``: (parent's where, key), a chain rendered on failure
        if item is _LEAVE:
            on_path.discard(depth)  # here ``depth`` holds the id of the container being left
            continue
        if isinstance(item, _SCALARS):
            continue
        if id(item) in on_path:
            found = "a container that contains itself"
        elif checked.get(id(item), -1) >= depth:  # already walked from here or less deep: it fits
            continue
        elif not isinstance(item, (list, tuple, dict)):
            found = describe(item)
        elif depth >= nesting:
            found = f"values nested more than {nesting} deep"
        else:
            checked[id(item)] = depth
            values = item.values() if isinstance(item, dict) else item
            if all(type(v) in _SCALARS for v in values):  # the common case: a list of numbers
                continue
            on_path.add(id(item))
            stack.append((_LEAVE, id(item), None))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, depth + 1, (where, k)) for k, v in pairs)
            continue
        raise PydanticCustomError("plain_value", "plain values (numbers, strings, tensors, lists and dicts of them)",
                                  {"at": _spelt(where), "found": found})
    return value


def _spelt(where: tuple | None) -> str:
    keys = []
    while where is not None:
        where, key = where
        keys.append(f"[{printable(repr(key), 40)}]")
    return "".join(reversed(keys))


_LEAVE = object()  # marks, on _plain's stack, the end of a container's items
_SCALARS = (type(None), bool, int, float, str, torch.Tensor)


Plain = Annotated[Any, AfterValidator(_plain)]
# An arch parameter (a --set value: a number, a string, a list of them), nested at most as deep as the
# front end's default --max-depth; deeper, printing it in a message would exhaust Python's recursion.
Param = Annotated[Any, AfterValidator(lambda v: _plain(v, 100))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _first_unknown_key(cls, data: Any) -> Any:
        """The first unknown key only: extra="forbid" alone reports every one of a million."""
        for key in data if isinstance(data, dict) else ():
            if key not in cls.model_fields:
                raise PydanticCustomError("unknown_key", "no such key in what archc train writes", {"key": key})
        return data


class HistoryEntry(_Strict):
    """One finished epoch, as train.py records it (and metrics.jsonl lists it)."""
    epoch: int = Field(ge=1)
    loss: float
    train_acc: float
    val_acc: float | None  # None for an epoch without validation (--eval-every, --val-split 0)
    val_loss: float | None
    lr: float
    images_per_s: float
    seconds: float


class Best(_Strict):
    """The epoch best.pt holds and its validation accuracy (None before the first validation)."""
    val_acc: float | None
    epoch: int = Field(ge=0)


def _as_stored(annotation: Any) -> Any:
    """A TrainConfig field's type as ``model_dump(mode="json")`` stores it: paths as strings."""
    if annotation is Path:
        return str
    if Path in get_args(annotation):
        return str | None
    return annotation


# The run's TrainConfig as stored: its keys, types and bounds, without the validators that judge this
# machine (``nproc`` against its cores): a run from a 4-GPU host stays readable on a laptop.
RunConfig = create_model("RunConfig", __base__=_Strict,
                         **{name: (_as_stored(field.annotation), copy.copy(field))
                            for name, field in TrainConfig.model_fields.items() if name != "params"},
                         params=(Annotated[dict[str, Param], FailFast], Field(default_factory=dict)))


class PythonRng(_Strict):
    version: int
    state: Tensor
    gauss: float | None


class NumpyRng(_Strict):
    kind: str
    keys: Tensor
    pos: int
    has_gauss: int
    cached: float


class Rng(_Strict):
    """rng.capture(): every global generator's state."""
    torch: Tensor
    python: PythonRng
    numpy: NumpyRng
    cuda: Annotated[list[Tensor], FailFast] | None = None  # only where CUDA was available


class Optimizer(_Strict):
    """torch.optim's state_dict: per-parameter state (tensors, step counts) and the parameter groups."""
    state: Annotated[dict[int, Annotated[dict[str, Plain], FailFast]], FailFast]
    param_groups: Annotated[list[Annotated[dict[str, Plain], FailFast]], FailFast]


class Checkpoint(_Strict):
    """Everything ``archc train`` stores in last.pt / best.pt (``runtime/session.py: state``)."""
    format: Literal["archc-checkpoint"]
    version: Literal[1]
    epoch: int = Field(ge=0)  # finished epochs
    config: RunConfig
    model: Annotated[dict[str, Tensor], FailFast]
    optimizer: Optimizer
    schedule: Annotated[dict[str, Plain], FailFast]  # the lr scheduler's state_dict
    rng: Rng
    data_generator: Tensor
    history: Annotated[list[HistoryEntry], FailFast]
    best: Best
    lookahead: Annotated[dict[str, Tensor], FailFast] | None = None  # the weights' moving average (--lookahead)


StateDict = TypeAdapter(Annotated[dict[str, Tensor], FailFast], config=ConfigDict(strict=True, arbitrary_types_allowed=True))


def first_problem(validate: Callable[[Any], Any], value: Any) -> tuple[str, str, str] | None:
    """None when ``validate(value)`` passes (``Checkpoint.model_validate``, ``StateDict.validate_python``);
    else (key path, expected, found) of its first error, each bounded for a terminal."""
    try:
        validate(value)
    except ValidationError as err:
        return _problem(err.errors(include_url=False)[0])
    return None


def _problem(e: dict) -> tuple[str, str, str]:
    ctx, path = e.get("ctx") or {}, _keypath(e["loc"])
    if e["type"] == "unknown_key":
        return _keypath((*e["loc"], ctx["key"])), "only the keys archc train writes", "an unknown key"
    if e["type"] == "missing":
        return path, "a value", "no such key"
    if e["type"] == "plain_value":
        return f"{path}{ctx['at']}", e["msg"], ctx["found"]
    return path, printable(e["msg"].removeprefix("Input should be "), 200), describe(e.get("input"))


def _keypath(loc: tuple) -> str:
    """``history[3].loss``, ``model['conv.weight']``: how a user finds the value in the loaded dict."""
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif isinstance(p, str) and p.isidentifier():
            parts.append(f".{p}" if parts else p)
        else:
            parts.append(f"[{printable(repr(p), 80)}]")
    return printable("".join(parts), 300)
