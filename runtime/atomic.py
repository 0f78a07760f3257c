"""Atomic file writes: a temporary file in the target's folder, flushed, fsynced and renamed over it.

A crash, a full disk or a file-size limit at any moment leaves either the old file or the new one,
never a torn file. A failed write is a CheckpointError naming the path and saying why (by errno) and
what to do; a process killed mid-write leaves only a ``.NAME.XXXX.tmp`` file, which
:func:`remove_temporaries` clears. Only a regular file is ever replaced: a rename over ``/dev/full``
(possible as root) would replace the device itself, over a FIFO or a folder it would lose what was
there. A symlink is followed, so the file it points to is replaced and the link kept.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from archc.dsl.errors import CheckpointError
from archc.dsl.text import printable

_UMASK = os.umask(0)  # read once (it can only be read by setting it) so new files get the usual mode
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file, then move it over ``path``; on any failure ``path`` is untouched."""
    path = Path(path)
    target = Path(os.path.realpath(path))  # through a symlink: its file is replaced, the link kept
    _check_target(path, target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes files private; the result should not be
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:  # also KeyboardInterrupt: never leave the temporary file behind
        with contextlib.suppress(OSError):  # a folder that turned read-only mid-write cannot drop it either
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise
    _fsync_dir(target.parent)


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def _check_target(path: Path, target: Path) -> None:
    """Refuse to replace anything but a regular file (or nothing)."""
    try:
        mode = target.stat().st_mode
    except OSError as e:  # absent, or its folder is unusable: creating the temporary file says why
        if e.errno == errno.ELOOP:  # a loop of links: the rename would replace the link, not follow it
            raise _write_error(path, e) from None
        return
    kind = next((name for test, name in _KINDS if test(mode)), None)
    if kind:
        err = CheckpointError(f"could not write {printable(path.name)}: it is {kind}, not a file", where=str(path),
                              expected="a path that is a regular file or does not exist yet",
                              hint="choose a file path (another --out or output name)")
        err.fix = "choose another path"
        raise err


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


# Why a write failed, and what the user can do about it, by errno; anything else shows its strerror.
_WRITE_FAILURES = {
    errno.ENOSPC: ("no space left on the device", "free space on that disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota"),
    errno.EFBIG: ("file too large for the file-size limit", "raise the limit (`ulimit -f unlimited`)"),
    errno.EACCES: ("permission denied", "make the folder writable (`chmod u+w`)"),
    errno.EPERM: ("operation not permitted", "make the folder writable"),
    errno.EROFS: ("read-only file system", "remount it read-write"),
    errno.ENOENT: ("the folder does not exist", "create it"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose a path whose folders are folders"),
    errno.EISDIR: ("it is a folder", "name a file"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.ELOOP: ("too many symbolic links", "resolve the links in the path"),
}


def _write_error(path: Path, e: OSError) -> CheckpointError:
    """Why, where and how to fix it; ``err.fix`` is the fix alone, for callers that add what to do next."""
    why, fix = _WRITE_FAILURES.get(e.errno, (e.strerror or str(e), "check the folder"))
    if e.errno == errno.ENOENT and path.parent.is_dir():  # /proc, /sys: the folder is there, new files are not
        why, fix = "the folder does not take new files (a virtual file system such as /proc or /sys?)", \
            "choose a folder on a disk"
    kept = f"; the previous {printable(path.name)} is kept unchanged" if os.path.lexists(path) else ""
    err = CheckpointError(f"could not write {printable(path.name)}: {why}{kept}", where=str(path),
                          found=f"{type(e).__name__} [{errno.errorcode.get(e.errno, e.errno)}]: {printable(e.strerror or e)}",
                          hint=f"{fix}, or write somewhere else (another --out)")
    err.fix = fix
    return err


def remove_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Delete what :func:`atomic_write` left for ``names`` when its process was killed mid-write (SIGKILL,
    power loss): such a file can be as large as a checkpoint. Only for a folder no other process writes."""
    for name in names:
        for tmp in Path(folder).glob(f".{glob.escape(name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
