"""Checkpoints that are written atomically and read without running any code from the file.

Writes go through ``runtime.atomic``: a crash, a full disk or a file-size limit at any moment leaves
either the old checkpoint or the new one, never a torn file. Reads use ``weights_only=True``,
so a pickled payload (a class whose ``__reduce__`` runs a command) is refused instead of executed; that
is why the contents are restricted to tensors, numbers, strings, lists and dicts. A file that is cut
off, empty, not a PyTorch file, not tagged as ours, or shaped for another net is refused with a message
naming it and what was found.
"""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from archc.dsl.errors import CheckpointError
from archc.runtime.atomic import atomic_write

FORMAT = "archc-checkpoint"  # marks our files, so a foreign .pt is told apart from a damaged one
VERSION = 1


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plain containers of tensors and numbers) atomically, tagged with our format.

    Serialised in memory first: torch's zip writer reports a failed file write as an opaque
    RuntimeError, while a plain ``write`` raises the OSError (ENOSPC, EFBIG, EROFS) worth showing.
    """
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def copy(src: Path, dst: Path) -> None:
    """Atomically replace ``dst`` with a copy of ``src`` (best.pt from last.pt without re-serialising)."""
    with Path(src).open("rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out))


# Messages of torch's weights-only unpickler that mean "this pickle builds objects or calls code"; its
# other complaints (unknown opcodes, stack underflow, bad strings) mean the bytes are simply not a pickle.
_UNSAFE = re.compile(r"Unsupported global|unsupported GLOBAL|Can only create new object|Can only build")
_ZIP = b"PK\x03\x04"  # torch.save's default format is a zip archive


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; anything but an intact archc checkpoint is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        what = "checkpoint is not a regular file" if path.exists() else "checkpoint not found"
        raise CheckpointError(what, where=str(path), hint="check the path; a run writes RUN_DIR/last.pt and best.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or hostile file can fail in many ways inside the unpickler
        if _UNSAFE.search(str(e)):
            raise CheckpointError("refusing to load a checkpoint that contains code or unknown objects", where=str(path),
                                  expected="an archc checkpoint (tensors and plain values only)",
                                  found=_unpickler_reason(e).split(". Please")[0][:200],
                                  hint="only load checkpoints written by archc train") from None
        raise CheckpointError("checkpoint is damaged or not a PyTorch file", where=str(path),
                              expected="an archc checkpoint written by archc train", found=_describe_damage(path, e),
                              hint="use another checkpoint (e.g. best.pt), or retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError("not an archc checkpoint", where=str(path), expected=f"a dict tagged format={FORMAT!r}",
                              found=type(state).__name__ if not isinstance(state, dict) else f"keys {sorted(map(str, state))[:6]}",
                              hint="pass a last.pt or best.pt written by archc train")
    if state.get("version") != VERSION:
        raise CheckpointError("unsupported checkpoint version", where=str(path), expected=str(VERSION), found=str(state.get("version")))
    return state


def _describe_damage(path: Path, e: Exception) -> str:
    """What the file looks like, then the loader's first line: enough to tell a cut-off copy from a wrong file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot read it: {err.strerror or err}"
    if size == 0:
        return "an empty file (0 bytes)"
    reason = _unpickler_reason(e)
    if head == _ZIP:
        return f"a PyTorch zip archive of {size:,} bytes that is cut off or corrupt ({reason[:120]})"
    return f"{size:,} bytes starting {head.hex(' ')}, not a PyTorch file ({type(e).__name__}: {reason[:120]})"


def _unpickler_reason(e: Exception) -> str:
    """The loader's own complaint, without torch's advice about weights_only around it."""
    text = str(e).split("WeightsUnpickler error:")[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [type(e).__name__]
    flagged = [ln for ln in lines if _UNSAFE.search(ln)]
    plain = [ln for ln in lines if not ln.startswith("Weights only load failed")]
    return (flagged or plain or lines)[0]


def trained_with(state: dict[str, Any]) -> str:
    """``ARCH --set k=v ...`` of the run that wrote ``state``, as far as its config says."""
    config = state.get("config")
    if not isinstance(config, dict):
        return "an unknown architecture"
    params = config.get("params") if isinstance(config.get("params"), dict) else {}
    sets = "".join(f" --set {k}={v}" for k, v in params.items())
    return f"{config.get('arch') or 'a module passed to train()'}{sets}"


def run_params(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """The arch parameters (``--set`` values) the checkpoint's run was trained with."""
    config = state.get("config", {})
    field, value = ("config.params", config.get("params", {})) if isinstance(config, dict) else ("config", config)
    if not isinstance(value, dict):
        raise CheckpointError("checkpoint has no readable run configuration", where=str(path),
                              expected="config.params: a dict of arch parameters",
                              found=f"{field}: {type(value).__name__}",
                              hint="pass a last.pt or best.pt written by archc train")
    return value


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: Path,
                     hint: str = "evaluate with the .arch file and --set values the run was trained with") -> None:
    """Load the model weights, turning a mismatch with this architecture into a CheckpointError naming it."""
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise CheckpointError("checkpoint holds no model weights", where=str(path), expected="model: names -> tensors",
                              found="nothing" if weights is None else type(weights).__name__,
                              hint="pass a last.pt or best.pt written by archc train")
    problem = mismatch(model.state_dict(), weights)
    if problem:
        raise CheckpointError(f"checkpoint does not fit this architecture ({type(model).__name__})", where=str(path),
                              expected="the parameter names and shapes of this net",
                              found=f"{problem}; the checkpoint was trained from {trained_with(state)}", hint=hint)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:  # dtype or layout trouble the check above missed
        raise CheckpointError(f"checkpoint does not fit this architecture ({type(model).__name__})", where=str(path),
                              found=str(e).strip().splitlines()[-1][:300], hint=hint) from None


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
    return "; ".join(f"{len(items)} {one if len(items) == 1 else many} (first: {items[0]})"
                     for one, many, items in labels if items)
