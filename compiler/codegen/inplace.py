"""Which values the built module may overwrite: in-place activations and residual sums.

On a CPU a fresh output buffer is not free: its pages are faulted in and zeroed on first
write, which costs as much as the add itself. torchvision's ResNet therefore writes
``out += identity`` and ``ReLU(inplace=True)``; archc does the same wherever it is safe.
"""
from __future__ import annotations

from archc.compiler.ir import Graph

# Ops whose output is a tensor of their own that their backward does not read: conv, linear
# and bn save their input, pools their input or nothing, add and scale what they were given.
# (Not concat: identical piece lists share one `cat`; not dropout/drop_path: identity in eval.)
FRESH = frozenset({"conv", "bn", "linear", "add", "scale", "maxpool", "avgpool", "adaptive_avgpool", "gap"})


def overwritable(g: Graph, src: str, reader: str) -> bool:
    """Whether ``reader`` may write over the value of ``src``.

    Safe when that value is a fresh tensor nothing else reads (no other consumer could see the
    overwritten values, and its producer's backward does not need it), made in the reader's
    checkpoint region (a region's inputs are kept for the recompute and must stay as they were).
    """
    node = g.node(src)
    return node.op in FRESH and g.consumers(src) == [reader] and node.checkpoint == g.node(reader).checkpoint
