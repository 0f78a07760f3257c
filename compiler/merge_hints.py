"""Merge errors' hints: which branch of a mismatched ``add``/``concat``/``mul`` to change, and how.

The graph does not record a merge's input, so the branches are recovered from it: walking
back from the branch ends, they meet at the merge input. An ``add`` hint projects the
pass-through (identity) branch onto the shape of the branch that does work, with the 1×1
conv and stride that produce it exactly; a ``concat`` hint names the odd branch out and the
node in it that changed the height/width.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from archc.compiler.ir import Graph
from archc.compiler.ops import fmt


def merge_hint(g: Graph, merge: str, fix) -> tuple[str, str | None]:
    """(the ``found:`` line naming every branch's shape, the hint) for a failed merge; ``fix(g,
    branches, file)`` is the merge op's own (``add``: a projection, ``mul``: a gate ...)."""
    bs = _branches(g, merge)
    found = "; ".join(f"branch {b.index} (ending at `{b.end}`) {fmt(b.shape)}" for b in bs)
    return found, fix(g, bs, g.node(merge).span.file)


# ---- merge branches, recovered from the graph ------------------------------------------------
@dataclass(frozen=True)
class _Branch:
    index: int
    end: str  # the node it ends at: the merge input itself for an empty branch (`{}`)
    shape: tuple
    path: tuple  # its nodes after the merge input, in order (first inputs when it nests a merge)
    start: str  # the merge input
    passthrough: bool  # no ops but `identity`: a residual's identity shortcut


def _name(b: _Branch) -> str:
    return f"branch {b.index} (`{b.end}`)"


def _branches(g: Graph, merge: str) -> list[_Branch]:
    ends = g.inputs(merge)
    start = _merge_input(g, ends)
    out = []
    for i, end in enumerate(ends):
        path = _path(g, end, start)
        out.append(_Branch(i, end, g.shapes[end], path, start, all(g.node(n).spec.passthrough for n in path)))
    return out


def _merge_input(g: Graph, ends) -> str:
    """The node every branch starts from. The IR does not record it, but every backward path
    from the branch ends passes through it, so walking back latest-node-first shrinks the
    frontier to that one node before reaching anything older."""
    pos = {n: i for i, n in enumerate(g.topo())}
    frontier = set(ends)
    while len(frontier) > 1:
        latest = max(frontier, key=pos.__getitem__)
        frontier.remove(latest)
        frontier.update(g.inputs(latest))
    return frontier.pop()


def _path(g: Graph, end: str, start: str) -> tuple:
    path = []
    while end != start and g.inputs(end):
        path.append(end)
        end = g.inputs(end)[0]
    return tuple(reversed(path))


# ---- add: project the branches that do not match the working branch -------------------------
def add_fix(bs: list[_Branch]) -> str:
    maps = [b for b in bs if len(b.shape) == 3]
    if maps and len(maps) < len(bs):
        flat = next(b for b in bs if len(b.shape) != 3)
        return (f"{_name(flat)} is flat ({fmt(flat.shape)}) while {_name(maps[0])} is a feature map "
                f"({fmt(maps[0].shape)}): every `add` branch must be the same kind; flatten after the `add`")
    # The branches that compute something set the shape; an identity shortcut adapts to them.
    working = [b for b in bs if not b.passthrough] or bs
    target = max(working, key=lambda b: (b.shape[0], -math.prod(b.shape[1:])))
    return "; ".join(_projection(b, target) for b in bs if b.shape != target.shape)


def _projection(b: _Branch, target: _Branch) -> str:
    gives = f"passes {fmt(b.shape)} through unchanged" if b.passthrough else f"gives {fmt(b.shape)}"
    head = f"{_name(b)} {gives} but {_name(target)} gives {fmt(target.shape)}"
    proj = _projection_op(b.shape, target.shape)
    if proj is None:
        size, want = fmt(b.shape[1:]), fmt(target.shape[1:])
        return (f"{head}, and no 1×1 projection takes {size} to {want} (with stride s it gives "
                f"(size - 1) // s + 1): give the branches matching strides and padding")
    if b.passthrough:
        return f"{head}: replace branch {b.index} with the projection `{{ {proj} }}`"
    return f"{head}: end branch {b.index} with the projection `{proj}`"


def _projection_op(shape: tuple, target: tuple) -> str | None:
    """A 1×1 conv + BN (``linear`` for vectors) taking ``shape`` to ``target``, or None."""
    if len(shape) == 1:
        return f"linear({target[0]}, bias = false)"
    sh, sw = (projection_stride(n, t) for n, t in zip(shape[1:], target[1:]))
    if sh is None or sw is None:
        return None
    stride = "" if sh == sw == 1 else f", stride = {sh}" if sh == sw else f", stride = [{sh}, {sw}]"
    return f"conv({target[0]}, 1{stride}, bias = false); bn"


