"""Output paths named on the command line: never one of the command's own inputs.

``archc compile x.arch --emit python -o x.arch`` would replace the spec with generated code;
``eval --plot`` could overwrite the checkpoint it reads. Every command that writes where a
flag says checks the path here first, before it writes or computes anything large.
"""
from __future__ import annotations

import os
from pathlib import Path

from archc.dsl.errors import UsageError
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
