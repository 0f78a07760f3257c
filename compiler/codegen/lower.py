"""Lowering: graph IR -> one flat ``torch.fx.Graph``; ``outline.py`` then folds checkpoint regions.

Every fx node records in ``meta`` the IR node it computes (``ARCH_ID``), that node's static
shape (``SHAPE``, for the shape comments in the generated code) and its checkpoint region
(``REGION``, 0 = none). Each op's definition says what it becomes (``compiler/ops``): a module
called at its node id (``call_module``), a function, a learned tensor (``get_attr``), a fold of
its branches (``add`` is a chain of ``+``), or nothing (``identity``). Ops that run channels-last
(``layernorm`` and ``channel_linear`` on maps, as in torchvision's ConvNeXt) get a ``permute``
before them, shared by consecutive such ops and undone only where a channels-first op reads.

Concatenation is lazy, as in torchvision's DenseNet. A ``concat`` is kept as the list of its
pieces, and a concat of concats joins the lists, so a dense block's growing feature map is
never copied into the next layer's output. ``torch.cat`` runs only where an op reads the
tensor (a layer's ``norm1``, a transition), once per list and region. When the reader is in
a checkpoint region the ``cat`` is placed inside it and recomputed in backward, so only the
pieces are stored: torchvision's ``memory_efficient`` DenseNet.
"""
from __future__ import annotations

import heapq
from collections import defaultdict

import torch
import torch.fx as fx

from archc.compiler.codegen import inplace
from archc.compiler.codegen.layers import with_aux
from archc.compiler.codegen.modules import resolve
from archc.compiler.ir import Graph
from archc.compiler.ops import Alias, Fold, Function, LazyConcat, Module, Parameter, Placeholder, Result
from archc.dsl.errors import ValidationError

SHAPE, REGION, ARCH_ID, NHWC = "archc_shape", "archc_region", "archc_id", "archc_nhwc"
# Regions: checkpoint regions are numbered 1, 2 ...; auxiliary heads -1, -2 ...; 0 is none.


def lower(g: Graph) -> tuple[fx.Graph, dict]:
    """The flat fx graph, and per IR node the fx name of its value (a tuple of names for a lazy concat)."""
    low = _Lowering(g)
    regions = {n: g.node(n).checkpoint for n in g.topo()} | aux_heads(g)
    for n in schedule(g, regions):
        low.region = regions[n]  # where this node's fx nodes (and cats) belong
        low.values[n] = low.lower(g.node(n), g.inputs(n))
    low.finish()
    names = {k: tuple(p.name for p in v) if isinstance(v, tuple) else v.name for k, v in low.values.items()}
    return low.fx, names


def aux_heads(g: Graph) -> dict[str, int]:
    """Node -> region -1, -2 ... of the auxiliary head it belongs to: the nodes only ``@aux`` outputs
    need, grouped by connection. Each head then runs where it branches off, as in torchvision (so
    the dropout draws come in the same order), and only in training."""
    aux = set(g.topo()) - g.inference_nodes() if g.aux_ids else set()
    head = {}
    for n in g.topo():
        if n in aux and n not in head:
            head[n], stack = -(len(set(head.values())) + 1), [n]
            while stack:  # everything connected to it among the aux-only nodes
                m = stack.pop()
                for k in (*g.inputs(m), *g.consumers(m)):
                    if k in aux and k not in head:
                        head[k] = head[n]
                        stack.append(k)
    return head


