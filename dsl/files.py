"""Reading a user-named file without hanging or exhausting memory: one rule for every reader.

A FIFO or a character device named as a spec, a config, a data batch or a checkpoint would
block forever or never end; a huge file would be read whole before anything could refuse it.
``open_regular`` opens only regular files of at most ``max_bytes``; ``read_regular`` reads one.
Callers turn ``FileRefused`` into their own phase's ``ArchError`` (an import error, a data error ...).
"""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator


class FileRefused(Exception):
    """Why a file was not read: ``what`` (a short phrase), ``expected``; ``too_large`` for a size bound."""

    def __init__(self, what: str, expected: str | None = None, hint: str | None = None, too_large: bool = False):
        super().__init__(what)
        self.what, self.expected, self.hint, self.too_large = what, expected, hint, too_large


def _check_mode(st: os.stat_result, max_bytes: int | None) -> int:
    if stat.S_ISDIR(st.st_mode):
        raise FileRefused("is a directory", "a file", "name a file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused("is not a regular file (a FIFO, socket or device)", "a regular file",
                          "save the content to a file first")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileRefused(f"is {st.st_size:,} bytes", f"at most {max_bytes:,} bytes", too_large=True)
    return st.st_size


def check_regular(path: Path, max_bytes: int | None) -> int:
    """The size of ``path`` when it is a regular file of at most ``max_bytes`` (None: any size); else FileRefused.

    OSError (missing, permission) passes through for the caller to word."""
    return _check_mode(Path(path).stat(), max_bytes)


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, max_bytes: int | None) -> Iterator[BinaryIO]:
    """``path`` opened for reading when it is a regular file of at most ``max_bytes``; else FileRefused.

    Checked before opening, and again on the open descriptor: opened with O_NONBLOCK, so a FIFO
    swapped in after the first check cannot block the open either."""
    check_regular(Path(path), max_bytes)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as f:
        _check_mode(os.fstat(fd), max_bytes)
        yield f


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (checked before and while reading)."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since the check
        raise FileRefused(f"is over {max_bytes:,} bytes", f"at most {max_bytes:,} bytes", too_large=True)
    return data

