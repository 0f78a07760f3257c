"""Cost summaries: rows per scope at a chosen depth, with totals. No torch, no rich.

A row groups every node whose id starts with the same first ``depth`` path segments
(``features.denseblock1`` at depth 2). Activation memory is the elements kept for
backward (every non-view op's output), per sample, times 4 bytes (fp32) or 2 (bf16).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from archc.compiler.ir import Graph, OpNode


@dataclass
class Row:
    name: str
    kind: str  # the op, or the block name / "group" for a collapsed scope
    nodes: int
    output_shape: tuple
    params: int
    macs: int
    other_ops: int
    act_fp32_bytes: int
    act_bf16_bytes: int


def scope_key(node_id: str, depth: int) -> str:
    """The row a node belongs to: its first ``depth`` path segments ("" at depth 0: everything)."""
    return ".".join(node_id.split(".")[:depth])


def rows(g: Graph, depth: int = 2) -> list[Row]:
    """One row per scope at ``depth``, in topological order of each scope's first node. Linear."""
    out: dict[str, Row] = {}
    for n in g.topo():
        node, cost = g.node(n), g.costs[n]
        if node.spec.family == "io":
            continue
        key = scope_key(n, depth)
        row = out.get(key)
        if row is None:
            kind = node.op if key == n else _kind(node, key)
            row = out[key] = Row(key or g.name, kind, 0, (), 0, 0, 0, 0, 0)
        row.nodes += 1
        row.output_shape = g.shapes[n]  # the last node in topological order is the scope's output
        row.params += cost.params
        row.macs += cost.macs
        row.other_ops += cost.other_ops
        row.act_fp32_bytes += 4 * cost.activations
        row.act_bf16_bytes += 2 * cost.activations
    return list(out.values())


def call_text(frame) -> str:
    """A block instance as the spec calls it, in .arch values: ``dense_layer(k=32)``, ``stage(bn=true)``."""
    from archc.compiler.evaluate import show
    return f"{frame.name}(" + ", ".join(f"{k}={show(v)}" for k, v in frame.args) + ")"


def _kind(node, key: str) -> str:
    for frame in node.blocks:
        if frame.path == key:
            return call_text(frame)
    return "scope"


@dataclass
class Output:
    """One output of the network: the main one, or an ``@aux`` head with the cost only it adds."""
    name: str  # "output", or the head's scope (``aux1``)
    node: str
    shape: tuple
    params: int
    macs: int


def outputs(g: Graph) -> list[Output]:
    """The main output with the inference cost (what an eval forward runs), then each auxiliary
    output with what its head adds in training."""
    main = g.inference_nodes()
    t = g.totals(main)
    out = [Output("output", g.output_id, g.shapes[g.output_id], t.params, t.macs)]
    for aux in g.aux_ids:
        head, stack = set(), [aux]
        while stack:  # the nodes only this output needs
            n = stack.pop()
            if n not in main and n not in head:
                head.add(n)
                stack.extend(g.inputs(n))
        h = g.totals(head)
        out.append(Output(g.inputs(aux)[0].split(".")[0], aux, g.shapes[aux], h.params, h.macs))
    return out


def as_json(g: Graph, depth: int = 2) -> dict:
    from archc.compiler.graphhash import graph_hash
    t = g.totals()
    return {
        "name": g.name, "graph_hash": graph_hash(g), "params": t.params, "macs": t.macs, "other_ops": t.other_ops,
        "activations_fp32_bytes": 4 * t.activations, "activations_bf16_bytes": 2 * t.activations,
        "input_shape": list(g.input_shape), "output_shape": list(g.shapes[g.output_id]),
        "nodes": len(g), "arch_params": {k: list(v) if isinstance(v, tuple) else v for k, v in g.params.items()},
        "outputs": [{**asdict(o), "shape": list(o.shape)} for o in outputs(g)],
        "rows": [{**asdict(r), "output_shape": list(r.output_shape)} for r in rows(g, depth)],
    }


def partial(g: Graph) -> tuple[Graph, OpNode]:
    """After a shape error: the graph as far as shapes were inferred, costed, and the node to blame.

    The elaborator adds a node before inferring its shape, so the culprit is the first node
    without one; a ``dense_sum`` unit that changes the shape fails after all its nodes got
    shapes, and then its last node is the one to blame.
    """
    from archc.compiler.passes import Compilation, Costs
    shaped = Graph(g.name, g.params, g.input_shape, g.init)
    failed = None
    for n in g.topo():
        if n not in g.shapes:
            failed = g.node(n)
            break
        shaped.add(g.node(n), g.inputs(n))
        shaped.shapes[n] = g.shapes[n]
    Costs().run(Compilation(graph=shaped))
    return shaped, failed or shaped.node(shaped.topo()[-1])


def human(n: float, unit: str = "") -> str:
    """12_345_678 -> '12.35M'."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"