def projection_stride(size: int, want: int) -> int | None:
    """The stride of an unpadded 1×1 conv taking ``size`` to ``want``: its output (size-1)//s+1
    falls as s grows and ceil(size / want) is the least s reaching ``want`` or below, so it is
    the only candidate."""
    s = -(-size // want)
    return s if (size - 1) // s + 1 == want else None


# ---- concat: name the odd branch out and the node in it that changed the size ---------------
def concat_fix(g: Graph, bs: list[_Branch], file: str) -> str | None:
    flat = [_name(b) for b in bs if len(b.shape) != 3]
    if flat:
        return (f"{', '.join(flat)} {'is' if len(flat) == 1 else 'are'} flat while others are feature maps: "
                "flatten after the concat, not inside it")
    origin = g.shapes[bs[0].start][1:]
    common = _majority([b.shape[1:] for b in bs], origin)
    rest = [str(b.index) for b in bs if b.shape[1:] == common]
    many = len(rest) > 1
    verb = ("keep" if many else "keeps") if common == origin else ("are" if many else "is")
    others = f"branch{'es' if many else ''} {', '.join(rest)} {verb} {fmt(common)}"
    return "; ".join(_odd_branch(g, b, others, common == origin, file) for b in bs if b.shape[1:] != common)


def _majority(sizes: list, origin: tuple) -> tuple:
    """The size most branches have; on a tie the merge input's size, then the larger one."""
    counts = Counter(sizes)
    return max(counts, key=lambda s: (counts[s], s == origin, math.prod(s)))


def _odd_branch(g: Graph, b: _Branch, others: str, kept: bool, file: str) -> str:
    changes = [n for n in b.path if _resizes(g, n)]
    if not changes:  # the others resized and this one did not
        return (f"{_name(b)} keeps {fmt(b.shape[1:])} while {others}: "
                f"resize it the same way, or keep the size in every branch")
    return f"{_name(b)} is {fmt(b.shape[1:])} while {others}: " + "; ".join(_change(g, n, kept, file) for n in changes)


def _resizes(g: Graph, n: str) -> bool:
    ins = g.inputs(n)
    return len(ins) == 1 and len(g.shapes[ins[0]]) == 3 and g.shapes[ins[0]][1:] != g.shapes[n][1:]


def _change(g: Graph, n: str, kept: bool, file: str) -> str:
    """What node ``n`` did to the size and, when the other branches kept theirs, how to undo it."""
    node = g.node(n)
    before, after = g.shapes[g.inputs(n)[0]][1:], g.shapes[n][1:]
    where = str(node.span) if node.span.file != file else f"line {node.span.line}"
    what = f"its {_called(node)} at {where}"
    stride, pad = _stride_of(node), _keeping_pad(node)
    if stride not in (None, (1, 1)):
        s = stride[0] if stride[0] == stride[1] else list(stride)
        fix = "give it stride 1, or downsample every branch"
        return f"{what} downsampled {fmt(before)} → {fmt(after)} with stride {s}: {fix if kept else _MATCH}"
    if pad is None:
        return (f"{what} resized {fmt(before)} → {fmt(after)}: "
                "resize every branch the same way, or move it after the concat")
    verb = "shrank" if math.prod(after) < math.prod(before) else "grew"
    return f"{what} {verb} {fmt(before)} → {fmt(after)}: " + (f"`pad = {pad}` keeps the size" if kept else _MATCH)


_MATCH = "match the strides and padding of the other branches"


def _called(node) -> str:
    """A node as the user finds it: maxpool `b1.pool`, or `maxpool` when the id names the op."""
    last = node.id.rsplit(".", 1)[-1]
    return f"`{node.id}`" if re.fullmatch(re.escape(node.op) + r"(_\d+)?", last) else f"{node.op} `{node.id}`"


def _stride_of(node) -> tuple | None:
    return node.spec.stride(node.args)


def _keeping_pad(node) -> str | None:
    """The padding with which a stride-1 conv or pool keeps its input size: d*(k-1)/2 a side."""
    return node.spec.keeping_pad(node.args)


# ---- mul: a gate scales a map; it is never projected ------------------------------------------------
def gate_fix(bs: list[_Branch]) -> str:
    """A ``mul`` is a gate (squeeze-excitation): the small branch must give the map's channels at
    1×1 (or at the map's own size), so the fix widens or pools the gate, never projects the map."""
    target = max(bs, key=lambda b: math.prod(b.shape))
    fixes = []
    for b in bs:
        if b is target:
            continue
        if len(b.shape) != len(target.shape):
            fixes.append(f"{_name(b)} is {fmt(b.shape)} but {_name(target)} is {fmt(target.shape)}: "
                         "gate before flattening, or flatten both")
            continue
        if b.shape[0] != target.shape[0]:
            fixes.append(f"the gate {_name(b)} gives {b.shape[0]} channels but {_name(target)} has "
                         f"{target.shape[0]}: end the gate with `conv({target.shape[0]}, 1)`")
        if len(b.shape) == 3 and any(x not in (1, y) for x, y in zip(b.shape[1:], target.shape[1:])):
            fixes.append(f"the gate {_name(b)} is {fmt(b.shape[1:])} against the map's {fmt(target.shape[1:])}: "
                         "squeeze it to 1×1 with `gap`, or keep the map's size")
    return "; ".join(fixes)
