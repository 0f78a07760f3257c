"""CIFAR-10's batch files are pickles; this reads one without trusting it.

Nothing in the file may run code, claim more memory than the file itself holds, or nest deeper than a
batch does. Three checks, each a ``Refused`` with the reason, all before the claimed memory is taken:

1. ``scan`` walks every opcode once before unpickling (pickletools reads each counted string, so a
   BINBYTES8 or BINUNICODE8 claiming 2**62 bytes is refused for the 3 bytes that follow it). It bounds
   the opcode count by the file's size, the nesting by ``MAX_STACK`` and ``MAX_MARKS``, a FRAME by what follows it,
   and memo slots by the opcodes seen so far: CPython's unpickler zero-fills its memo up to the
   highest slot, so a 9-byte pickle putting slot 2**27 takes 2 GB.
2. ``find_class`` hands out only checked stand-ins for numpy's array and dtype reconstructors.
3. An array's declared shape times its item size must equal the raw bytes the pickle holds for it, so a
   163-byte file cannot declare a million (blank) images; dtypes are plain numbers only.

What loads is plain data: dicts, lists, strings, numbers and numpy arrays; the caller checks its layout.
"""
from __future__ import annotations

import io
import math
import pickle
import pickletools
from typing import Any

import numpy as np

# Values on the unpickler's stack, and MARKs open, at once. Pickle pushes at most 1,000 items before each
# APPENDS or SETITEMS, so a batch's stack stays near 1,000; a list nested 100,000 deep needs 100,000.
MAX_STACK = 2_000
MAX_MARKS = 64
OPS_PER_IMAGE = 16  # opcodes per 3,072 bytes of file; the official batches use about 4 per image
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_NUMERIC = "biuf"  # bool, signed, unsigned, float: what images and labels are


class Refused(Exception):
    """Why the pickle was not read, as a phrase for a message's ``found:``."""


def load(raw: bytes) -> Any:
    """The object pickled in ``raw``, after :func:`scan`; Refused (or the unpickler's error) otherwise."""
    scan(raw)
    return _Unpickler(io.BytesIO(raw), encoding="latin1").load()


def scan(raw: bytes) -> None:
    """Refuse, before anything is built, a pickle whose opcodes claim more than ``raw`` holds (see above)."""
    budget = 1_000 + OPS_PER_IMAGE * (len(raw) // 3072)
    depth, marks, pos = 0, [], 0
    try:
        for ops, (op, arg, pos) in enumerate(pickletools.genops(raw), 1):
            if ops > budget:
                raise Refused(f"more than {budget:,} pickle opcodes in {len(raw):,} bytes")
            if op.name in _MEMO_PUT and arg >= ops:
                raise Refused(f"memo slot {arg:,} at byte {pos:,}, after {ops - 1:,} opcodes")
            if op.name == "FRAME" and arg > len(raw) - pos:
                raise Refused(f"a frame of {arg:,} bytes at byte {pos:,}, but only {len(raw) - pos:,} follow")
            depth = _stack_after(op, depth, marks)
            if depth > MAX_STACK or len(marks) > MAX_MARKS:
                raise Refused(f"values nested deeper than a batch at byte {pos:,} (more than {MAX_STACK:,} "
                              f"values or {MAX_MARKS} groups open at once)")
    except ValueError as e:  # from genops: a count larger than what follows, an unknown opcode, no STOP
        raise Refused(f"{e} (after byte {pos:,})") from None


def _stack_after(op: pickletools.OpcodeInfo, depth: int, marks: list[int]) -> int:
    """The stack depth after ``op``; ``marks`` holds the depth at each open MARK."""
    before, after = op.stack_before, op.stack_after
    if pickletools.markobject in before:  # takes everything above the topmost mark, and the values under it
        depth = (marks.pop() if marks else depth) - before.index(pickletools.markobject)
    else:
        depth -= len(before)
    if pickletools.markobject in after:
        marks.append(max(depth, 0))
        return max(depth, 0)
    return max(depth, 0) + len(after)


class _Dtype:
    """A plain numeric dtype under construction: numpy's own dtype never sees the pickled state."""

    def __init__(self, spec: Any, align: bool = False, copy: bool = False):
        try:
            self.dtype = np.dtype(spec if isinstance(spec, str) and len(spec) <= 8 else "V")
        except (TypeError, ValueError):
            self.dtype = np.dtype("V")
        if self.dtype.kind not in _NUMERIC:
            raise Refused(f"an array of dtype {str(spec)[:20]!r}, not plain numbers")

    def __setstate__(self, state: Any) -> None:
        # numpy pickles a plain dtype as (3, byteorder, None, None, None, -1, -1, flags)
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None)):
            raise Refused("a dtype with fields or sub-arrays, not plain numbers")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


