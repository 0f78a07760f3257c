"""Shape inference: the C×H×W (or F) of every node, batch left symbolic.

``infer_node`` is used by the elaborator as nodes appear (``in.c`` needs it) and by the
``infer-shapes`` pass, which re-derives every shape in topological order from the op rules
alone and so checks the graph independently of how it was built. Errors name the op, the
shapes involved and, for merges, the branches and a concrete fix.
"""
from __future__ import annotations

from compiler.ir import Graph
from compiler.ops import ShapeFault, fmt
from dsl.errors import ShapeError


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
    if node.op in ("add", "concat") and len(ins) > 1:
        srcs = g.inputs(node_id)
        found = "; ".join(f"branch {i} (ending at `{s}`) {fmt(sh)}" for i, (s, sh) in enumerate(zip(srcs, ins)))
        hint = _add_fix(ins) if node.op == "add" else _concat_fix(srcs, ins)
    return ShapeError(f"{f.what} (at `{node_id}`)", node.span, expected=f.expected, found=found, hint=hint)


def _add_fix(ins: list) -> str | None:
    """Propose the projection that makes the smaller-resolution / wider branch match."""
    target = max(ins, key=lambda s: (s[0], -s[-1]) if len(s) == 3 else (s[0], 0))
    for s in ins:
        if s == target or len(s) != 3 or len(target) != 3:
            continue
        if s[1] % target[1] == 0 and s[2] % target[2] == 0 and s[1] // target[1] == s[2] // target[2]:
            stride = s[1] // target[1]
            st = f", stride = {stride}" if stride > 1 else ""
            return (f"project the {fmt(s)} branch to {fmt(target)}: replace it with "
                    f"`{{ conv({target[0]}, 1{st}, bias = false); bn }}`")
    return "make every branch end in the same shape (a 1×1 conv with a stride projects a shortcut)"


def _concat_fix(srcs: list, ins: list) -> str | None:
    flat = [f"branch {i} (`{srcs[i]}`)" for i, s in enumerate(ins) if len(s) != 3]
    if flat and len(flat) < len(ins):
        return f"{', '.join(flat)} is flat while others are feature maps: flatten after the concat, not inside it"
    spatial = [s[1:] for s in ins]
    biggest = max(spatial)
    shrunk = [f"branch {i} (`{srcs[i]}`) downsampled to {'×'.join(map(str, sp))}"
              for i, sp in enumerate(spatial) if sp != biggest]
    if not shrunk:
        return None
    return "; ".join(shrunk) + f" while others keep {'×'.join(map(str, biggest))}: use the same strides and padding in every branch"


class InferShapes:
    """Pass `infer-shapes`: every node's shape from its inputs; needs a validated graph."""

    name = "infer-shapes"

    def run(self, g: Graph) -> Graph:
        recorded = dict(g.shapes)
        g.shapes.clear()
        for n in g.topo():
            shape = infer_node(g, n)
            if n in recorded and recorded[n] != shape:
                raise AssertionError(f"internal: shape of {n} changed {recorded[n]} -> {shape}")
        return g
