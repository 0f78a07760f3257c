"""One hash per architecture: equal for the same network whatever its file, labels or ``--set``
spelling; different when an op, an argument, a shape or the wiring differs.

A node's label is its op, its typed arguments and its output shape; node ids (scope names)
never enter. Plain Weisfeiler-Lehman sees only a few hops, so two nets that differ far apart
but look alike locally could collide. Each node's label therefore starts as a Merkle digest of
everything upstream of it (computed once in topological order, so linear), and networkx's WL
hash then adds what flows downstream and how outputs are shared. Ports are part of an edge for
every merge except the commutative ones: ``concat(a, b)`` is not ``concat(b, a)``; ``add`` and ``mul`` are.

Left out on purpose: the arch name, the weight init scheme and ``@checkpoint`` regions, which
change how a network is trained or stored, not what it computes.
"""
from __future__ import annotations

import hashlib
import warnings

from archc.compiler.ir import Graph

DIGEST = 16  # bytes: 128-bit hashes, collisions are not a practical concern


def graph_hash(g: Graph, up: dict[str, str] | None = None) -> str:
    """32 hex digits identifying the architecture of ``g`` (needs shapes: a compiled graph); ``up``:
    its ``upstream_digests`` when the caller has them already."""
    import networkx  # deferred: ~170 ms, and `archc check` never needs it
    up = up or upstream_digests(g)
    h = networkx.DiGraph()
    for n in g.topo():
        h.add_node(n, label=up[n])
    for n in g.topo():
        for src, ports in _edges(g, n).items():
            h.add_edge(src, n, ports=ports)
    with warnings.catch_warnings():  # networkx >= 3.5 warns that directed hashes changed in 3.5
        warnings.simplefilter("ignore", UserWarning)
        return networkx.weisfeiler_lehman_graph_hash(h, node_attr="label", edge_attr="ports",
                                                     iterations=2, digest_size=DIGEST)


def node_label(g: Graph, n: str) -> str:
    node = g.node(n)
    # the Args dataclass repr keeps value types apart: 1, 1.0, True and "1" differ
    return f"{node.op}|{node.args!r}|{g.shapes[n]}"


def upstream_digests(g: Graph) -> dict:
    """node -> digest of its label and its inputs' digests (by port, or sorted when commutative)."""
    out = {}
    for n in g.topo():
        ins = [out[i] for i in g.inputs(n)]
        if g.node(n).spec.commutative:
            ins.sort()
        text = node_label(g, n) + "<" + ",".join(ins)
        out[n] = hashlib.blake2b(text.encode(), digest_size=DIGEST).hexdigest()
    return out


def _edges(g: Graph, n: str) -> dict:
    """source -> edge attribute: its ports into ``n`` (a count when ``n`` is commutative).

    One attribute per source because a DiGraph holds one edge per pair: ``concat(x, x)``."""
    ports: dict = {}
    for port, src in enumerate(g.inputs(n)):
        ports.setdefault(src, []).append(port)
    if g.node(n).spec.commutative:
        return {src: f"x{len(p)}" for src, p in ports.items()}
    return {src: ",".join(map(str, p)) for src, p in ports.items()}
