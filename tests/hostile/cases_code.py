"""Issue 14, class 1: no input runs code. (The weights cache and pickles in data and checkpoints are
cases_io's; test_emit_safety.py fuzzes the emitted Python itself.)

* ``code: spec text``: text that would be code if it were pasted into Python (quote breaks, ``__import__``,
  line separators, ``{...}`` formats) in a string parameter, a label and a ``--set`` value, through every
  command; for ``--emit python`` the emitted module is also imported and built in a fresh interpreter.
* ``code: working folder``: archc run from a folder whose packages shadow the top-level names archc, its
  children and their first imports use (``archc``, ``runtime``, ``compiler``, ``dsl``, ``torch``,
  ``numpy``, ``click``, ``multiprocessing``, ...), each writing the marker when imported; every command,
  and the two that start processes: ``compare --measure`` and ``train --nproc 2``.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from kit import CPU, ENV, SPEC, commands, inert, rotated, spec, tiny, train
from runner import Case

CALL = "__import__('os').system('touch {m}')"
# Breaks out of a string in Python (quotes, backslash, line separators) or formats it; no `"` or newline, which
# a .arch string cannot hold (those are cases_unclear's refusals).
ATTACKS = ["' + CALL + '", "''' ; CALL ; '''", "\\'); CALL #", "\\\\'); CALL #", "\u2028CALL", "\x85CALL", "\x00CALL",
           "{CALL}", "%(CALL)s", "' if CALL else '", "\\u0027); CALL #", "\\x27); CALL #"]


def _run_emitted(code, out: str, err: str) -> bool:
    """The emitted module, imported and built in a fresh isolated interpreter (what a user does with it)."""
    if code != 0:
        return inert(code, out, err)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "emitted.py"
        path.write_text(out)
        run = subprocess.run([sys.executable, "-I", "-c", "import runpy, sys; runpy.run_path(sys.argv[1])['build']()",
                              str(path)], capture_output=True, text=True, timeout=600)
    return run.returncode == 0


def _text(attack: str):
    return lambda marker: attack.replace("CALL", CALL.format(m=marker))


def spec_text_cases() -> list[Case]:
    klass, cases = "code: spec text", []
    variants = [(attack, where, make) for attack in ATTACKS
                for where, make in (("default", lambda m, a=attack: tiny(tag=_text(a)(m))),
                                    ("label", lambda m, a=attack: tiny(label=_text(a)(m))))]
    for i, (attack, where, make) in enumerate(variants):
        for j, (cmd, argv) in enumerate(commands().items()):
            expect = _run_emitted if cmd == "compile --emit python" else inert
            cases.append(Case(f"{klass}/{attack!r} as {where}/{cmd}", klass, argv, spec(make), ENV, expect=expect,
                              slow=rotated(i, j, len(commands())) or cmd == "list"))
    for i, attack in enumerate(ATTACKS):  # the same text on the command line, as a string and as an expression
        for form in ('"{}"', "{}"):
            for j, cmd in enumerate(("check", "compile --emit python", "sweep", "train")):
                argv = (*commands()[cmd], "--set", "tag=" + form.format(attack.replace("CALL", CALL.format(m="{tmp}/PWNED"))))
                cases.append(Case(f"{klass}/--set tag={form} {attack!r}/{cmd}", klass, argv, spec(tiny()), ENV,
                                  expect=_run_emitted if "python" in cmd else inert, slow=rotated(i, j, 4)))
    return cases


SHADOWED = ("archc", "runtime", "compiler", "dsl", "torch", "numpy", "click", "rich", "pydantic", "matplotlib",
            "multiprocessing", "pickle", "socket", "runpy", "json", "subprocess", "signal")


def _shadow(tmp: Path) -> None:
    """{tmp}/cwd: a package of each SHADOWED name that writes the marker when imported."""
    line = f"open({str(tmp / 'PWNED')!r}, 'w').close()\n"
    for name in SHADOWED:
        package = tmp / "cwd" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(line)


def working_folder_cases() -> list[Case]:
    klass = "code: working folder"
    setup = spec(tiny())

    def both(tmp):
        setup(tmp)
        _shadow(tmp)
    spawning = {"compare --measure": ("compare", SPEC, "--measure", "--steps", "1", "--rounds", "1", "--batch-size", "8",
                                      *CPU),
                "train --nproc 2": train(SPEC, "--nproc", "2")}
    cases = [Case(f"{klass}/{cmd}", klass, argv, both, ENV, cwd="{tmp}/cwd", expect=inert,
                  slow=cmd != "check")
             for cmd, argv in {**commands(), **spawning}.items()]
    return cases


def cases() -> list[Case]:
    return [*spec_text_cases(), *working_folder_cases()]
