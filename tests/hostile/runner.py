"""Run hostile cases through the ``archc`` command line and classify what happened (see README.md).

A case is data (``Case``); running it gives an ``Outcome`` whose ``verdict`` is one of VERDICTS.
``run_process`` runs the ``archc`` script in a fresh interpreter (the real thing); ``run_inprocess``
calls ``archc.runtime.cli.main`` in this process (fast enough for the default test suite; a hang is
cut short by SIGALRM, an exception escaping ``main`` is what a user would see as a traceback).

As a program, every class of issue 14 (each ``cases_*.py`` in MODULES) with a table per class::

    .venv/bin/python tests/hostile/runner.py            # the fast subset (the default suite's cases)
    .venv/bin/python tests/hostile/runner.py --all      # every case (the slow target's too)
    .venv/bin/python tests/hostile/runner.py --all --process --only "hangs"   # real processes, some classes

Its last line is the totals; the exit status is 1 when any case is not ``handled``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

REPO = Path(__file__).resolve().parents[2]
VERDICTS = ("handled", "traceback", "hang", "code ran", "files lost", "unlocated")
# The first line of every ArchError: PLACE: PHASE: what (PLACE a path, file:line:col or a flag); or
# click's own refusal of a parameter (a missing file, a directory), which names the parameter.
LOCATED = re.compile(r"^((?!archc: )[^\n]+?: [a-z][a-z ]*(error|exceeded|diverged|graph): \S"
                     r"|Error: Invalid value for '(--?[a-z-]+|[A-Z_]+(\.\.\.)?)')", re.M)


@dataclass(frozen=True)
class Case:
    """One hostile input. ``{tmp}`` in ``argv``, ``env`` values and ``marker`` is the case's own folder."""

    name: str  # unique: "class/variant/..."
    klass: str  # the class of issue 14 it belongs to
    argv: tuple[str, ...]  # archc's arguments (without "archc")
    setup: Callable[[Path], None]  # creates the hostile files under tmp (FIFOs too)
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment variables
    marker: str = "{tmp}/PWNED"  # what the input tries to create: must not exist afterwards
    protect: tuple[str, ...] = ()  # paths outside tmp that must keep their file type (e.g. /dev/full)
    timeout: float = 300  # seconds before the run counts as a hang (10x what a loaded machine needs)
    slow: bool = False  # seconds of work each (multi-megabyte files): run by the slow target only
    cwd: str | None = None  # the working folder ("{tmp}" allowed); None: the repository
    # For input archc must accept (a label with markup, an ESC in a spec string): ``expect(code, stdout, stderr)``
    # says whether the run did the right thing; None: the input must be refused (exit 2, located message).
    expect: Callable[[int | None, str, str], bool] | None = None


@dataclass(frozen=True)
class Outcome:
    case: Case
    verdict: str
    code: int | None
    stderr: str
    seconds: float
    stdout: str = ""


def fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


def snapshot(roots: list[Path]) -> dict[str, tuple]:
    """(type, content hash) of every entry under ``roots`` (FIFOs and devices by type only, never opened)."""
    seen = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.is_dir() and not root.is_symlink() else [root]:
            try:
                st = path.lstat()
            except OSError:
                continue
            digest = None
            if stat.S_ISREG(st.st_mode) and st.st_size <= 64 << 20:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[str(path)] = (stat.S_IFMT(st.st_mode), digest)
    return seen


def classify(case: Case, tmp: Path, before: dict, code: int | None, stderr: str, hung: bool, stdout: str = "") -> str:
    # first: an ``expect`` may run what the command wrote (emitted Python), which must not make the marker either
    accepted = None if hung or case.expect is None else case.expect(code, stdout, stderr)
    if Path(fill(case.marker, tmp)).exists():
        return "code ran"
    if hung:
        return "hang"
    if "Traceback" in stderr:
        return "traceback"
    after = snapshot([tmp, *map(Path, case.protect)])
    if any(after.get(path) != kind for path, kind in before.items()):
        return "files lost"
    if accepted is not None:
        return "handled" if accepted else "unlocated"
    return "handled" if code == 2 and LOCATED.search(stderr) else "unlocated"


def _prepare(case: Case, tmp: Path) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    case.setup(tmp)
    return snapshot([tmp, *map(Path, case.protect)])


# What a user runs: the installed ``archc`` script (its sys.path holds no working folder, so a case may stand in
# a folder of shadowing packages); ``python -P -m archc`` where there is none.
_SCRIPT = Path(sys.executable).parent / "archc"
ARCHC = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-P", "-m", "archc"]


MAX_ARG_BYTES = 128 * 1024  # Linux's MAX_ARG_STRLEN: exec refuses a longer argument (E2BIG) before archc starts


