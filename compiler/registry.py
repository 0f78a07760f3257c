"""The architecture registry: every ``archs/*.arch`` file, by name (file name = arch name)."""
from __future__ import annotations

from pathlib import Path

ARCHS = Path(__file__).resolve().parent.parent / "archs"


def names() -> list[str]:
    return sorted(p.stem for p in ARCHS.glob("*.arch"))


def path(name: str) -> Path:
    """The file of a registered arch; ``name`` may also be a path to any .arch file."""
    p = ARCHS / f"{name}.arch"
    return p if p.exists() else Path(name)
