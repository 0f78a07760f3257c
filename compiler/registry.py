"""The architecture registry: the specs in the folders of ``ARCHC_PATH`` and the bundled
``archs/``, by name (file name = arch name); a name on an earlier folder hides a later one."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from archc.dsl.loader import BUNDLED as ARCHS, search_path


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    bundled: bool


def names() -> list[str]:
    """The bundled archs."""
    return sorted(p.stem for p in ARCHS.glob("*.arch"))


def path(name: str) -> Path:
    """The file of a bundled arch; ``name`` may also be a path to any .arch file."""
    p = ARCHS / f"{name}.arch"
    return p if p.exists() else Path(name)


def entries() -> list[Entry]:
    """Every arch ``archc list`` shows: ARCHC_PATH's, then the bundled ones not hidden by them.

    The working folder is left out: it is searched when resolving a name, but listing
    whatever .arch files lie where the command happens to run would not be the registry."""
    seen: dict[str, Entry] = {}
    for folder in search_path()[1:]:
        for p in sorted(folder.glob("*.arch")) if os.path.isdir(folder) else ():  # False, not OSError, for a bad entry
            seen.setdefault(p.stem, Entry(p.stem, p, folder == ARCHS))
    return sorted(seen.values(), key=lambda e: e.name)


def not_found(name: str) -> str:
    """Why a spec name found nothing: where it was looked for, and the nearest names."""
    import difflib

    from archc.dsl.loader import ARCHC_PATH
    from archc.dsl.text import printable
    near = difflib.get_close_matches(name.removesuffix(".arch"), [e.name for e in entries()], n=3)
    where = f"the working folder, ${ARCHC_PATH} ({printable(os.environ.get(ARCHC_PATH) or 'unset')}) and the bundled registry"
    return (f"no spec named {printable(name)!r} in {where}" + (f"; did you mean {' or '.join(near)}?" if near else "")
            + " (`archc list` shows the names)")


def find(name: str, where: str, hint: str) -> Path:
    """The spec file ``name`` names (a path, or a name on the search path); UsageError at ``where`` if none."""
    from archc.dsl.errors import UsageError
    from archc.dsl.loader import resolve
    try:
        return Path(resolve(name))
    except LookupError:
        raise UsageError(not_found(name), where=where, hint=hint) from None
