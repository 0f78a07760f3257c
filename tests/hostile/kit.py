"""What the class generators (cases_*.py) share: a spec that carries hostile text where a user's text goes,
the argv of every command that reads a spec, and the checks for input archc must accept.

The spec keeps tiny.arch's parameter tensors (``conv``, ``linear``) and puts the text in a parameter
default and on parameter-free nodes, so ``good_checkpoint()`` of tiny.arch still loads for ``eval``.
Also the setup steps (``chain``, ``base``, ``file_at``, ``special``) and the argv every class reuses.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import io
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import payloads as pl
from runner import LOCATED, REPO, Case

SPEC = "{tmp}/lib/s.arch"  # on ARCHC_PATH ({tmp}/lib), so `archc list` meets it too
ENV = {"ARCHC_PATH": "{tmp}/lib"}
CPU = ("--device", "cpu")
SAMPLE = REPO / "runtime" / "sample" / "cifar-10-batches-py"
TINY = """\
arch tiny(width = 4, classes = 10)
input [3, 32, 32]

conv(width, 3, pad = 1); relu; gap; flatten
linear(classes)
"""
DATA = "{tmp}/data"
EVAL = ("eval", "{tmp}/tiny.arch", "--checkpoint", "{tmp}/good.pt", "--data", DATA, *CPU)
RESUME = ("train", "{tmp}/tiny.arch", "--out", "{tmp}/run", "--resume")



def chain(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for step in steps:
            step(tmp)
    return setup


def base(tmp: Path) -> None:
    """tiny.arch, a data folder (the sample's first and test batches) and a checkpoint of tiny.arch."""
    (tmp / "tiny.arch").write_text(TINY)
    folder = tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("data_batch_1", "test_batch"):
        shutil.copy(SAMPLE / name, folder / name)
    shutil.copy(good_checkpoint(), tmp / "good.pt")


@functools.cache
def good_checkpoint() -> Path:
    """A checkpoint of tiny.arch as archc train writes it, made once (with a real one-epoch run)."""
    from archc.runtime.cli import main

    root = Path(tempfile.mkdtemp(prefix="archc-hostile-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "tiny.arch").write_text(TINY)
    folder = root / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "test_batch"):
        shutil.copy(SAMPLE / name, folder / name)
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", str(root / "tiny.arch"), "--data", str(root / "data"), "--out", str(root / "run"),
                     "--epochs", "1", "--batch-size", "100", "--device", "cpu", "--quiet"])
    assert code == 0, "the reference run for the hostile cases failed"
    return root / "run" / "last.pt"


Maker = Callable[[Path, str], None]  # writes a hostile file at a path; the str is the marker it aims at


def file_at(rel: str, content: bytes | Maker) -> Callable[[Path], None]:
    """A setup step: ``content`` (bytes, or a Maker) at ``tmp/rel``, replacing what is there."""
    def make(tmp: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() or path.is_symlink():
            path.unlink()
        content(path, str(tmp / "PWNED")) if callable(content) else path.write_bytes(content)
    return make


def special(kind: str) -> Maker:
    """A FIFO, a folder, or a link to a device, where a file belongs."""
    def make(path: Path, marker: str) -> None:
        if kind == "fifo":
            pl.make_fifo(path)
        elif kind == "folder":
            path.mkdir()
        else:
            path.symlink_to(kind)
    return make


def rotated(variant: int, command: int, commands: int) -> bool:
    """Whether a (variant, command) pair is left to the slow target: the default suite takes each variant
    through one command, turn by turn, so every command still meets every class."""
    return variant % commands != command


def tiny(tag: str = "x", label: str = "{tag}", extra: str = "") -> str:
    """tiny.arch with ``tag`` as a string default, ``label`` on its relu, and ``extra`` lines before the head."""
    return (f'arch tiny(width = 4, classes = 10, tag = "{tag}")\ninput [3, 32, 32]\n\n'
            f'conv(width, 3, pad = 1); "{label}": relu; gap; flatten\n{extra}linear(classes)\n')


def spec(text: str | Callable[[str], str], rel: str = "lib/s.arch") -> Callable[[Path], None]:
    """A setup step: ``text`` (or ``text(marker)``) written to ``tmp/rel``, after ``base``."""
    def make(tmp: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text(str(tmp / "PWNED")) if callable(text) else text, encoding="utf-8", newline="")
    return chain(base, make)


def train(spec_path: str = SPEC, *extra: str) -> tuple[str, ...]:
    return ("train", spec_path, "--data", DATA, "--out", "{tmp}/run", "--epochs", "1", "--batch-size", "50",
            "--val-split", "0", *CPU, "--quiet", *extra)


def commands(path: str = SPEC, *, emits: bool = True) -> dict[str, tuple[str, ...]]:
    """command -> argv: every command that reads a spec, each output form that prints its text."""
    out = {"check": ("check", path), "summary": ("summary", path), "summary --json": ("summary", path, "--json"),
           "compile --emit ir": ("compile", path, "--emit", "ir"), "compile --emit json": ("compile", path, "--emit", "json"),
           "compile --emit dot": ("compile", path, "--emit", "dot"), "compile --emit ast": ("compile", path, "--emit", "ast"),
           "compile --emit python": ("compile", path, "--emit", "python"),
           "compile --render": ("compile", path, "--render", "-o", "{tmp}/g.svg"),
           "compile": ("compile", path), "diff": ("diff", path, "{tmp}/tiny.arch"), "diff --json": ("diff", path, path, "--json"),
           "compare": ("compare", path), "compare --format md": ("compare", path, "--format", "md"),
           "sweep": ("sweep", path), "train": train(path),
           "eval": ("eval", path, "--checkpoint", "{tmp}/good.pt", "--data", DATA, *CPU), "list": ("list",)}
    return out if emits else {k: v for k, v in out.items() if "--emit" not in k}


# What a terminal must never receive from user text: C0/C1 controls but tab and newline, bidi and zero-width
# format characters, line and paragraph separators.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def refused(code, out: str, err: str) -> bool:
    return code == 2 and bool(LOCATED.search(err)) and not UNSAFE.search(out + err)


def inert(code, out: str, err: str) -> bool:
    """Accepted (exit 0) or refused (a located message), and nothing unsafe printed."""
    return (code == 0 or refused(code, out, err)) and not UNSAFE.search(out + err)


# Commands that take seconds (training, a child process, compiling every bundled spec, drawing with matplotlib):
# the default suite runs them for one variant of a class, the slow target for all
HEAVY = ("train", "compare --measure", "compare --runs", "list", "compare --plot", "eval --plot")


def heavy(cmd: str) -> bool:
    return cmd.startswith(HEAVY)


def cases_for(klass: str, variant: str, setup, expect=inert, skip=(), slow=lambda cmd: False, env=None,
              path: str = SPEC, emits: bool = True) -> list[Case]:
    """One case of ``variant`` per command (but those in ``skip``)."""
    return [Case(f"{klass}/{variant}/{cmd}", klass, argv, setup, {**ENV, **(env or {})}, expect=expect, slow=slow(cmd))
            for cmd, argv in commands(path, emits=emits).items() if cmd not in skip]
