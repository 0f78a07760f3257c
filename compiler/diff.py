"""What differs between two compiled networks: nodes, wiring, and cost per scope. No torch.

Nodes are matched by id (the scope path, which is also the module path of the built model).
A node that exists on one side only but whose whole upstream graph is identical to one on
the other side (``graphhash.upstream_digests``) is a rename, not a removal plus an addition.
A matched node is *changed* when its op, arguments or output shape differ, or its inputs do
(after renames; unordered for commutative merges), or it is recomputed in backward on one side
only (``@checkpoint``: the same architecture, other activation memory). Scopes are the rows of ``archc summary``
at the same depth, joined by name. ``same_architecture`` compares the two graph hashes, so
two files that differ only in their labels report every node renamed but the same network.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

from archc.compiler.graphhash import graph_hash, upstream_digests
from archc.compiler.ir import Graph
from archc.compiler.summary import Row, rows, scope_key


@dataclass(frozen=True)
class NodeChange:
    status: str  # added | removed | changed | renamed
    a: str | None  # the node's id in A (None when added)
    b: str | None  # ... in B (None when removed)
    what: tuple = ()  # for changed: which of "op", "args", "shape", "inputs", "checkpoint" differ


@dataclass
class ScopeDelta:
    name: str
    status: str  # added | removed | renamed (every node renamed) | changed | same
    a: Row | None
    b: Row | None
    changes: int  # node changes inside this scope


@dataclass
class GraphDiff:
    a: str  # arch names
    b: str
    hash_a: str
    hash_b: str
    nodes: list[NodeChange] = field(default_factory=list)
    scopes: list[ScopeDelta] = field(default_factory=list)
    edges_added: int = 0
    edges_removed: int = 0

    @property
    def same_architecture(self) -> bool:
        return self.hash_a == self.hash_b

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.nodes)


def diff(a: Graph, b: Graph, depth: int = 2) -> GraphDiff:
    """Every node and scope difference between ``a`` and ``b`` (linear in their sizes)."""
    da, db = upstream_digests(a), upstream_digests(b)
    to_b = _match(a, b, da, db)
    nodes = [*_node_changes(a, b, to_b)]
    out = GraphDiff(a.name, b.name, graph_hash(a, da), graph_hash(b, db), nodes, _scopes(a, b, nodes, depth))
    out.edges_added, out.edges_removed = _edge_delta(a, b, to_b)
    return out


def _match(a: Graph, b: Graph, da: dict[str, str], db: dict[str, str]) -> dict:
    """A's node id -> B's: the same id, else a B-only node with the same upstream digest (``da``, ``db``)."""
    to_b = {n: n for n in a.topo() if n in b}
    free = defaultdict(deque)
    for n in b.topo():
        if n not in a:
            free[db[n]].append(n)
    for n in a.topo():
        if n not in b and free[da[n]]:
            to_b[n] = free[da[n]].popleft()  # paired in topological order, so repeated units stay in line
    return to_b


def _node_changes(a: Graph, b: Graph, to_b: dict):
    matched_b = set(to_b.values())
    for n in a.topo():
        if n not in to_b:
            yield NodeChange("removed", n, None)
        elif to_b[n] != n:
            yield NodeChange("renamed", n, to_b[n])
        else:
            what = _what_changed(a, b, n, to_b)
            if what:
                yield NodeChange("changed", n, n, what)
    for n in b.topo():
        if n not in matched_b:
            yield NodeChange("added", None, n)


def _what_changed(a: Graph, b: Graph, n: str, to_b: dict) -> tuple:
    na, nb = a.node(n), b.node(n)
    what = [w for w, x, y in (("op", na.op, nb.op), ("args", na.args, nb.args), ("shape", a.shapes[n], b.shapes[n]),
                              ("checkpoint", bool(na.checkpoint), bool(nb.checkpoint))) if x != y]
    ins_a, ins_b = [to_b.get(i) for i in a.inputs(n)], list(b.inputs(n))
    if nb.spec.commutative:
        ins_a, ins_b = sorted(ins_a, key=str), sorted(ins_b, key=str)
    if ins_a != ins_b:
        what.append("inputs")
    return tuple(what)


def _scopes(a: Graph, b: Graph, nodes: list, depth: int) -> list[ScopeDelta]:
    ra, rb = {r.name: r for r in rows(a, depth)}, {r.name: r for r in rows(b, depth)}
    changes, renames = defaultdict(int), defaultdict(int)
    for c in nodes:  # a change counts once in each scope it touches (a changed node is in both graphs)
        for key in {scope_key(n, depth) or g.name for g, n in ((a, c.a), (b, c.b)) if n is not None}:
            changes[key] += 1
            renames[key] += c.status == "renamed"
    out = []
    for name in _merged(list(ra), list(rb)):
        x, y = ra.get(name), rb.get(name)
        if x is None or y is None:  # a scope whose every node was renamed moved, it did not appear
            status = "renamed" if changes[name] == renames[name] else "added" if x is None else "removed"
        elif changes[name] or (x.kind, x.params, x.macs, x.output_shape) != (y.kind, y.params, y.macs, y.output_shape):
            status = "changed"
        else:
            status = "same"
        out.append(ScopeDelta(name, status, x, y, changes[name]))
    return out


def _merged(keys_a: list, keys_b: list) -> list:
    """Both orders in one (linear): before each shared key, A's keys up to it that B lacks,
    then B's that A lacks, as a unified diff puts removed lines before added ones."""
    in_a, in_b = {k: i for i, k in enumerate(keys_a)}, set(keys_b)
    out, pending, i = [], [], 0
    for k in keys_b:
        if k not in in_a:
            pending.append(k)
            continue
        while i <= in_a[k]:
            if keys_a[i] not in in_b:
                out.append(keys_a[i])
            i += 1
        out += [*pending, k]
        pending = []
    return out + [k for k in keys_a[i:] if k not in in_b] + pending


def _edge_delta(a: Graph, b: Graph, to_b: dict) -> tuple[int, int]:
    """(edges only in B, edges only in A), with A's nodes seen under their B names."""
    def name(n):
        return to_b.get(n, ("only in A", n))
    ea = {(name(s), name(n)) for n in a.topo() for s in a.inputs(n)}
    eb = {(s, n) for n in b.topo() for s in b.inputs(n)}
    return len(eb - ea), len(ea - eb)
