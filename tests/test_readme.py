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


def test_readme_op_table_is_the_registry():
    """The README's op table is `archc ops --markdown`: an op added or changed shows up in both."""
    from archc.compiler.ops.registry import ops_markdown
    assert ops_markdown() in (ROOT / "README.md").read_text()


def test_readme_python_examples_run():
    """The README's register_op example registers, builds and computes PixelShuffle's shapes."""
    import torch
    from archc.compiler.ops import OPS
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Your own ops"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    try:
        exec(compile(code, "README.md", "exec"), namespace)
        assert namespace["model"](torch.randn(1, 16, 8, 8)).shape == (1, 4, 16, 16)
    finally:
        OPS.pop("pixel_shuffle", None)


def test_readme_blocks_are_the_archs_blocks():
    """The language section's block examples are the zoo's own (doc strings left out)."""
    readme = (ROOT / "README.md").read_text()
    for name, lib in [("squeeze_excitation", "torchvision_ops"), ("cn_block", "convnext")]:
        snippet = re.search(rf"```\n(block {name}.*?)```", readme, re.S).group(1)
        source = re.sub(r'\) "[^"]*" =', ") =", (ROOT / "archs/lib" / f"{lib}.arch").read_text())
        assert snippet in source, name
