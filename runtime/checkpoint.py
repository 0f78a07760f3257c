"""Checkpoints that are written atomically and read without running any code from the file.

Writes go to a temporary file in the target's folder, are flushed and fsynced, then renamed over
the target with ``os.replace``: a crash, a full disk or a file-size limit at any moment leaves
either the old checkpoint or the new one, never a torn file. Reads use ``weights_only=True``, so a
pickled payload (a class whose ``__reduce__`` runs a command) is refused instead of executed; that is
why the contents are restricted to tensors, numbers, strings, lists and dicts.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from dsl.errors import CheckpointError

_UMASK = os.umask(0)  # read once (it can only be read by setting it) so new files get the usual mode
os.umask(_UMASK)
FORMAT = "archc-checkpoint"  # marks our files, so a foreign .pt is told apart from a damaged one
VERSION = 1


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file, then move it over ``path``; on any failure ``path`` is untouched."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes files private; the result should not be
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also KeyboardInterrupt: never leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible on every platform, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(path: Path, e: OSError) -> CheckpointError:
    return CheckpointError(f"could not write {path.name}; the previous version is kept", where=str(path),
                           found=f"{type(e).__name__}: {e.strerror or e}",
                           hint="free disk space, raise the file-size limit, or choose a writable --out")


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


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; anything but an intact archc checkpoint is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", where=str(path), hint="check the path; a run writes RUN_DIR/last.pt and best.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or hostile file can fail in many ways inside the unpickler
        unsafe = "Weights only load failed" in str(e)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        found = next((ln for ln in lines if ln.startswith("WeightsUnpickler error")), lines[0])
        raise CheckpointError(
            "refusing to load a checkpoint that contains code or unknown objects" if unsafe else "checkpoint is damaged or not a PyTorch file",
            where=str(path), expected="an archc checkpoint (tensors and plain values only)", found=found.split(". Please")[0][:200],
            hint="only load checkpoints written by archc train" if unsafe else "use another checkpoint, e.g. best.pt, or retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError("not an archc checkpoint", where=str(path), expected=f"a dict tagged format={FORMAT!r}",
                              found=type(state).__name__ if not isinstance(state, dict) else f"keys {sorted(map(str, state))[:6]}",
                              hint="pass a last.pt or best.pt written by archc train")
    if state.get("version") != VERSION:
        raise CheckpointError("unsupported checkpoint version", where=str(path), expected=str(VERSION), found=str(state.get("version")))
    return state


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Load the model weights, turning a mismatch with this architecture into a CheckpointError."""
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError("checkpoint does not fit this architecture", where=str(path),
                              found=str(e).strip().splitlines()[0][:300],
                              hint="evaluate with the same .arch file and --set values the run was trained with") from None
