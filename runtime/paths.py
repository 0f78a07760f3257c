"""Output paths named on the command line: never one of the command's own inputs.

``archc compile x.arch --emit python -o x.arch`` would replace the spec with generated code;
``eval --plot`` could overwrite the checkpoint it reads. Every command that writes where a
flag says checks the path here first, before it writes or computes anything large.
"""
from __future__ import annotations

import os
from pathlib import Path

from archc.dsl.errors import ArchError, UsageError
from archc.dsl.text import printable


def refuse_overwrite(output: str | os.PathLike, inputs, flag: str = "-o") -> None:
    """Raise a UsageError naming ``flag`` when ``output`` is, or links to, one of ``inputs``."""
    out = Path(output)
    for item in inputs:
        if _same(out, Path(item)):
            same = os.path.normpath(output) == os.path.normpath(item)
            raise UsageError(f"{flag} {printable(output)} would overwrite an input of this command",
                             where=flag, found=None if same else f"{printable(output)} is {printable(item)}",
                             expected="a path that is not the spec, a file it imports, or another input",
                             hint="write the output to a new file")


def _same(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):  # covers symlinks, and outputs that do not exist yet
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_png(plot: Path | str, inputs, flag: str = "--plot") -> None:
    """Refuse a picture path that is not a .png, or that is one of the command's inputs: before any work."""
    plot = Path(plot)
    if plot.suffix.lower() != ".png":
        raise UsageError("the picture is written as a PNG", where=f"{flag} {printable(plot)}",
                         expected="a path ending in .png", found=printable(plot.name),
                         hint=f"e.g. {flag} {printable(plot.with_suffix('.png').name)}")
    refuse_overwrite(plot, inputs, flag)


def write_output(path: Path | str, data: bytes, flag: str, *, parents: bool = False) -> None:
    """``data`` to ``path`` through ``atomic_write`` (only a regular file is replaced; never a torn file),
    creating its missing folders first when ``parents``; a failure is a UsageError naming ``flag``."""
    from archc.runtime.atomic import atomic_write
    try:
        if parents:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(path), lambda f: f.write(data))
    except OSError as e:  # creating a folder: under a file, in /proc, on a read-only disk
        raise UsageError(f"could not create the folder of {printable(Path(path).name)}", where=f"{flag} {printable(path)}",
                         found=f"{type(e).__name__}: {printable(e.strerror or e)}",
                         hint=f"choose another path for {flag}") from None
    except ArchError as err:  # atomic_write's reason, by errno
        raise UsageError(err.what, where=f"{flag} {printable(path)}", found=err.found,
                         hint=f"choose another path for {flag}") from None
