"""Checkpoints that are written atomically and read without running any code from the file.

Writes go through ``runtime.atomic``: a crash, a full disk or a file-size limit at any moment leaves
either the old checkpoint or the new one, never a torn file. Reads go through ``runtime.torchfile``
(regular files only, zip sizes bounded before inflating, ``weights_only=True``: a pickled payload is
refused instead of executed), then the contents are checked against ``runtime.checkpoint_schema``, the
one description of what a checkpoint holds. A file that is cut off, empty, not a PyTorch file, not
tagged as ours, holding the wrong thing at some key, or shaped for another net is refused with a message
naming it and what was found.
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import torch

from archc.dsl.errors import CheckpointError
from archc.dsl.text import printable
from archc.runtime import torchfile
from archc.runtime.atomic import atomic_write
from archc.runtime.checkpoint_schema import FORMAT, VERSION, Checkpoint, first_problem
from archc.runtime.values import describe

HINT = "use a last.pt or best.pt written by archc train (a run folder holds both)"


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (``runtime/session.py: state``) atomically, tagged with our format.

    Checked against the schema first: a field the schema lacks is a bug in the writer, caught at the
    first save rather than when the file is read back. Serialised in memory before writing: torch's zip
    writer reports a failed file write as an opaque RuntimeError, while a plain ``write`` raises the
    OSError (ENOSPC, EFBIG, EROFS) worth showing.
    """
    full = {"format": FORMAT, "version": VERSION, **state}
    if bad := first_problem(Checkpoint.model_validate, full):
        key, expected, found = bad
        raise ValueError(f"the checkpoint state does not match runtime/checkpoint_schema.py at {key}: "
                         f"expected {expected}, found {found}") from None
    buf = io.BytesIO()
    torch.save(full, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def copy(src: Path, dst: Path) -> None:
    """Atomically replace ``dst`` with a copy of ``src`` (best.pt from last.pt without re-serialising)."""
    with Path(src).open("rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out))


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU: a dict that matches ``checkpoint_schema.Checkpoint``, or a CheckpointError."""
    path = Path(path)
    state = torchfile.read(path, "checkpoint", HINT)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = printable(f"keys {sorted(map(str, state))[:6]}", 200) if isinstance(state, dict) else describe(state)
        raise CheckpointError("not an archc checkpoint", where=str(path), expected=f"a dict tagged format={FORMAT!r}",
                              found=found, hint=HINT)
    if state.get("version") != VERSION:
        raise CheckpointError("unsupported checkpoint version", where=str(path), expected=str(VERSION),
                              found=printable(repr(state.get("version")), 80), hint=HINT)
    if bad := first_problem(Checkpoint.model_validate, state):
        key, expected, found = bad
        raise CheckpointError(f"checkpoint field {key} is not what archc train writes", where=str(path),
                              expected=expected, found=found,
                              hint=f"{HINT}; this one was changed, or written by another program") from None
    return state


def trained_with(state: dict[str, Any]) -> str:
    """``ARCH --set k=v ...`` of the run that wrote ``state`` (a loaded checkpoint), cut to one line."""
    config = state["config"]
    sets = "".join(f" --set {k}={v}" for k, v in config["params"].items())
    return printable(f"{config.get('arch') or 'a module passed to train()'}{sets}", 300)


def run_params(state: dict[str, Any]) -> dict[str, Any]:
    """The arch parameters (``--set`` values) the checkpoint's run was trained with."""
    return state["config"]["params"]


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: Path,
                     hint: str = "evaluate with the .arch file and --set values the run was trained with") -> None:
    """Load the model weights, turning a mismatch with this architecture into a CheckpointError naming it."""
    weights = state["model"]
    differences = mismatch(model.state_dict(), weights)
    if differences:
        raise CheckpointError(f"checkpoint does not fit this architecture ({printable(type(model).__name__)})",
                              where=str(path), expected="the parameter names and shapes of this net",
                              found=f"{differences}; the checkpoint was trained from {trained_with(state)}", hint=hint)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:  # dtype or layout trouble the check above missed
        raise CheckpointError(f"checkpoint does not fit this architecture ({type(model).__name__})", where=str(path),
                              found=printable(str(e).strip().splitlines()[-1], 300), hint=hint) from None


def mismatch(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str:
    """Missing names, extra names and shape differences of state dict ``got`` against ``want``, counted,
    with the first of each: '' when they fit."""
    def shape(t: torch.Tensor) -> str:
        return "×".join(map(str, t.shape)) or "scalar"

    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    shapes = [f"{k}: {shape(got[k])} in the checkpoint, {shape(want[k])} here"
              for k in want if k in got and got[k].shape != want[k].shape]
    labels = (("shape mismatch", "shape mismatches", shapes), ("missing", "missing", missing),
              ("unexpected", "unexpected", extra))
    return "; ".join(f"{len(items)} {one if len(items) == 1 else many} (first: {printable(items[0])})"
                     for one, many, items in labels if items)
