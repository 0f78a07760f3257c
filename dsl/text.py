"""User text on its way to a terminal: one place that makes it safe to print.

Spec strings, labels, paths and checkpoint contents reach tables and messages. Control
characters (ESC sequences), bidi overrides (U+202E) and other invisible format characters
could rewrite the terminal or disguise a name, and unbounded values could flood it. Every
user string shown by archc goes through ``printable`` (plain text) or ``markup`` (text that a
rich table renders, where ``[bold]`` would otherwise be read as markup).
"""
from __future__ import annotations

import unicodedata

MAX_SHOWN = 200  # characters of one user value shown in a message or a table cell


def printable(text: object, limit: int | None = MAX_SHOWN) -> str:
    """``text`` with every control or format character shown as ``?``, cut to ``limit`` characters."""
    s = str(text)
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 3)] + "..."
    return "".join(ch if ch == "\t" or _visible(ch) else "?" for ch in s)


def _visible(ch: str) -> bool:
    # Cc: control (ESC, NUL, CR); Cf: format (bidi overrides, zero-width joiners); Zl/Zp: U+2028/9
    return unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def markup(text: object, limit: int | None = MAX_SHOWN) -> str:
    """``printable`` text escaped for rich, so ``[/x]`` in a label prints as written."""
    from rich.markup import escape  # deferred: only the table-printing commands need rich
    return escape(printable(text, limit))
