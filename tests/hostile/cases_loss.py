"""Issue 14, class 2: no command destroys a file it was not asked to write.

* ``loss: --out``: ``train --out`` naming a folder that holds something (user files, a finished or an
  unfinished run, the spec's own folder, the data), with and without ``--force``; ``--force`` clears only
  an archc run's own files, so a folder that is not a run is refused even then.
* ``loss: finished run``: re-running a finished run (plain, ``--resume``, ``--resume`` with fewer epochs):
  never a new run over its best.pt.
* ``loss: output names an input``: ``-o`` / ``--plot`` naming the spec, a file it imports, the checkpoint,
  a data batch or a run's own file, directly, through ``..``, a symlink or a hard link; ``compile -o``
  without ``--emit`` or ``--render``.

Every case's setup files must be unchanged afterwards (the runner's ``files lost`` check).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from kit import CPU, DATA, ENV, EVAL, SPEC, chain, good_checkpoint, spec, tiny, train
from runner import Case

LIB = 'block unit(c) = { conv(c, 3, pad = 1); relu }\n'
WITH_IMPORT = 'import "parts.arch"\narch tiny(width = 4, classes = 10)\ninput [3, 32, 32]\n\nunit(width); gap; flatten\nlinear(classes)\n'


def _files(**content: str):
    """A setup step writing ``{rel: text}`` under tmp (``/`` in a name makes folders)."""
    def make(tmp: Path) -> None:
        for rel, text in content.items():
            path = tmp / rel.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return make


def _finished(tmp: Path) -> None:
    """{tmp}/done: the finished one-epoch run of tiny.arch that cases_io's checkpoint came from."""
    shutil.copytree(good_checkpoint().parent, tmp / "done")


def _unfinished(tmp: Path) -> None:
    _finished(tmp)
    (tmp / "done" / "summary.json").unlink()


def out_cases() -> list[Case]:
    klass = "loss: --out"
    folders = {"user files": ("{tmp}/mine", _files(mine__notes="notes", mine__results__a="1")),
               "a folder with its own config.json and spec/": ("{tmp}/mine", _files(mine__config__json='{"mine": 1}',
                                                                                   mine__spec__important__arch=tiny())),
               "a finished run": ("{tmp}/done", _finished), "an unfinished run": ("{tmp}/done", _unfinished),
               "the spec's folder": ("{tmp}/lib", lambda tmp: None), "the data folder": (DATA, lambda tmp: None),
               "the folder holding everything": ("{tmp}", lambda tmp: None),
               "a link to a folder of user files": ("{tmp}/link", chain(_files(mine__notes="notes"),
                                                                        lambda tmp: (tmp / "link").symlink_to(tmp / "mine")))}
    cases = []
    for what, (out, make) in folders.items():
        for force in ((), ("--force",)):
            if force and what in ("a finished run", "an unfinished run"):
                continue  # --force on a run is the documented way to start it over
            argv = tuple(out if a == "{tmp}/run" else a for a in train(SPEC, *force))
            cases.append(Case(f"{klass}/{what}{' --force' if force else ''}", klass, argv,
                              chain(spec(tiny()), make), ENV, slow=not force and what.startswith("a link")))
    return cases


def _unchanged_and_said(code, out: str, err: str) -> bool:
    """A finished run resumed: it says so and exits 0 (or refuses, located); the files are checked by the runner."""
    return code in (0, 2) and "finished" in (out + err)


def finished_cases() -> list[Case]:
    klass = "loss: finished run"
    again = tuple("{tmp}/done" if a == "{tmp}/run" else a for a in train(SPEC))
    resume = ("train", SPEC, "--out", "{tmp}/done", "--resume")
    setup = chain(spec(tiny()), _finished)
    return [Case(f"{klass}/the same command again", klass, again, setup, ENV),
            Case(f"{klass}/--resume", klass, resume, setup, ENV, expect=_unchanged_and_said),
            Case(f"{klass}/--resume --epochs 1 (as many as it has)", klass, (*resume, "--epochs", "1"), setup, ENV,
                 expect=_unchanged_and_said),
            Case(f"{klass}/--resume with another spec", klass, ("train", "{tmp}/tiny.arch", "--out", "{tmp}/done",
                                                                "--resume", "--set", "width=8"), setup, ENV)]


