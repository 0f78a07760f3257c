"""Issue 14, class 3: no input exhausts memory or time. (Batches declaring huge sizes and zip-bomb checkpoints
are cases_io's ``data: declared sizes`` and ``... zip bomb`` rows.)

* ``resources: too big to build``: nets whose weights or activations do not fit (``conv(65536, 3)``, a
  3072 x 30,000,000 linear, two 16,384-channel convs) through every command that allocates them: compile,
  train, eval and compare --measure. Each must be refused before allocating, with the two figures (what it
  needs, what there is) and the flag --max-memory; the commands that allocate nothing must still succeed.
* ``resources: 100k-node graphs``: 100,000 nodes through every command; each either finishes within its
  timeout (minutes of headroom over the seconds it takes; test_summary_scale.py counts the work) or is
  refused naming its limit (--max-render-nodes, --max-memory). Slow target only.
"""
from __future__ import annotations

import re

from kit import CPU, ENV, SPEC, commands, inert, refused, spec
from runner import Case

# The checkpoint's parameters (width, classes), so that eval gets as far as building the net. Beside each, the
# commands that must refuse it on any machine below a terabyte without --max-memory (the others: with it).
BIG = {"conv(65536, 3)": ("conv(65536, 3, pad = 1); gap; flatten; linear(classes)",
                          {"train", "eval", "compare --measure"}),  # 10 MB of weights (compile builds it), 268 MB
                                                                     # of output an image
       "a 3072 x 30,000,000 linear": ("flatten; linear(30000000); relu; linear(classes)",
                                      {"compile", "train", "eval", "compare --measure"}),  # 368 GB of weights
       "two 16,384-channel convs": ("conv(16384, 3, pad = 1); conv(16384, 3, pad = 1); gap; flatten; linear(classes)",
                                    set())}  # 9.7 GB of weights: fits some machines
ALLOCATING = ("compile", "train", "eval", "compare --measure")
FIGURES = re.compile(r"\d[\d.,]*\s?[KMGT]?i?B.*\d[\d.,]*\s?[KMGT]?i?B", re.S)  # what it needs, what there is
BATCH = ("--batch-size", "2048")  # train and measure: 550 GB of conv(65536, 3)'s activations


def _big(body: str) -> str:
    return f"arch tiny(width = 4, classes = 10)\ninput [3, 32, 32]\n{body}\n"


def _refused_naming_memory(code, out: str, err: str) -> bool:
    return refused(code, out, err) and "--max-memory" in err and bool(FIGURES.search(err))


def too_big_cases() -> list[Case]:
    klass, cases = "resources: too big to build", []
    argvs = {**commands(), "train": ("train", SPEC, "--data", "{tmp}/data", "--out", "{tmp}/run", "--epochs", "1",
                                     *BATCH, *CPU, "--quiet"),
             "compare --measure": ("compare", SPEC, "--measure", "--steps", "1", "--rounds", "1", *BATCH, *CPU)}
    for what, (body, refused_anyway) in BIG.items():
        for cmd, argv in argvs.items():
            if cmd in ("list", "diff", "diff --json", "compile --render"):
                continue  # the same front end as check; list compiles every bundled spec
            allocates = cmd in ALLOCATING and not (cmd == "compile" and what.startswith("conv"))  # its weights: 10 MB
            flag = ("--max-memory", "1GB") if allocates and cmd not in refused_anyway else ()
            expect = _refused_naming_memory if allocates else inert  # flag: the figure whatever the machine has
            cases.append(Case(f"{klass}/{what}/{' '.join((cmd, *flag))}", klass, (*argv, *flag), spec(_big(body)), ENV,
                              expect=expect, slow=cmd not in ALLOCATING))
    return cases


HUGE = _big("conv(4, 3, pad = 1)\n{ conv(4, 3, pad = 1); relu } * 50000\ngap; flatten; linear(classes)")  # 100,005 nodes


def _bounded_or_named(code, out: str, err: str) -> bool:
    """Finished (exit 0), or refused by a limit that names its flag."""
    return code == 0 and inert(code, out, err) or refused(code, out, err) and bool(re.search(r"--max-[a-z-]+", err))


def huge_graph_cases() -> list[Case]:
    klass = "resources: 100k-node graphs"
    argvs = {**commands(), "compile --max-memory 1GB": ("compile", SPEC, "--max-memory", "1GB"),
             "compile --render --depth 99": ("compile", SPEC, "--render", "--depth", "99", "-o", "{tmp}/g.svg"),
             # bounds every machine has: training's estimate is 82 GB of activations at batch 50; building the
             # module (compile, eval) takes 2.5 GB and minutes, so they meet the bound, not the build
             "train": (*commands()["train"], "--max-memory", "8GB"), "eval": (*commands()["eval"], "--max-memory", "1GB")}
    return [Case(f"{klass}/{cmd}", klass, argv, spec(HUGE), ENV, expect=_bounded_or_named, timeout=900, slow=True)
            for cmd, argv in argvs.items() if cmd not in ("compile", "list")]  # compile: see above; list: as check


def cases() -> list[Case]:
    return [*too_big_cases(), *huge_graph_cases()]