def schedule(g: Graph, regions: dict) -> list[str]:
    """IR node ids in a topological order that keeps each region (checkpoint or auxiliary head)
    contiguous.

    Kahn's algorithm over units (a region, or a node outside every region), taking the
    ready unit that came first in ``g.topo()`` so the code follows the source order.
    """
    order = g.topo()
    unit = {n: ("region", regions[n]) if regions[n] else ("node", n) for n in order}
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
        self.nhwc: set = set()  # fx nodes holding a channels-last (permuted) map
        self.twins: dict = {}  # (fx node, layout) -> the same map in that layout, made by one permute
        self.last: dict = {}  # region -> its latest fx node

    def lower(self, node, ins: list[str]):
        """The fx value(s) of one IR node, by the kind of lowering its op describes."""
        low = node.spec.lower(node.args, [self.g.shapes[i] for i in ins])
        if isinstance(low, Placeholder):
            return self.node("placeholder", "x", (), node.id, name="x")
        if isinstance(low, Result):
            return self.tensor(ins[0])
        if isinstance(low, Alias):
            return self.values[ins[0]]
        if isinstance(low, LazyConcat):
            return tuple(p for i in ins for p in self.pieces(i))
        if isinstance(low, Fold):
            return self.fold(node.id, list(ins), low)
        x = self.tensor(ins[0], low.layout)
        if isinstance(low, Module):
            return self.mark(self.node("call_module", node.id, (x,), node.id), x, low.layout)
        if isinstance(low, Function):
            out = self.node("call_function", resolve(low.fn), (x, *low.args), node.id, kwargs=dict(low.kwargs))
            return self.mark(out, x, low.layout)
        if isinstance(low, Parameter):
            param = self.node("get_attr", node.id, (), node.id, name=f"{node.id}_param")
            param.meta[SHAPE] = low.shape
            return self.mark(self.node("call_function", resolve(low.fn), (x, param), node.id), x, low.layout)
        raise AssertionError(f"internal: op `{node.op}` lowers to {low!r}")

    def finish(self) -> None:
        """The graph's output: the main value, or ``with_aux(main, packs, order)``. Each head packs
        its outputs inside its region (outline.py makes the region one ``AuxHeads`` call, which
        gives None in eval); ``order`` puts them in the ``@aux`` positions' order."""
        g, main = self.g, self.values[self.g.output_id]
        if not g.aux_ids:
            self.fx.output(main)
            return
        heads = aux_heads(g)
        packed, packs = [], []
        for region in sorted(set(heads.values()), reverse=True):  # -1, -2 ...: the order they run in
            outs = [a for a in g.aux_ids if heads[a] == region]
            self.region = region
            with self.fx.inserting_after(self.last[region]):  # inside the head's contiguous run
                packs.append(self.node("call_function", tuple, ([self.values[a] for a in outs],), outs[0],
                                       f"aux_outputs_{-region}"))
            packed += outs
        self.region = 0
        out = self.node("call_function", with_aux, (main, packs, tuple(packed.index(a) for a in g.aux_ids)),
                        g.output_id, "outputs")
        for n in (*packs, out):
            del n.meta[SHAPE]  # tuples: no one shape to comment
        self.fx.output(out)

    def fold(self, ir_id: str, ins: list[str], low: Fold):
        """A chain of ``fn``, written into the first operand's buffer when it may be overwritten
        (``x += y``, as torchvision's ``out += identity``). Sums and products commute exactly, so
        with two operands either may be the one written, if it has the result's shape."""
        out = self.g.shapes[ir_id]
        free = [inplace.overwritable(self.g, src, ir_id) and self.g.shapes[src] == out for src in ins]
        same = all(self.g.shapes[src] == out for src in ins)  # then every partial result has the final shape
        if len(ins) == 2 and free == [False, True]:
            ins.reverse()
            free.reverse()
        acc, writable = self.tensor(ins[0]), free[0] and low.method is not None
        for k, src in enumerate(ins[1:], 2):
            partial = None if k == len(ins) else f"{ir_id}_partial"
            kind, target = ("call_method", low.method) if writable else ("call_function", resolve(low.fn))
            acc = self.node(kind, target, (acc, self.tensor(src)), ir_id, partial)
            writable = low.method is not None and same  # a partial result is ours to overwrite
        return acc

    def pieces(self, ir_id: str) -> tuple:
        """A concat input as pieces: a lazy concat's own, or the value itself, channels-first."""
        v = self.values[ir_id]
        return v if isinstance(v, tuple) else (self.tensor(ir_id),)

    def tensor(self, ir_id: str, layout: str = "nchw") -> fx.Node:
        """The value of an IR node as one tensor in ``layout`` ("any": as it is)."""
        v = self.values[ir_id]
        if isinstance(v, tuple):
            key = (v, self.region)
            if key not in self.cats:
                self.cats[key] = self.node("call_function", torch.cat, (list(v), 1), ir_id)
            v = self.cats[key]
        if layout == "any" or (v in self.nhwc) == (layout == "nhwc") or len(self.g.shapes[ir_id]) != 3:
            return v
        key = (v, layout, self.region)
        if key not in self.twins:
            dims = (0, 2, 3, 1) if layout == "nhwc" else (0, 3, 1, 2)
            twin = self.node("call_method", "permute", (v, *dims), ir_id, f"{ir_id}_{layout}")
            self.twins[key] = twin
            self.twins[(twin, "nchw" if layout == "nhwc" else "nhwc", self.region)] = v  # permuting back is free
            if layout == "nhwc":
                self.nhwc.add(twin)
                twin.meta[NHWC] = True
        return self.twins[key]

    def mark(self, out: fx.Node, x: fx.Node, layout: str) -> fx.Node:
        """Record that ``out`` is channels-last when its op ran channels-last (or kept ``x``'s layout)."""
        if layout == "nhwc" or (layout == "any" and x in self.nhwc):
            self.nhwc.add(out)
            out.meta[NHWC] = True  # its tensor is N×H×W×C; the shape comments and probe say C×H×W
        return out

    def node(self, kind: str, target, args: tuple, ir_id: str, name: str | None = None,
             kwargs: dict | None = None) -> fx.Node:
        n = self.fx.create_node(kind, target, args, kwargs or {}, name=py_name(name or ir_id))
        n.meta.update({ARCH_ID: ir_id, SHAPE: self.g.shapes[ir_id], REGION: self.region})
        self.last[self.region] = n
        return n


def py_name(node_id: str) -> str:
    """``layer1.0.conv1`` -> ``layer1_0_conv1`` (fx makes it unique and a valid identifier)."""
    name = node_id.replace(".", "_")
    return name + "_" if name == "self" else name  # fx would let `self` shadow the module