def _links(tmp: Path) -> None:
    (tmp / "lib" / "parts.arch").write_text(LIB)
    (tmp / "lib" / "s.arch").write_text(WITH_IMPORT)
    (tmp / "sym.arch").symlink_to(tmp / "lib" / "s.arch")
    os.link(tmp / "lib" / "s.arch", tmp / "hard.arch")
    (tmp / "ck.link.png").symlink_to(tmp / "good.pt")
    shutil.copy(tmp / "good.pt", tmp / "ck.png")
    (tmp / "spec.png").symlink_to(tmp / "lib" / "s.arch")
    shutil.copy(tmp / "lib" / "s.arch", tmp / "s.png")
    (tmp / "batch.png").symlink_to(tmp / "data" / "cifar-10-batches-py" / "test_batch")
    (tmp / "notes.txt").write_text("notes")


def output_cases() -> list[Case]:
    klass = "loss: output names an input"
    setup = chain(spec(tiny()), _links)
    names = {"the spec": SPEC, "the spec through ..": "{tmp}/lib/../lib/s.arch", "an imported file": "{tmp}/lib/parts.arch",
             "a symlink to the spec": "{tmp}/sym.arch", "a hard link to the spec": "{tmp}/hard.arch"}
    cases = []
    for i, (what, path) in enumerate(names.items()):
        for j, emit in enumerate(("ir", "json", "dot", "python", "ast")):
            cases.append(Case(f"{klass}/--emit {emit} -o {what}", klass, ("compile", SPEC, "--emit", emit, "-o", path),
                              setup, ENV, slow=(i + j) % 3 != 0))
        cases.append(Case(f"{klass}/-o {what} without --emit", klass, ("compile", SPEC, "-o", path), setup, ENV))
    cases.append(Case(f"{klass}/--render -o the spec named .svg", klass,
                      ("compile", "{tmp}/s.svg", "--render", "-o", "{tmp}/s.svg"), spec(tiny(), "s.svg"), ENV))
    plots = {"the checkpoint, named .png": ("{tmp}/ck.png", "{tmp}/ck.png"),
             "a .png link to the checkpoint": ("{tmp}/good.pt", "{tmp}/ck.link.png"),
             "a .png link to the spec": ("{tmp}/good.pt", "{tmp}/spec.png"),
             "a .png link to the test batch": ("{tmp}/good.pt", "{tmp}/batch.png"),
             "a .txt file": ("{tmp}/good.pt", "{tmp}/notes.txt")}
    for what, (checkpoint, plot) in plots.items():
        argv = ("eval", SPEC, "--checkpoint", checkpoint, "--data", DATA, *CPU, "--plot", plot)
        cases.append(Case(f"{klass}/eval --plot {what}", klass, argv, setup, ENV))
    for what, (file, plot) in {"a .png link to the spec": (SPEC, "{tmp}/spec.png"),
                               "the spec, named .png": ("{tmp}/s.png", "{tmp}/s.png")}.items():
        cases.append(Case(f"{klass}/compare --plot {what}", klass, ("compare", file, "--plot", plot), setup, ENV))
    for name in ("summary.json", "config.json", "last.pt", "curves.png"):
        cases.append(Case(f"{klass}/compare --runs --plot the run's {name}", klass,
                          ("compare", "--runs", "{tmp}/done", "--plot", "{tmp}/done/" + name), chain(setup, _finished), ENV))
    cases.append(Case(f"{klass}/eval --plot the checkpoint (tiny.arch)", klass, (*EVAL, "--plot", "{tmp}/ck.link.png"),
                      setup))
    return cases


def cases() -> list[Case]:
    return [*out_cases(), *finished_cases(), *output_cases()]
