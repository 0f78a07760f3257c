"""The one exception tree of archc.

Every user-facing failure is an ``ArchError``; the CLI prints ``str(err)`` and exits with
``err.exit_code`` (2 for user errors), never a traceback. A message says *where*
(``file:line:col`` plus the source line and a caret), *what* was expected and found, and
*how to fix it* (the hint).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A source position: 1-based line and column, plus the end column on that line."""

    file: str
    line: int
    col: int
    end_col: int = 0
    source_line: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def caret(self) -> str:
        """The source line with a caret under the span (empty when the line is unknown).

        Long lines are cut to a window around the span, and control characters are shown
        as '?', so a message stays readable (and terminal-safe) whatever the input."""
        if not self.source_line:
            return ""
        text, start = self.source_line, self.col - 1
        end = max(start + 1, (self.end_col or self.col + 1) - 1)
        lo, hi = 0, len(text)
        if len(text) > _SHOWN:
            lo = max(0, min(start - _SHOWN // 3, len(text) - _SHOWN))
            hi = lo + _SHOWN
        shown = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in text[lo:hi])
        left, right = ("..." if lo else ""), ("..." if hi < len(text) else "")
        pad = "".join("\t" if ch == "\t" else " " for ch in left + shown[: max(0, start - lo)])
        width = max(1, min(end, hi) - max(start, lo))
        return f"    {left}{shown}{right}\n    {pad}{'^' * width}"


_SHOWN = 100  # characters of a long source line shown around the error


class ArchError(Exception):
    """Root of every archc error. ``exit_code`` is what the CLI returns."""

    phase = "error"
    exit_code = 2

    def __init__(self, what: str, span: Span | None = None, *, expected: str | None = None,
                 found: str | None = None, hint: str | None = None, where: str | None = None):
        super().__init__(what)
        self.what, self.span, self.expected, self.found, self.hint = what, span, expected, found, hint
        self.where = where  # a non-source place (a file path, a flag) when there is no span

    def __str__(self) -> str:
        place = str(self.span) if self.span else (self.where or "archc")
        lines = [f"{_bounded(place)}: {self.phase}: {_bounded(self.what)}"]
        if self.span and self.span.caret():
            lines.append(self.span.caret())
        if self.expected is not None:
            lines.append(f"  expected: {_bounded(self.expected)}")
        if self.found is not None:
            lines.append(f"  found:    {_bounded(self.found)}")
        if self.hint:
            lines.append(f"  hint: {_bounded(self.hint)}")
        return "\n".join(lines)


_MAX_PART = 1000  # characters of one part of a message: a 10,000-character name or a 100 KB --set stays readable


def _bounded(text: str) -> str:
    """``text`` with the middle of an overlong part elided (its start and end say what it is)."""
    if len(text) <= _MAX_PART:
        return text
    return f"{text[:600]}...({len(text) - 900:,} characters)...{text[-300:]}"


class ParseError(ArchError):
    """The text is not valid .arch syntax."""
    phase = "syntax error"


class ImportError_(ArchError):
    """An ``import`` is refused: absolute, escaping the root, missing, not .arch, or cyclic."""
    phase = "import error"


class NameError_(ArchError):
    """An unknown block, op, parameter, argument or variable."""
    phase = "name error"


class EvalError(ArchError):
    """An expression cannot be evaluated because of its operands' types."""
    phase = "type error"


class ValueError_(EvalError):
    """Well-typed operands with a value the operation cannot take: a division by zero, an
    index out of range. An ``EvalError``, so whatever catches evaluation errors catches it."""
    phase = "value error"


class LimitError(ArchError):
    """A resource limit (nodes, parameters, nesting, repetition) would be exceeded."""
    phase = "limit exceeded"


class ValidationError(ArchError):
    """The graph breaks a structural rule: arity, missing input, wrong argument type."""
    phase = "invalid graph"


class ShapeError(ArchError):
    """Shapes do not fit: mismatched merge branches, a spatial size collapsing to zero."""
    phase = "shape error"


class UsageError(ArchError):
    """A bad command-line flag, ``--set`` value, config key or missing input file."""
    phase = "usage error"


class RenderError(ArchError):
    """Rendering failed, typically because Graphviz's ``dot`` is missing."""
    phase = "render error"


class DataError(ArchError):
    """Training data is missing, truncated or in the wrong format."""
    phase = "data error"


class CheckpointError(ArchError):
    """A checkpoint cannot be read or written safely."""
    phase = "checkpoint error"


class MeasureError(ArchError):
    """A measurement (``compare --measure``) failed in its child process."""
    phase = "measure error"


class DivergedError(ArchError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""
    phase = "training diverged"
    exit_code = 3
