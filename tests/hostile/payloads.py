"""Hostile file contents for the IO classes of issue 14, built from first principles (pickle opcodes, zip
records, torch.save), each parametrised so a test can generate many of its class.

Nothing here is run: every builder returns bytes (or writes a file) that *would* create ``marker``,
allocate gigabytes, or never end if a reader trusted it.
"""
from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import torch

RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy._core.multiarray._reconstruct (numpy.core on numpy 1)
FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # numpy._core.numeric._frombuffer


class Call:
    """Pickles as ``func(*args)``: what a hostile file runs when a loader trusts ``__reduce__``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def calls(marker: str) -> dict[str, Call]:
    """Calls that create ``marker``, through every kind of global an allowlist could let slip: the
    os and builtins, subprocess, and functions of numpy and torch (modules a loader needs to trust)."""
    return {
        "os.system": Call(os.system, f"touch '{marker}'"),
        "subprocess.call": Call(subprocess.call, ["touch", marker]),
        "builtins.exec": Call(exec, f"open({marker!r}, 'w').close()"),
        "builtins.eval": Call(eval, f"open({marker!r}, 'w')"),
        "builtins.open": Call(open, marker, "w"),
        "pathlib.Path.touch": Call(Path.touch, Path(marker)),
        "numpy.savetxt": Call(np.savetxt, marker, [0]),
        "torch.save": Call(torch.save, 0, marker),
    }


def opcode_calls(marker: str) -> dict[str, bytes]:
    """``os.system('touch MARKER')`` spelt with the opcodes that call without REDUCE (protocol 0 INST, OBJ)."""
    cmd = f"touch '{marker}'".encode()
    return {"INST": b"(S'" + cmd + b"'\nios\nsystem\n.",
            "OBJ": b"(cos\nsystem\nS'" + cmd + b"'\no."}


def images(n: int = 2) -> np.ndarray:
    return (np.arange(n * 3072) % 251).astype(np.uint8).reshape(n, 3072)


def batch_bytes(data, labels, protocol: int = 4, **extra) -> bytes:
    return pickle.dumps({"batch_label": "hostile", "labels": labels, "data": data, **extra}, protocol=protocol)


class DeclaredArray:
    """An ndarray pickle that declares ``shape`` but carries ``raw`` (numpy's own reduce, with a lying state)."""

    def __init__(self, shape: tuple, raw: bytes = b"", how: str = "state"):
        self.shape, self.raw, self.how = shape, raw, how

    def __reduce__(self):
        if self.how == "placeholder":  # the placeholder itself declares the shape: numpy allocates it
            return RECONSTRUCT, (np.ndarray, self.shape, b"B")
        if self.how == "frombuffer":  # protocol 5's form: buffer, dtype, shape
            return FROMBUFFER, (self.raw, np.dtype("u1"), self.shape, "C")
        return RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, self.shape, np.dtype("u1"), False, self.raw)


# Opcodes whose argument is a byte count, with the width of that count: a reader that believes it
# allocates before reading. FRAME declares the length of the frame that follows.
COUNTED = {"BINBYTES8": (b"\x8e", "<Q"), "BINUNICODE8": (b"\x8d", "<Q"), "BYTEARRAY8": (b"\x96", "<Q"),
           "BINUNICODE": (b"X", "<I"), "BINBYTES": (b"B", "<I"), "BINSTRING": (b"T", "<i"),
           "LONG4": (b"\x8b", "<i"), "FRAME": (b"\x95", "<Q")}


def giant_length(opcode: str, length: int, inside_batch: bool = False) -> bytes:
    """A pickle whose ``opcode`` declares ``length`` bytes and holds 3."""
    code, fmt = COUNTED[opcode]
    length = min(length, 2 ** (8 * struct.calcsize(fmt) - (1 if fmt.islower() else 0)) - 1)
    head = b"\x80\x05" + (b"}\x94(\x8c\x04data\x94" if inside_batch else b"")
    return head + code + struct.pack(fmt, length) + b"abc."


def memo_slot(slot: int, opcode: str = "LONG_BINPUT") -> bytes:
    """A 10-byte pickle that stores None in memo ``slot``: CPython's unpickler zero-fills its memo up to it."""
    put = b"r" + struct.pack("<I", slot) if opcode == "LONG_BINPUT" else b"p" + str(slot).encode() + b"\n"
    return b"\x80\x02N" + put + b"."


def many_opcodes(n: int) -> bytes:
    """``n`` NONE/POP pairs: small, and slow to walk opcode by opcode."""
    return b"\x80\x02" + b"N0" * n + b"N."


def nested_list(depth: int) -> bytes:
    """A list nested ``depth`` deep, spelt as pickle writes it (EMPTY_LIST ... APPEND): the stack grows with it."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def self_containing() -> dict[str, object]:
    """Batches whose labels or whose dict contain themselves (pickle's memo makes cycles cheap)."""
    labels: list = [0]
    labels.append(labels)
    batch: dict = {"data": images(2)}
    batch["labels"] = batch
    deep: list = [0]
    for _ in range(400):
        deep = [deep]
    return {"labels contain themselves": {"data": images(2), "labels": labels},
            "the batch contains itself": batch,
            "labels nested 400 deep": {"data": images(1), "labels": deep}}


def zip_bomb(path: Path, declared: int, entry: str = "data/0", real: bool = False) -> None:
    """A torch.save archive of one small tensor whose ``entry`` declares ``declared`` bytes unpacked.

    ``real``: the entry really inflates to that size (deflated zeros, ~1/1000 of it on disk); otherwise its
    sizes are patched into the zip headers (what torch allocates from), which costs nothing to build."""
    buf = io.BytesIO()
    torch.save({"format": "archc-checkpoint", "version": 1, "w": torch.zeros(4)}, buf)
    src = zipfile.ZipFile(buf)
    prefix = src.namelist()[0].split("/")[0]
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename != f"{prefix}/{entry}":
                out.writestr(info, data)
            elif real:
                deflated = zipfile.ZipInfo(info.filename)
                deflated.compress_type = zipfile.ZIP_DEFLATED
                with out.open(deflated, "w", force_zip64=True) as f:
                    chunk = bytes(1 << 20)
                    for _ in range(declared >> 20):
                        f.write(chunk)
            else:
                out.writestr(zipfile.ZipInfo(info.filename), data, compress_type=zipfile.ZIP_DEFLATED)
    if not real:
        _patch_size(path, f"{prefix}/{entry}".encode(), declared)


def _patch_size(path: Path, name: bytes, size: int) -> None:
    """Write ``size`` as the unpacked size of ``name`` in its local header and its central directory record."""
    blob = bytearray(path.read_bytes())
    for sig, field in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        name_at = {26: 30, 28: 46}  # where the name starts, by where its length is stored
        start = 0
        while (start := blob.find(sig, start)) >= 0:
            length_at = 26 if sig == b"PK\x03\x04" else 28
            n = struct.unpack_from("<H", blob, start + length_at)[0]
            if blob[start + name_at[length_at]:start + name_at[length_at] + n] == name:
                struct.pack_into("<I", blob, start + field, min(size, 0xFFFFFFFE))
            start += 4
    path.write_bytes(bytes(blob))


def make_fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
