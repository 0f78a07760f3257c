"""Which values the built module may overwrite: in-place activations and residual sums.

On a CPU a fresh output buffer is not free: its pages are faulted in and zeroed on first
write, which costs as much as the add itself. torchvision's ResNet therefore writes
``out += identity`` and ``ReLU(inplace=True)``; archc does the same wherever it is safe.
Which ops make such a value is each op's ``fresh`` flag (compiler/ops).
"""
from __future__ import annotations

from archc.compiler.ir import Graph


def overwritable(g: Graph, src: str, reader: str) -> bool:
    """Whether ``reader`` may write over the value of ``src``.

    Safe when that value is a fresh tensor nothing else reads (no other consumer could see the
    overwritten values, and its producer's backward does not need it), made in the reader's
    checkpoint region (a region's inputs are kept for the recompute and must stay as they were).
    """
    node = g.node(src)
    return node.spec.fresh and g.consumers(src) == [reader] and node.checkpoint == g.node(reader).checkpoint
