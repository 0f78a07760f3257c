"""Memory ``archc compile`` needs to build a module, checked before anything is allocated.

Training has its own estimate (runtime/preflight.py: parameter copies and activations per
image). Building runs no forward, so it holds no activations; what grows with the graph instead
is the Python side: each IR node becomes an nn.Module, fx nodes and lines of generated code.
``eval`` and training's validation also run a forward pass of many images at once (``images``).
"""
from __future__ import annotations

import math

from archc.compiler.ir import Graph
from archc.dsl.errors import LimitError

# Measured by building chains of conv-bn-relu units in a fresh process (tests/test_memory.py):
# ~12 MB once plus ~17 KiB a node beyond the parameters, from 3k to 100k nodes (100,005 nodes:
# 2.47 GB peak with torch's own ~0.7 GB; module objects ~6 KiB a node, fx graph and code ~10).
BASE_BYTES = 32 << 20
NODE_BYTES = 20 << 10


def build_bytes(g: Graph) -> int:
    """Bytes building ``g`` takes: fp32 parameters plus the objects the build creates."""
    return 4 * g.totals().params + BASE_BYTES + NODE_BYTES * len(g)


def forward_bytes(g: Graph, images: int) -> int:
    """Bytes of a forward pass of ``images`` images without gradients (eval, validation): an op's input and
    output are alive together, so twice the largest fp32 output."""
    largest = max((math.prod(shape) for shape in g.shapes.values()), default=0)
    return images * 2 * 4 * largest


def check_build_fits(g: Graph, max_memory: int | None, images: int = 0, free: int | None = None) -> None:
    """Refuse to build ``g`` (and run it forward on ``images`` images at once) when that needs more than
    ``max_memory`` (None: ``free``, by default the host's memory available now)."""
    from archc.compiler.summary import human
    from archc.runtime.preflight import host_memory_available
    forward = forward_bytes(g, images)
    cap = max_memory if max_memory is not None else free if free is not None else host_memory_available()
    need = build_bytes(g) + forward
    if cap is None or need <= cap:
        return
    source = f"--max-memory {human(cap, 'B')}" if max_memory is not None else f"the {human(cap, 'B')} of memory available now"
    job = f"building {g.name} ({len(g):,} nodes)" + (f" and running it on {images:,} images at once" if images else "")
    raise LimitError(f"{job} needs about {human(need, 'B')}, more than {source}",
                     where="--max-memory", expected=f"at most {human(cap, 'B')}",
                     found=f"{human(4 * g.totals().params, 'B')} of fp32 parameters + about {human(NODE_BYTES, 'B')} "
                           f"a node of modules and generated code"
                           + (f" + {human(forward, 'B')} for the forward pass (twice its largest output)" if images else ""),
                     hint="make the network smaller, or raise --max-memory if the estimate is too cautious")
