"""One-line descriptions of untrusted values (from a checkpoint, a data batch) for error messages.

A file can hold a 3,000,000-element list where a tensor belongs; printing it would flood the terminal
(25.9 MB of stderr). ``describe`` says what a value is and how big, in at most a line, and never walks it.
"""
from __future__ import annotations

from typing import Any

from archc.dsl.text import printable

PREVIEW = 40  # characters of a string or number shown


def describe(value: Any) -> str:
    """``a list of 3,000,000 items``, ``a Tensor 8×3×3×3 float32``, ``the int 12``, ``a str 'abc' (3 characters)``."""
    name = printable(type(value).__name__, PREVIEW)
    kind = f"{'n' if name[:1].lower() in 'aeiou' else ''} {name}"  # "a list", "an int"
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, int):  # str() of a 5,000-digit int raises; its size says enough
        return f"the int {value}" if value.bit_length() <= 64 else f"an int of {value.bit_length():,} bits"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, (str, bytes, bytearray)):
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"a{kind} {printable(repr(value[:PREVIEW]), PREVIEW + 3)} ({len(value):,} {unit})"
    shape = getattr(value, "shape", None)
    if shape == () and type(value).__module__ == "numpy":  # a numpy number (a label pickled as np.int64)
        return f"the {name} {printable(value, PREVIEW)}"
    if isinstance(shape, tuple):  # a tensor or an array: its shape and dtype, never its values
        dims = "×".join(map(str, shape)) or "scalar"
        dtype = str(getattr(value, "dtype", "")).removeprefix("torch.")
        return f"a{kind} {printable(dims, PREVIEW)} {printable(dtype, PREVIEW)}"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return f"a{kind} of {len(value):,} {'keys' if isinstance(value, dict) else 'items'}"
    return f"a{kind}"
