"""Lowering: graph IR -> one flat ``torch.fx.Graph``; ``outline.py`` then folds checkpoint regions.

Every fx node records in ``meta`` the IR node it computes (``ARCH_ID``), that node's static
shape (``SHAPE``, for the shape comments in the generated code) and its checkpoint region
(``REGION``, 0 = none). Op modules are called by their node id (``call_module``); ``add``
is a chain of ``+``, ``flatten`` is ``torch.flatten(x, 1)``, ``identity`` is no node at all.

Concatenation is lazy, as in torchvision's DenseNet. A ``concat`` is kept as the list of its
pieces, and a concat of concats joins the lists, so a dense block's growing feature map is
never copied into the next layer's output. ``torch.cat`` runs only where an op reads the
tensor (a layer's ``norm1``, a transition), once per list and region. When the reader is in
a checkpoint region the ``cat`` is placed inside it and recomputed in backward, so only the
pieces are stored: torchvision's ``memory_efficient`` DenseNet.
"""
from __future__ import annotations

import heapq
import operator
from collections import defaultdict

import torch
import torch.fx as fx

from archc.compiler.codegen import inplace
from archc.compiler.ir import Graph
from archc.dsl.errors import ValidationError

SHAPE, REGION, ARCH_ID = "archc_shape", "archc_region", "archc_id"


def lower(g: Graph) -> tuple[fx.Graph, dict]:
    """The flat fx graph, and per IR node the fx name of its value (a tuple of names for a lazy concat)."""
    low = _Lowering(g)
    for n in schedule(g):
        low.region = g.node(n).checkpoint  # where this node's fx nodes (and cats) belong
        low.values[n] = low.lower(g.node(n), g.inputs(n))
    names = {k: tuple(p.name for p in v) if isinstance(v, tuple) else v.name for k, v in low.values.items()}
    return low.fx, names


def schedule(g: Graph) -> list[str]:
    """IR node ids in a topological order that keeps each checkpoint region contiguous.

    Kahn's algorithm over units (a region, or a node outside every region), taking the
    ready unit that came first in ``g.topo()`` so the code follows the source order.
    """
    order = g.topo()
    unit = {n: ("region", g.node(n).checkpoint) if g.node(n).checkpoint else ("node", n) for n in order}
    members, rank, deps, users = defaultdict(list), {}, defaultdict(set), defaultdict(set)
    for i, n in enumerate(order):
        members[unit[n]].append(n)
        rank.setdefault(unit[n], i)
        for src in g.inputs(n):
            if unit[src] != unit[n]:
                deps[unit[n]].add(unit[src])
                users[unit[src]].add(unit[n])
    waiting = {u: len(deps[u]) for u in members}
    ready = [(rank[u], u) for u in members if not waiting[u]]
    out = []
    while ready:
        _, u = heapq.heappop(ready)
        out += members[u]
        for v in users[u]:
            waiting[v] -= 1
            if not waiting[v]:
                heapq.heappush(ready, (rank[v], v))
    if len(out) != len(order):
        done = set(out)
        stuck = next(n for n in order if n not in done)
        raise ValidationError(f"checkpoint region of `{stuck}` is entered twice: it is not one contiguous piece",
                              g.node(stuck).span, hint="put @checkpoint on a single item")
    return out


class _Lowering:
    def __init__(self, g: Graph):
        self.g, self.fx, self.region = g, fx.Graph(), 0
        self.values: dict = {}  # IR id -> fx.Node, or a tuple of fx.Nodes (a lazy concat)
        self.cats: dict = {}  # (pieces, region) -> the torch.cat node that materialises them

    def lower(self, node, ins: list[str]):
        op = node.op
        if op == "input":
            return self.node("placeholder", "x", (), node.id, name="x")
        if op == "output":
            out = self.tensor(ins[0])
            self.fx.output(out)
            return out
        if op == "identity":
            return self.values[ins[0]]
        if op == "concat":
            return tuple(p for i in ins for p in self.pieces(i))
        if op == "add":
            return self.add(node.id, list(ins))
        if op == "flatten":
            return self.node("call_function", torch.flatten, (self.tensor(ins[0]), 1), node.id)
        return self.node("call_module", node.id, (self.tensor(ins[0]),), node.id)

    def add(self, ir_id: str, ins: list[str]):
        """A chain of adds, written into the first operand's buffer when it may be overwritten
        (``x += y``, as torchvision's ``out += identity``); a + b == b + a exactly, so with two
        operands either may be the one written."""
        free = [inplace.overwritable(self.g, src, ir_id) for src in ins]
        if len(ins) == 2 and free == [False, True]:
            ins.reverse()
            free.reverse()
        acc, writable = self.tensor(ins[0]), free[0]
        for k, src in enumerate(ins[1:], 2):
            partial = None if k == len(ins) else f"{ir_id}_partial"
            kind, target = ("call_method", "add_") if writable else ("call_function", operator.add)
            acc = self.node(kind, target, (acc, self.tensor(src)), ir_id, partial)
            writable = True  # a partial sum is ours to overwrite
        return acc

    def pieces(self, ir_id: str) -> tuple:
        v = self.values[ir_id]
        return v if isinstance(v, tuple) else (v,)

    def tensor(self, ir_id: str) -> fx.Node:
        v = self.values[ir_id]
        if not isinstance(v, tuple):
            return v
        key = (v, self.region)
        if key not in self.cats:
            self.cats[key] = self.node("call_function", torch.cat, (list(v), 1), ir_id)
        return self.cats[key]

    def node(self, kind: str, target, args: tuple, ir_id: str, name: str | None = None) -> fx.Node:
        n = self.fx.create_node(kind, target, args, name=py_name(name or ir_id))
        n.meta.update({ARCH_ID: ir_id, SHAPE: self.g.shapes[ir_id], REGION: self.region})
        return n


def py_name(node_id: str) -> str:
    """``layer1.0.conv1`` -> ``layer1_0_conv1`` (fx makes it unique and a valid identifier)."""
    name = node_id.replace(".", "_")
    return name + "_" if name == "self" else name  # fx would let `self` shadow the module
