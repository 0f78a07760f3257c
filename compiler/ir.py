"""The graph IR: one node per op, one edge per tensor (``port`` = input position), each
node's payload a typed, frozen ``OpNode``. This module alone touches networkx.

Why the topology is also kept in plain ordered dicts: importing networkx costs ~170 ms,
more than compiling a DenseNet-264, and ``archc check`` must stay instant. Nodes are only
ever added after their inputs, so insertion order is a topological order; ``Graph.nx``
gives the same graph as a ``networkx.DiGraph`` (node attr ``op``, edge attr ``port``)
for rendering and analysis, built on first use.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from archc.compiler.ops import OPS, Op
from archc.dsl.errors import Span


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
    init: tuple = ()  # compiler.init.InitRule: how each learned tensor starts
    _ins: dict = field(default_factory=dict)  # node id -> input ids by port; insertion = topo order
    _ops: dict = field(default_factory=dict)  # node id -> OpNode
    _succ: dict = field(default_factory=dict)  # node id -> consumer ids
    _nx: object = None  # cached networkx.DiGraph
    shapes: dict = field(default_factory=dict)  # node id -> shape (batch excluded)
    costs: dict = field(default_factory=dict)  # node id -> Cost
    input_id: str = ""
    output_id: str = ""
    aux_ids: tuple = ()  # auxiliary outputs (`@aux`), in the order the built module returns them

    @property
    def output_ids(self) -> tuple:
        """Every output node: the main one, then the auxiliary ones."""
        return (self.output_id, *self.aux_ids)

    def inference_nodes(self) -> set:
        """The nodes the main output needs: what an eval-mode forward runs (aux heads excluded)."""
        seen, stack = set(), [self.output_id]
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self._ins[n])
        return seen

    def add(self, node: OpNode, inputs: list[str] | tuple[str, ...] = ()) -> str:
        missing = [i for i in inputs if i not in self._ops]
        if missing or node.id in self._ops:
            raise ValueError(f"internal: bad edge into {node.id} (missing {missing} or duplicate id)")
        self._ops[node.id], self._ins[node.id], self._succ[node.id] = node, tuple(inputs), []
        for src in inputs:
            self._succ[src].append(node.id)
        self._nx = None
        return node.id

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._ops

    def __len__(self) -> int:
        return len(self._ops)

    def node(self, node_id: str) -> OpNode:
        return self._ops[node_id]

    def inputs(self, node_id: str) -> tuple:
        return self._ins[node_id]

    def consumers(self, node_id: str) -> list[str]:
        return self._succ[node_id]

    def topo(self) -> list[str]:
        return list(self._ops)

    def nodes(self) -> list[OpNode]:
        return list(self._ops.values())

    def sources(self) -> list[str]:
        return [n for n, ins in self._ins.items() if not ins]

    def sinks(self) -> list[str]:
        return [n for n, out in self._succ.items() if not out]

    def find_cycle(self) -> list[str] | None:
        """An edge that runs against the topological order (so could close a cycle), or None."""
        position = {n: i for i, n in enumerate(self._ops)}
        for n, ins in self._ins.items():
            for src in ins:
                if position[src] >= position[n]:
                    return [src, n]
        return None

    @property
    def nx(self):
        """The graph as a ``networkx.DiGraph``: node attr ``op`` (OpNode), edge attr ``port``."""
        if self._nx is None:
            import networkx  # deferred: see the module docstring
            g = networkx.DiGraph()
            for n, node in self._ops.items():
                g.add_node(n, op=node, shape=self.shapes.get(n))
            for n, ins in self._ins.items():
                for port, src in enumerate(ins):
                    g.add_edge(src, n, port=port)
            self._nx = g
        return self._nx

    def totals(self, nodes=None) -> Cost:
        """Summed costs of ``nodes`` (default: all, the training view; ``inference_nodes()`` for eval)."""
        c = self.costs.values() if nodes is None else [self.costs[n] for n in nodes if n in self.costs]
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
                           "init": [{"target": r.target(), "init": r.fn} for r in self.init], "nodes": nodes}, indent=1)

    def to_text(self) -> str:
        """One line per node (``--emit ir``): ``id = op(args)(inputs) : shape``."""
        from archc.compiler.evaluate import show  # .arch values (true, [3, 3]), as the spec writes them
        params = ", ".join(f"{k}={show(v, 10 ** 6)}" for k, v in self.params.items())
        lines = [f"graph {self.name}({params}) input {show(tuple(self.input_shape))}"]
        for n in self.topo():
            node = self.node(n)
            args = ", ".join(f"{k}={show(getattr(node.args, k), 10 ** 6)}" for k in node.args.__slots__)
            shape = "×".join(map(str, self.shapes.get(n, ())))
            ins = ", ".join(self.inputs(n))
            ck = f"  @checkpoint[{node.checkpoint}]" if node.checkpoint else ""
            lines.append(f"{n} = {node.op}({args})({ins}) : {shape}{ck}")
        return "\n".join(lines)


def _jsonable(args) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in
            ((f, getattr(args, f)) for f in args.__slots__)}
