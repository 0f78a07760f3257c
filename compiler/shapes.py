"""Shape inference: the C×H×W (or F) of every node, batch left symbolic.

``infer_node`` is used by the elaborator as nodes appear (``in.c`` needs it) and by the
``infer-shapes`` pass, which re-derives every shape in topological order from the op rules
alone and so checks the graph independently of how it was built. Errors name the op, the
shapes involved and, for merges, the branches and a concrete fix (``merge_hints.py``).
"""
from __future__ import annotations

from archc.compiler.ir import Graph
from archc.compiler.ops import ShapeFault, fmt
from archc.dsl.errors import ShapeError


def infer_node(g: Graph, node_id: str) -> tuple:
    node = g.node(node_id)
    ins = [g.shapes[i] for i in g.inputs(node_id)]
    try:
        shape = node.spec.infer(node.args, ins)
    except ShapeFault as f:
        raise _located(g, node_id, f, ins) from None
    g.shapes[node_id] = shape
    return shape


def node_params(g: Graph, node_id: str) -> int:
    node = g.node(node_id)
    return node.spec.params(node.args, [g.shapes[i] for i in g.inputs(node_id)])


def _located(g: Graph, node_id: str, f: ShapeFault, ins: list) -> ShapeError:
    node = g.node(node_id)
    hint, found = f.hint, f.found
    if node.spec.merge and len(ins) > 1:
        found, hint = node.spec.hint(g, node_id)
    return ShapeError(f"{f.what} (at `{node_id}`)", node.span, expected=f.expected, found=found, hint=hint)



class InferShapes:
    """Pass `infer-shapes`: every node's shape from its inputs; needs a validated graph."""

    name = "infer-shapes"

    def run(self, g: Graph) -> Graph:
        recorded = dict(g.shapes)
        g.shapes.clear()
        for n in g.topo():
            shape = infer_node(g, n)
            if n in recorded and recorded[n] != shape:
                raise AssertionError(f"internal: shape of {n} changed {fmt(recorded[n])} -> {fmt(shape)}")
        return g
