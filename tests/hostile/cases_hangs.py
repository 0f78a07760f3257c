"""Issue 14, class 6: nothing waits forever or works without bound. (FIFOs as data batches, checkpoints,
cached weights and config.json are cases_io's; --config and run.json/summary.json FIFOs cases_tracebacks'.)

* ``hangs: special files as specs``: the spec, a file it imports, and a spec on $ARCHC_PATH as a FIFO, a
  folder, /dev/zero, /dev/urandom, a socket, through every command that reads a spec: refused at once, never
  opened for a blocking read.
* ``hangs: grids``: sweeps of 10**6 variants and more (many values, many --set flags, a 1 MB --set value)
  refused before one is compiled (--max-variants).
* ``hangs: huge literals``: 5,000- and 100,000-digit integers and 10**6-element literals in a spec and in
  --set, through every command: refused at the literal (a bound, no 4300-digit ValueError).
A refusal here takes well under a second, plus start-up: 60 s is a hang, except for the commands that
compile every bundled spec or build a net first (kit.HEAVY: `list` takes 6 s on a quiet machine), which
keep the runner's default so that 10x load is no hang.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from kit import ENV, SPEC, chain, commands, heavy, inert, spec, tiny
from runner import Case

TIMEOUT = 60


def _timeout(cmd: str) -> float:
    return Case.timeout if heavy(cmd) else TIMEOUT

KINDS = ("fifo", "folder", "/dev/zero", "/dev/urandom", "socket")


def _make(kind: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        path.symlink_to(kind)


def special_spec_cases() -> list[Case]:
    klass, cases = "hangs: special files as specs", []
    with_import = 'import "parts.arch"\n' + tiny()
    for i, kind in enumerate(KINDS):
        places = {"the spec": (spec(tiny()), "lib/s.arch"), "an imported file": (spec(with_import), "lib/parts.arch")}
        for where, (base, rel) in places.items():
            setup = chain(base, lambda tmp, k=kind, r=rel: _make(k, tmp / r))
            for j, (cmd, argv) in enumerate(commands().items()):
                if cmd == "list" and where == "the spec":
                    argv = ("list",)  # the special file sits on $ARCHC_PATH: list must skip or name it
                cases.append(Case(f"{klass}/{kind} as {where}/{cmd}", klass, argv, setup, ENV, timeout=_timeout(cmd),
                                  expect=_listed if cmd == "list" else None,
                                  slow=(i + j + (where == "an imported file")) % 6 != 0 or cmd == "list"))
    return cases


def _listed(code, out: str, err: str) -> bool:
    """`archc list` with a special file on $ARCHC_PATH: the bundled specs listed, the file named, exit 2."""
    return code == 2 and "resnet18" in out and inert(0, out, err)


def grid_cases() -> list[Case]:
    klass = "hangs: grids"
    grids = {"10**6 variants of one --set": ("--set", "width=" + ",".join(map(str, range(1, 10**6 + 1)))),
             "1000 x 1000 variants": ("--set", "width=" + ",".join(map(str, range(1, 1001))),
                                      "--set", "classes=" + ",".join(map(str, range(1, 1001)))),
             "2**40 variants of 40 --set flags": tuple(a for i in range(40) for a in ("--set", f"width={i},{i + 1}")),
             "a 1 MB --set of nested brackets": ("--set", "width=" + "[" * 500_000 + "]" * 500_000),
             "10**6 empty values": ("--set", "width=" + "," * 10**6)}
    return [Case(f"{klass}/{what}/sweep", klass, ("sweep", SPEC, *flags), spec(tiny()), ENV, timeout=_timeout("sweep"))
            for what, flags in grids.items()]


LITERALS = {"a 5,000-digit integer": "9" * 5_000, "a 100,000-digit integer": "9" * 100_000,
            "a 5,000-digit float": "9" * 5_000 + ".5", "an exponent of 10**6": "1e1000000",
            "a 10**6-element list": "[" + "1," * 10**6 + "1]", "a 5,000-digit negative": "-" + "9" * 5_000}


def literal_cases() -> list[Case]:
    klass, cases = "hangs: huge literals", []
    for i, (what, literal) in enumerate(LITERALS.items()):
        text = tiny().replace("conv(width, 3", f"conv({literal}, 3")
        for j, (cmd, argv) in enumerate(commands(emits=False).items()):
            cases.append(Case(f"{klass}/{what} in the spec/{cmd}", klass, argv, spec(text), ENV, timeout=_timeout(cmd),
                              expect=inert if cmd == "sweep" else None,  # sweep lists a variant's error in its table
                              slow=(i + j) % 4 != 0 or cmd == "list" or len(literal) > 10**5))
        for cmd in ("check", "sweep", "train"):
            cases.append(Case(f"{klass}/{what} in --set/{cmd}", klass, (*commands()[cmd], "--set", f"width={literal}"),
                              spec(tiny()), ENV, timeout=_timeout(cmd), slow=cmd != "check" or len(literal) > 10**5))
    return cases


def cases() -> list[Case]:
    return [*special_spec_cases(), *grid_cases(), *literal_cases()]
