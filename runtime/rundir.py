"""The run folder: which folders a new run may use, what it keeps about how it was made, and whether
an earlier run in it has finished.

A new run takes a folder that does not exist or is empty. Anything else is refused unless the user
says what to do with it: ``--resume`` continues the archc run in it, ``--force`` deletes that run's
files (and only those) and starts over. So re-running a command never wipes a finished run's best.pt.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archc import __version__
from archc.dsl.errors import CheckpointError, UsageError
from archc.dsl.files import FileRefused, read_regular
from archc.dsl.text import printable
from archc.runtime.atomic import atomic_write
from archc.runtime.report import write_json
from archc.runtime.values import describe

FILES = ("config.json", "run.json", "last.pt", "best.pt", "metrics.jsonl", "curves.png", "summary.json")
SPEC = "spec"  # folder of the copied .arch files
EVENTS = "events.out.tfevents.*"  # TensorBoard's event files
SUMMARY_BYTES = 1 << 20


@dataclass(frozen=True)
class SpecFacts:
    """What the run folder keeps about the net, from the checked graph (picklable, for spawned ranks)."""

    arch: str  # the arch's name
    path: str  # the .arch file as given
    macs: int  # per image
    graph_hash: str
    files: tuple[tuple[str, bytes], ...]  # (path under RUN/spec/, content): the file and what it imports


def spec_facts(comp, path: str) -> SpecFacts:
    """The facts of a compiled spec: the texts it was compiled from (not the files re-read, which may have
    changed since); imported files keep their place relative to the main file's folder."""
    from archc.compiler.graphhash import graph_hash

    root = Path(os.path.realpath(path)).parent
    files = []
    for name, text in comp.program.sources.items():
        real = Path(os.path.realpath(name))
        rel = real.relative_to(root) if real.is_relative_to(root) else Path(real.name)
        files.append((rel.as_posix(), text.encode()))
    g = comp.graph
    return SpecFacts(g.name, str(path), g.totals().macs, graph_hash(g), tuple(files))


def check_new(out: Path, force: bool) -> None:
    """Refuse ``out`` for a new run unless it is absent or empty, or ``--force`` is given for a folder."""
    where = f"--out {printable(out)}"
    try:
        if out.exists() and not out.is_dir():
            raise UsageError("the run folder is not a folder", where=where, found="an existing file or device",
                             hint="choose another --out, or leave it out for a new runs/<arch>-<time> folder")
        entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    except OSError as e:  # a name too long, a loop of links, a folder that cannot be listed
        raise UsageError("cannot read the run folder", where=where, found=e.strerror or str(e),
                         hint="choose another --out") from None
    if entries and not force:
        raise UsageError("the run folder is not empty", where=where, found=_describe(out, entries),
                         hint="--resume continues the run in it, --force deletes its run files and starts over, "
                              "or choose another --out (leave it out for a new runs/<arch>-<time> folder)")
    if entries and not is_run(out):  # --force deletes config.json, spec/, ...: only ever a run's own
        raise UsageError("--force starts over only in an archc run folder, and this is not one", where=where,
                         found=_describe(out, entries), expected="a folder where archc train wrote run.json or config.json",
                         hint="choose another --out (leave it out for a new runs/<arch>-<time> folder)")


def claim(out: Path, force: bool) -> None:
    """Make ``out`` ready for a new run: create it, or accept it empty, or (``--force``) clear its run files."""
    check_new(out, force)
    where = f"--out {printable(out)}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (out / name).exists():
                (out / name).unlink()
        for events in out.glob(EVENTS):
            events.unlink()
        if (out / SPEC).is_dir():
            shutil.rmtree(out / SPEC)
    except OSError as e:  # e.g. a read-only folder holding an earlier run
        raise UsageError("cannot prepare the run folder", where=where,
                         found=f"{printable(e.filename or out)}: {e.strerror or e}",
                         hint="make it writable, or choose another --out") from None


def _describe(out: Path, entries: list[str]) -> str:
    shown = ", ".join(printable(e, 40) for e in entries[:6]) + (f", ... ({len(entries)} entries)" if len(entries) > 6 else "")
    if not is_run(out):
        return shown
    summary = finished(out)
    state = f"a finished archc run (best.pt: epoch {summary.get('best_epoch')})" if summary else "an unfinished archc run"
    return f"{state}: {shown}"


def keep(out: Path, facts: SpecFacts | None, about: dict[str, Any]) -> None:
    """RUN/spec/ (the .arch files as trained) and RUN/run.json (archc version, graph hash, device)."""
    if facts is not None:
        for rel, content in facts.files:
            target = out / SPEC / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda f, c=content: f.write(c))
    spec = {"arch": facts.arch, "spec": facts.path, "copy": f"{SPEC}/{facts.files[0][0]}",
            "graph_hash": facts.graph_hash} if facts else {"arch": None}
    run = {"archc": __version__, **spec, **about, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(out / "run.json", run)


def is_run(out: Path) -> bool:
    """Whether ``out`` holds an archc run: run.json or config.json as archc train writes them (config.json
    comes first: a run stopped before run.json has only it)."""
    if "archc" in started_from(out):
        return True
    with contextlib.suppress(*_UNREADABLE):
        config = _load(out / "config.json")
        return isinstance(config, dict) and {"arch", "epochs", "out"} <= config.keys()
    return False


_UNREADABLE = (OSError, ValueError, RecursionError, FileRefused)  # what _load raises for a damaged file
# The keys --resume relies on, and their types: a run.json or summary.json without them (an older archc) is fine
RESUME_KEYS = {"run.json": {"graph_hash": str}, "summary.json": {"epochs": int}}


def _load(path: Path) -> Any:
    return json.loads(read_regular(path, SUMMARY_BYTES))


def read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or {} when it is missing, damaged or not an object."""
    with contextlib.suppress(*_UNREADABLE):
        value = _load(path)
        return value if isinstance(value, dict) else {}
    return {}


def started_from(out: Path) -> dict[str, Any]:
    """RUN/run.json, or {} for a run folder without one (or a damaged one: see check_run_files)."""
    return read_object(out / "run.json")


def finished(out: Path, epochs: int | None = None) -> dict[str, Any] | None:
    """The summary of a run that finished (all ``epochs`` of them, when given), else None."""
    with contextlib.suppress(*_UNREADABLE):
        summary = _load(out / "summary.json")
        if isinstance(summary, dict) and (epochs is None or summary.get("epochs") == epochs):
            return summary
    return None


def check_run_files(out: Path) -> None:
    """Before a resume trains anything: run.json and summary.json, where present, are what archc train wrote.
    Read leniently, a damaged one would let a changed spec resume (no graph hash to compare) or a finished run
    train again, only to fail writing summary.json at the end."""
    for name, keys in RESUME_KEYS.items():
        path = out / name
        if not os.path.lexists(path):
            continue
        try:
            value = _load(path)
        except FileRefused as e:
            found = f"it {e.what}"
        except _UNREADABLE as e:
            found = f"not JSON ({printable(e, 120)})"
        else:
            wrong = [k for k, kind in keys.items() if isinstance(value, dict) and k in value and type(value[k]) is not kind]
            if isinstance(value, dict) and not wrong:
                continue
            found = f"{name}'s {wrong[0]} is {printable(repr(value[wrong[0]]), 60)}" if wrong else describe(value)
        raise CheckpointError(f"the run's {name} is damaged", where=str(path),
                              expected=f"the JSON object archc train writes ({', '.join(f'{k}: {t.__name__}' for k, t in keys.items())})",
                              found=found, hint=f"restore {name} or delete it, then resume again")