def _nbytes(shape: Any, dtype: Any) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (a checked :class:`_Dtype`), in exact integers."""
    if not isinstance(dtype, _Dtype):
        raise Refused(f"an array whose dtype is {type(dtype).__name__}")
    if not (isinstance(shape, tuple) and len(shape) <= 32 and all(type(n) is int and n >= 0 for n in shape)):
        raise Refused("an array with a malformed shape")
    return math.prod(shape) * dtype.dtype.itemsize


class _Array(np.ndarray):
    """numpy's empty placeholder, whose pickled state is checked before numpy reads it."""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise Refused("an array with a malformed state")
        version, shape, dtype, fortran, raw = state if len(state) == 5 else (1, *state)
        nbytes = _nbytes(shape, dtype)
        if not isinstance(raw, (bytes, str)) or len(raw) != nbytes:
            held = f"{len(raw):,} bytes" if isinstance(raw, (bytes, str)) else type(raw).__name__
            raise Refused(f"an array declared as {'×'.join(map(str, shape))} {dtype.dtype} ({nbytes:,} bytes) "
                          f"holding {held} of data")
        super().__setstate__((version, shape, dtype.dtype, bool(fortran), raw))


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _Array:
    """numpy pickles every array as an empty placeholder plus its state; only that placeholder is built."""
    if subtype is not np.ndarray or shape != (0,):
        raise Refused(f"an array placeholder of shape {str(shape)[:40]} (numpy writes (0,))")
    return np.ndarray.__new__(_Array, (0,), np.uint8)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Pickle protocol 5's form of an array: its bytes, dtype and shape, which must agree."""
    nbytes = _nbytes(shape, dtype)
    if not isinstance(buffer, (bytes, bytearray)) or len(buffer) != nbytes or order not in ("C", "F"):
        raise Refused(f"an array declared as {nbytes:,} bytes with a buffer that does not match")
    return np.frombuffer(bytes(buffer), dtype.dtype).reshape(shape, order=order)


def _scalar(dtype: Any, raw: Any = None) -> np.generic:
    """One numpy number (a label pickled as np.int64): its dtype and exactly its bytes."""
    if not isinstance(raw, (bytes, str)) or len(raw) != _nbytes((), dtype):
        raise Refused("a numpy number whose bytes do not match its dtype")
    return np.frombuffer(raw.encode("latin1") if isinstance(raw, str) else raw, dtype.dtype)[0]


def _latin1(text: Any, encoding: Any = "utf-8") -> bytes:
    """How Python 3 pickles bytes for protocols 0-2: ``_codecs.encode(text, 'latin1')``; nothing else."""
    if not isinstance(text, str) or encoding != "latin1":
        raise Refused("a call of _codecs.encode other than the one that pickles bytes")
    return text.encode("latin1")


_ALLOWED = {("_codecs", "encode"): _latin1,
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy.core.numeric", "_frombuffer"): _frombuffer,
            ("numpy._core.numeric", "_frombuffer"): _frombuffer,
            ("numpy.core.multiarray", "scalar"): _scalar, ("numpy._core.multiarray", "scalar"): _scalar,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _Dtype}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise Refused(f"a reference to {module[:60]}.{name[:60]}, which may run code (refusing to load it)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("a persistent reference, which a CIFAR-10 batch never holds")
