"""Every hostile case of issue 14 (runner.all_cases(): each cases_*.py) through the ``archc`` command line.

Default suite: the fast subset (``slow=False``), each case in this process (runner.run_inprocess).
Slow target: the other cases in this process, and one case of every class and command in a fresh ``archc``
process each (runner.run_process: what a user runs, working folder and child processes included), with the
table printed. ``python tests/hostile/runner.py [--all] [--process]`` runs the same cases as a program.
"""
from __future__ import annotations

import pytest

from runner import all_cases, reaches_a_process, run_inprocess, run_process, table

ALL = all_cases()
MAX_STDERR = 6_000  # a located message (and train's few header lines), never a flood
# The words of an argv that say which command and which path through it a case takes
COMMAND_WORDS = {"check", "summary", "compile", "train", "eval", "compare", "sweep", "list", "diff", "--emit", "--render",
                 "--resume", "--plot", "--out", "--measure", "--runs", "--nproc", "--json", "--set", "--config"}


def _check(outcome) -> None:
    assert outcome.verdict == "handled", (outcome.verdict, outcome.code, outcome.stderr[-3000:])
    assert len(outcome.stderr) < MAX_STDERR, outcome.stderr[:3000]


@pytest.mark.parametrize("case", [c for c in ALL if not c.slow], ids=lambda c: c.name)
def test_handled_in_process(case, tmp_path):
    _check(run_inprocess(case, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in ALL if c.slow], ids=lambda c: c.name)
def test_the_other_cases_handled_in_process(case, tmp_path):
    _check(run_inprocess(case, tmp_path))


def _command(case) -> tuple[str, ...]:
    return tuple(a for i, a in enumerate(case.argv) if a in COMMAND_WORDS or i and case.argv[i - 1] == "--emit")


@pytest.mark.slow
def test_each_class_and_command_handled_by_a_real_process(tmp_path):
    """One real ``archc`` process per (class, command): exit status, stderr, no hang, seen from outside."""
    first = {}
    for case in filter(reaches_a_process, ALL):
        first.setdefault((case.klass, _command(case)), case)
    outcomes = [run_process(case, tmp_path / str(i)) for i, case in enumerate(first.values())]
    print(table(outcomes))
    bad = [o for o in outcomes if o.verdict != "handled" or len(o.stderr) >= MAX_STDERR]
    assert not bad, [(o.case.name, o.verdict, o.stderr[-1000:]) for o in bad[:5]]
