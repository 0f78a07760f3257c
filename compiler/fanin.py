"""What collapsing a drawing must not hide: how the parts of a scope feed one another.

DenseNet's defining feature is invisible in its graph: each layer reads one tensor, the concat
of the previous layer, so the drawn edges form a plain chain. Seeing through stacking merges (a
concat's readers read each of its inputs) recovers the pattern: layer l reads the block input
and every earlier layer. ``Facts.fan_in`` computes it for any scope, op-agnostically (from op
families and shapes), along with the skip connections of residual blocks (``skip_merges``).
Used by compiler/render.py; no torch, no graphviz.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from archc.compiler.ir import Graph

MAX_UNITS = 1024  # a scope with more units states no fan-in (its analysis would grow as units²)
SKIP_WALK = 64  # a merge branch longer than this counts as long (bounds the walk per merge)


@dataclass(frozen=True)
class FanIn:
    """How the units of a scope (its direct sub-scopes and ops) feed one another."""
    reads: tuple  # per unit, in order: frozenset of sources it reads (0 = the scope's input, j = unit j)
    skips: tuple  # glyph of each fusing merge inside that has a branch shorter than another one

    @property
    def dense(self) -> bool:
        """Every unit reads the scope's input and all earlier units (DenseNet). Three units at
        least: with two, ``concat { identity; f }`` alone would qualify."""
        return len(self.reads) >= 3 and all(set(range(i + 1)) <= r for i, r in enumerate(self.reads))

    @property
    def widest_shortcut_fan_in(self) -> int:
        """The most sources one unit reads when at least two of them are shortcuts: sources that
        also reach it through another source it reads (DSNet's dense sums). Parallel branches
        joined by one concat (Inception) have none: no branch reaches another."""
        reach = [frozenset()]  # reach[j]: the sources upstream of source j (0: the scope's input)
        widest = 0
        for r in self.reads:
            shortcuts = sum(any(j in reach[k] for k in r if k != j) for j in r)
            widest = max(widest, len(r) if shortcuts >= 2 else 0)
            reach.append(frozenset(r).union(*(reach[j] for j in r)))
        return widest

    def caption(self) -> str:
        if self.dense:
            return "dense: each unit reads all earlier outputs"
        if self.widest_shortcut_fan_in:
            return f"dense connections: up to {self.widest_shortcut_fan_in} earlier outputs feed one unit"
        if self.skips:
            n = len(self.skips)
            return f"residual: {n} skip connection{'s' * (n > 1)} ({', '.join(sorted(set(self.skips)))})"
        return ""


class Facts:
    """What the drawing steps read about the graph: each node's style (``style_of(node)``: an
    object with ``family``, ``glyph``, ``label`` and ``passthrough``), the node whose tensor it
    passes on (itself, or for a passthrough the op before it), scope members, skip merges."""

    def __init__(self, graph: Graph, style_of):
        self.graph = graph
        self.style = {n: style_of(graph.node(n)) for n in graph.topo()}
        self.origin = {}
        for n in graph.topo():  # inputs come first: one pass resolves chains of passthroughs
            self.origin[n] = self.origin[graph.inputs(n)[0]] if self.style[n].passthrough else n
        self._members = None

    def members(self, scope: str) -> list:
        """Node ids inside ``scope`` ("" = all), topological order (indexed once for every scope)."""
        if not scope:
            return self.graph.topo()
        if self._members is None:
            self._members = defaultdict(list)
            for n in self.graph.topo():
                for scope_ in prefixes(n):
                    self._members[scope_].append(n)
        return self._members.get(scope, [])

    def stacks(self, n: str) -> bool:
        """A merge whose output holds each input whole (its channels are their sum): a concat."""
        ins, shapes = self.graph.inputs(n), self.graph.shapes
        return (len(ins) >= 2 and self.style[n].family == "merge"
                and shapes[n][0] == sum(shapes[i][0] for i in ins))

    def skip_merges(self) -> dict:
        """Fusing merges (sum, product) one of whose branches is shorter than another: skip
        connections, node -> glyph. A branch is walked back from the merge through single-input
        ops of the merge's own scope; its length counts drawn ops (identity skip 0, projection 1-2)."""
        out = {}
        for n, style in self.style.items():
            if style.family != "merge" or len(self.graph.inputs(n)) < 2 or self.stacks(n):
                continue
            scope = n.rpartition(".")[0]
            lengths = [b for b in (self._branch(i, scope) for i in self.graph.inputs(n)) if b is not None]
            if len(lengths) >= 2 and min(lengths) < max(lengths):
                out[n] = style.glyph or style.label
        return out

    def _branch(self, n: str, scope: str) -> int | None:
        length, inside = 0, scope + "."
        while (n.startswith(inside) or not scope) and self.graph.inputs(n) and length < SKIP_WALK:
            ins = self.graph.inputs(n)
            if len(ins) != 1:
                return None  # the branch itself merges: not a simple path
            length += not self.style[n].passthrough
            n = ins[0]
        return length

    def fan_in(self, scope: str, skips: dict) -> FanIn | None:
        """Which earlier units each unit of ``scope`` (its direct sub-scopes and ops) reads, seeing
        through passthroughs and stacking merges (a concat's readers read each of its inputs);
        ``skips``: the skip merges to count. None below two units or above MAX_UNITS."""
        nodes, level = self.members(scope), scope.count(".") + 2 if scope else 1
        unit, order = {}, {}
        for n in nodes:
            if not self.style[n].passthrough:
                unit[n] = order.setdefault(".".join(n.split(".")[:level]), len(order) + 1)
        if not 2 <= len(order) <= MAX_UNITS:  # bounds the sets below: units² at most
            return None
        carried = {}  # node -> units whose outputs its tensor holds (0: the scope's input)
        for n in nodes:
            srcs = [carried.get(i, frozenset({0})) for i in self.graph.inputs(n)]
            if n not in unit:
                carried[n] = srcs[0]
            else:
                carried[n] = frozenset().union(*srcs) if self.stacks(n) else frozenset({unit[n]})
        reads = [set() for _ in order]
        for n, u in unit.items():
            for i in self.graph.inputs(n):
                if unit.get(self.origin[i]) != u:
                    reads[u - 1] |= carried.get(i, {0})
        return FanIn(tuple(frozenset(r) for r in reads), tuple(skips[n] for n in nodes if n in skips))


def prefixes(node_id: str):
    """``a.b.c`` -> ``a``, ``a.b``: the scopes holding a node."""
    at = node_id.find(".")
    while at != -1:
        yield node_id[:at]
        at = node_id.find(".", at + 1)
