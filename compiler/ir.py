"""The graph IR. This module alone touches networkx: the DiGraph holds the topology
(one node per op, one edge per tensor, ``port`` = input position), and each node's payload
is a typed, frozen ``OpNode``. Passes read and annotate a ``Graph``; nothing else needs to
know networkx's API.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import networkx as nx

from compiler.ops import OPS, Op
from dsl.errors import Span


@dataclass(frozen=True, slots=True)
class BlockFrame:
    """One enclosing block instance: how it was called and where its scope lives."""
    name: str
    path: str  # scope path of the instance, e.g. "features.denseblock1.denselayer3"
    args: tuple  # ((param, value), ...) as evaluated
    doc: str = ""


@dataclass(frozen=True, slots=True)
class OpNode:
    id: str  # unique dotted scope path: the module path in the built nn.Module
    op: str  # key of compiler.ops.OPS
    args: object  # OPS[op].Args instance (typed, frozen)
    span: Span
    blocks: tuple = ()  # BlockFrames, outermost first
    checkpoint: int = 0  # > 0: recompute-in-backward region this node belongs to

    @property
    def spec(self) -> Op:
        return OPS[self.op]


@dataclass(frozen=True, slots=True)
class Cost:
    params: int
    macs: int
    other_ops: int
    activations: int  # output elements kept for backward (0 for views), per sample


@dataclass
class Graph:
    name: str
    params: dict  # evaluated arch parameters
    input_shape: tuple
    init: str = "torchvision"
    g: nx.DiGraph = field(default_factory=nx.DiGraph)
    shapes: dict = field(default_factory=dict)  # node id -> shape (batch excluded)
    costs: dict = field(default_factory=dict)  # node id -> Cost
    input_id: str = ""
    output_id: str = ""

    def add(self, node: OpNode, inputs: list[str] | tuple[str, ...] = ()) -> str:
        self.g.add_node(node.id, op=node)
        for port, src in enumerate(inputs):
            self.g.add_edge(src, node.id, port=port)
        return node.id

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.g

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def node(self, node_id: str) -> OpNode:
        return self.g.nodes[node_id]["op"]

    def inputs(self, node_id: str) -> list[str]:
        preds = self.g.in_edges(node_id, data="port")
        return [u for u, _, _ in sorted(preds, key=lambda e: e[2])]

    def consumers(self, node_id: str) -> list[str]:
        return list(self.g.successors(node_id))

    def topo(self) -> list[str]:
        return list(nx.topological_sort(self.g))

    def nodes(self) -> list[OpNode]:
        return [self.node(n) for n in self.topo()]

    def sources(self) -> list[str]:
        return [n for n, d in self.g.in_degree() if d == 0]

    def sinks(self) -> list[str]:
        return [n for n, d in self.g.out_degree() if d == 0]

    def find_cycle(self) -> list[str] | None:
        try:
            return [u for u, _ in nx.find_cycle(self.g)]
        except nx.NetworkXNoCycle:
            return None

    def totals(self) -> Cost:
        c = self.costs.values()
        return Cost(sum(x.params for x in c), sum(x.macs for x in c),
                    sum(x.other_ops for x in c), sum(x.activations for x in c))

    def to_json(self) -> str:
        """The IR as JSON (``--emit json``): nodes in topological order with edges and costs."""
        nodes = []
        for n in self.topo():
            node, cost = self.node(n), self.costs.get(n)
            nodes.append({
                "id": n, "op": node.op, "args": _jsonable(node.args), "inputs": self.inputs(n),
                "shape": list(self.shapes.get(n, ())), "blocks": [b.path for b in node.blocks],
                "checkpoint": node.checkpoint, "at": str(node.span),
                **({"params": cost.params, "macs": cost.macs} if cost else {}),
            })
        return json.dumps({"name": self.name, "params": self.params, "input": list(self.input_shape),
                           "init": self.init, "nodes": nodes}, indent=1)

    def to_text(self) -> str:
        """One line per node (``--emit ir``): ``id = op(args)(inputs) : shape``."""
        lines = [f"graph {self.name} {self.params} input {list(self.input_shape)}"]
        for n in self.topo():
            node = self.node(n)
            args = ", ".join(f"{k}={v}" for k, v in _jsonable(node.args).items())
            shape = "×".join(map(str, self.shapes.get(n, ())))
            ins = ", ".join(self.inputs(n))
            ck = f"  @checkpoint[{node.checkpoint}]" if node.checkpoint else ""
            lines.append(f"{n} = {node.op}({args})({ins}) : {shape}{ck}")
        return "\n".join(lines)


def _jsonable(args) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in
            ((f, getattr(args, f)) for f in args.__slots__)}