def reaches_a_process(case: Case) -> bool:
    """Whether the OS can pass ``case.argv`` to a new process at all; the rest run in process only
    (a 1 MB ``--set`` is something only a caller of ``main`` can hand archc)."""
    return all(len(a.encode("utf-8", "surrogateescape")) < MAX_ARG_BYTES for a in case.argv)


def run_process(case: Case, tmp: Path) -> Outcome:
    """``archc ARGV`` in a fresh interpreter, in its own process group (killed whole on a hang)."""
    before = _prepare(case, tmp)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **{k: fill(v, tmp) for k, v in case.env.items()}}
    start = time.monotonic()
    proc = subprocess.Popen([*ARCHC, *(fill(a, tmp) for a in case.argv)], cwd=fill(case.cwd or str(REPO), tmp),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=case.timeout)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        hung = True
    verdict = classify(case, tmp, before, proc.returncode, err, hung, out)
    return Outcome(case, verdict, proc.returncode, err, time.monotonic() - start, out)


class _Hang(BaseException):
    """Raised by SIGALRM: a BaseException, so no ``except Exception`` in the code under test swallows it."""


def run_inprocess(case: Case, tmp: Path) -> Outcome:
    """``archc.runtime.cli.main(ARGV)`` here; an exception escaping it counts as a traceback."""
    from archc.runtime.cli import main

    before = _prepare(case, tmp)
    env = {k: fill(v, tmp) for k, v in case.env.items()}
    saved = {k: os.environ.get(k) for k in env}
    err, out, code, hung = io.StringIO(), io.StringIO(), None, False
    cwd = os.getcwd()

    def alarm(signum, frame):
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, case.timeout)
    start = time.monotonic()
    try:
        os.environ.update(env)
        os.chdir(fill(case.cwd or cwd, tmp))
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main([fill(a, tmp) for a in case.argv])
    except _Hang:
        hung = True
    except Exception as e:  # noqa: BLE001 - exactly what the user would see as a traceback
        err.write(f"Traceback (in-process): {type(e).__name__}: {e}\n")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    verdict = classify(case, tmp, before, code, err.getvalue(), hung, out.getvalue())
    return Outcome(case, verdict, code, err.getvalue(), time.monotonic() - start, out.getvalue())


def table(outcomes: list[Outcome]) -> str:
    """Cases per class and how many ended in each verdict."""
    classes: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = classes.setdefault(o.case.klass, dict.fromkeys(VERDICTS, 0))
        row[o.verdict] += 1
    width = max([len("class"), *map(len, classes)])
    lines = [f"{'class':<{width}}  {'cases':>5}  " + "  ".join(f"{v:>10}" for v in VERDICTS)]
    total = {v: sum(row[v] for row in classes.values()) for v in VERDICTS}
    for klass, row in [*classes.items(), ("total", total)]:
        lines.append(f"{klass:<{width}}  {sum(row.values()):>5}  " + "  ".join(f"{row[v]:>10}" for v in VERDICTS))
    return "\n".join(lines)


MODULES = ("cases_code", "cases_loss", "cases_resources", "cases_io", "cases_tracebacks", "cases_unclear", "cases_hangs")


def all_cases() -> list[Case]:
    """Every class's cases, in MODULES' order."""
    import importlib
    return [case for name in MODULES for case in importlib.import_module(name).cases()]


def main(argv: list[str]) -> int:
    import argparse
    import shutil
    import tempfile
    parser = argparse.ArgumentParser(description="Run issue 14's hostile cases and print a table per class.")
    parser.add_argument("--all", action="store_true", help="every case, not only the fast subset (slow=False)")
    parser.add_argument("--process", action="store_true", help="each case in a fresh `archc` process")
    parser.add_argument("--only", metavar="TEXT", action="append", default=[],
                        help="only the cases whose name contains TEXT (repeatable: any of them)")
    args = parser.parse_args(argv)
    run = run_process if args.process else run_inprocess
    chosen = [c for c in all_cases() if (args.all or not c.slow) and any(t in c.name for t in args.only or [""])]
    if args.process:
        kept = [c for c in chosen if reaches_a_process(c)]
        if len(kept) < len(chosen):
            print(f"{len(chosen) - len(kept)} cases left out: an argument longer than exec passes "
                  f"({MAX_ARG_BYTES:,} bytes); they run in process", file=sys.stderr)
        chosen = kept
    base = Path(tempfile.mkdtemp(prefix="archc-hostile-"))
    outcomes = []
    try:
        for i, case in enumerate(chosen):
            outcomes.append(run(case, base / str(i)))
            if outcomes[-1].verdict != "handled":
                print(f"{outcomes[-1].verdict}: {case.name!a}\n{outcomes[-1].stderr[-1500:]}", file=sys.stderr)
    except KeyboardInterrupt:  # the table of the cases run so far, marked as cut short
        print(f"interrupted after {len(outcomes)} of {len(chosen)} cases", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(table(outcomes))
    return int(len(outcomes) < len(chosen) or any(o.verdict != "handled" for o in outcomes))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
