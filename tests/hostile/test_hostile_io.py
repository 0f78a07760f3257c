"""Every hostile case of cases_io.py through the ``archc`` command line (see README.md for the format).

Default suite: the cases that take well under a second, in this process (runner.run_inprocess).
Slow target: the other cases (heavy ones, and variants through a second command) in this process, and
the first case of every class and command in a fresh ``python -m archc`` process each
(runner.run_process), with the table printed.
"""
from __future__ import annotations

import pytest

from cases_io import cases
from runner import run_inprocess, run_process, table

ALL = cases()
MAX_STDERR = 6_000  # a located message (and train's few header lines), never a flood


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


def _command(case) -> str:
    return " ".join(a for a in case.argv if a in ("train", "eval", "compile", "--resume", "--plot", "--out"))


@pytest.mark.slow
def test_each_class_and_command_handled_by_a_real_process(tmp_path):
    """One real ``python -m archc`` per (class, command): exit status 2, stderr, no hang, from outside."""
    first = {}
    for case in ALL:
        first.setdefault((case.klass, _command(case)), case)
    outcomes = [run_process(case, tmp_path / str(i)) for i, case in enumerate(first.values())]
    print(table(outcomes))
    bad = [o for o in outcomes if o.verdict != "handled" or len(o.stderr) >= MAX_STDERR]
    assert not bad, [(o.case.name, o.verdict, o.stderr[-1000:]) for o in bad[:5]]
