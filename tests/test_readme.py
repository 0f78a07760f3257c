"""The README's language example is real: it compiles to archs/densenet121.arch's exact graph."""
from __future__ import annotations

import re
from pathlib import Path

from archc.compiler import check

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_is_densenet121():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The language"):]
    example = re.search(r"```\n(.*?)```", section, re.S).group(1)
    for efficient in (False, True):
        ours, ref = check(example, efficient=efficient), check(ROOT / "archs/densenet121.arch", efficient=efficient)
        assert ours.topo() == ref.topo() and ours.shapes == ref.shapes
        assert [ours.node(n).checkpoint > 0 for n in ours.topo()] == [ref.node(n).checkpoint > 0 for n in ref.topo()]
    assert ours.totals().params == 7_978_856
