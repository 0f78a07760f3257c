"""`archc summary` does linear work: counted in Python function calls, not seconds.

A 100k-node graph took 312 s with --depth 99 when the table went through rich (~8 ms a row).
The table is now laid out in one pass; here the calls per graph node must stay the same when
the graph grows fourfold (a quadratic step would quadruple them) and stay below a small bound.
"""
from __future__ import annotations

import sys

import pytest

from archc.compiler.passes import compile_file
from archc.compiler.summary import as_json
from archc.runtime.views import _summary_lines

# measured: the table ~125 calls a node at --depth 99 (a row per node), ~45 at --depth 2; the JSON
# ~256 (its graph hash runs networkx's Weisfeiler-Lehman rounds)
MAX_CALLS_PER_NODE = {"table": 250, "json": 500}


def _chain(units: int):
    text = (f"arch chain\ninput [3, 8, 8]\nconv(8, 3, pad = 1)\n{{ conv(8, 3, pad = 1); bn; relu }} * {units}\n"
            "gap; flatten; linear(10)\n")
    return compile_file(text=text).graph


def _calls(fn) -> int:
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        count += event in ("call", "c_call")
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


@pytest.fixture(scope="module")
def graphs():
    return _chain(200), _chain(800)  # 606 and 2,406 nodes


@pytest.mark.parametrize("depth", [2, 99])
@pytest.mark.parametrize("what", ["table", "json"])
def test_summary_work_per_node_does_not_grow(graphs, depth, what):
    job = {"table": _summary_lines, "json": as_json}[what]
    small, large = ((_calls(lambda: job(g, depth)) / len(g)) for g in graphs)
    assert large < 1.1 * small, (small, large)
    assert large < MAX_CALLS_PER_NODE[what], large
