"""Reading a file written by ``torch.save`` (a checkpoint, torchvision's weights) without trusting it.

* Only a regular file is opened: a FIFO would block ``torch.load`` forever.
* ``torch.save`` writes a zip archive whose central directory declares every entry's unpacked size, and
  torch allocates that much before inflating the entry: 2 MB of deflated zeros can claim 2 GiB. The
  declared sizes are summed first (Python's zipfile reads only the directory) and the file is refused
  past ``MAX_EXPANSION`` times its own size. torch stores its entries uncompressed, so its own files
  declare about their size; an archive whose directory cannot be read never reaches torch.
* ``weights_only=True``: the unpickler builds tensors and plain containers only; a pickled call (a
  ``__reduce__`` naming ``os.system``) is refused, never run.

Every refusal is a CheckpointError naming the file, what it is, and the caller's fix.
"""
from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from archc.dsl.errors import CheckpointError
from archc.dsl.files import FileRefused, open_regular
from archc.dsl.text import printable

MAX_EXPANSION = 4  # declared unpacked bytes per byte of file; torch's own files are at 1
_ZIP = b"PK\x03\x04"  # torch.save's default format is a zip archive
# Messages of torch's weights-only unpickler that mean "this pickle builds objects or calls code"; its
# other complaints (unknown opcodes, stack underflow, bad strings) mean the bytes are simply not a pickle.
_UNSAFE = re.compile(r"Unsupported global|unsupported GLOBAL|Can only create new object|Can only build")


def read(path: Path, noun: str, fix: str) -> Any:
    """What ``torch.save`` wrote to ``path``, loaded onto the CPU; ``noun`` names the file in messages
    ("checkpoint", "cached weights file") and ``fix`` is the hint for a file that cannot be used."""
    path = Path(path)
    try:
        with open_regular(path, None) as f:
            size = os.fstat(f.fileno()).st_size
            _check_archive(f, size, path, noun, fix)
            return _load(f, size, path, noun, fix)
    except FileNotFoundError:
        raise CheckpointError(f"{noun} not found", where=str(path), hint=fix) from None
    except FileRefused as e:
        raise CheckpointError(f"{noun} {e.what}", where=str(path), expected=e.expected, hint=fix) from None
    except OSError as e:
        raise CheckpointError(f"cannot read the {noun}", where=str(path), found=printable(e.strerror or e), hint=fix) from None


def _damaged(noun: str, path: Path, found: str, fix: str) -> CheckpointError:
    return CheckpointError(f"{noun} is damaged or not a PyTorch file", where=str(path),
                           expected=f"a {noun} written by torch.save", found=found, hint=fix)


def _check_archive(f: BinaryIO, size: int, path: Path, noun: str, fix: str) -> None:
    """Refuse a zip archive that declares more unpacked bytes than ``MAX_EXPANSION`` x its size."""
    head = f.read(4)
    f.seek(0)
    if head != _ZIP:
        return
    try:
        with zipfile.ZipFile(f) as archive:  # reads the central directory only; leaves ``f`` open
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise _damaged(noun, path, f"a PyTorch zip archive of {size:,} bytes that is cut off or corrupt "
                                   f"({printable(e, 120)})", fix) from None
    f.seek(0)
    if declared > MAX_EXPANSION * size:
        raise CheckpointError(f"{noun} would unpack to far more than it holds (a zip bomb?)", where=str(path),
                              expected=f"at most {MAX_EXPANSION}x its own size unpacked (torch.save stores entries "
                                       "uncompressed)",
                              found=f"a zip archive of {size:,} bytes declaring {declared:,} bytes", hint=fix)


def _load(f: BinaryIO, size: int, path: Path, noun: str, fix: str) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them below
            warnings.simplefilter("ignore")
            return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or hostile file can fail in many ways inside the unpickler
        reason = _unpickler_reason(e)
        if _UNSAFE.search(str(e)):
            raise CheckpointError(f"refusing to load a {noun} that contains code or unknown objects", where=str(path),
                                  expected=f"a {noun} of tensors and plain values only",
                                  found=printable(reason.split(". Please")[0], 200), hint=fix) from None
        raise _damaged(noun, path, _describe_damage(f, size, e, reason), fix) from None


def _describe_damage(f: BinaryIO, size: int, e: Exception, reason: str) -> str:
    """What the file looks like, then the loader's first line: enough to tell a cut-off copy from a wrong file."""
    if size == 0:
        return "an empty file (0 bytes)"
    f.seek(0)
    head = f.read(4)
    if head == _ZIP:
        return f"a PyTorch zip archive of {size:,} bytes that is cut off or corrupt ({printable(reason, 120)})"
    return f"{size:,} bytes starting {head.hex(' ')}, not a PyTorch file ({type(e).__name__}: {printable(reason, 120)})"


def _unpickler_reason(e: Exception) -> str:
    """The loader's own complaint, without torch's advice about weights_only around it."""
    text = str(e).split("WeightsUnpickler error:")[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [type(e).__name__]
    flagged = [ln for ln in lines if _UNSAFE.search(ln)]
    plain = [ln for ln in lines if not ln.startswith("Weights only load failed")]
    return (flagged or plain or lines)[0]
