"""Scopes as callable submodules: ``model.features(x)``, ``model.layer1(x)``, as in torchvision.

The lowered graph is flat. Here, outer scopes first, every scope whose nodes form one
contiguous run with exactly one input and one output value becomes a ``Scope``: a GraphModule
over its own children whose forward is that run, called by its parent's graph. Hooks on a
scope then fire (torchinfo shows per-block shapes), and a stage can serve as a feature
extractor. A scope that reads or hands on several values (a DenseNet layer passes its pieces
on) stays a plain ``Block``, whose forward says why it cannot be called alone.
"""
from __future__ import annotations

from collections import deque

import torch.fx as fx
import torch.nn as nn

from archc.compiler.codegen.comments import new_graph
from archc.compiler.codegen.layers import Block
from archc.compiler.codegen.lower import ARCH_ID, NHWC, SHAPE, py_name
from archc.compiler.codegen.outline import OWNER, boundary

MAX_SCOPES = 4096  # callable scopes per model, each a GraphModule; beyond it scopes stay inline


def nest(graph: fx.Graph, tree: nn.Module, runner: nn.Module | None = None) -> None:
    """Make the callable scopes of ``graph`` (module targets relative to ``tree``'s root) Scope
    calls, breadth first. ``runner``: the GraphModule already running ``graph``, to recompile."""
    from archc.compiler.codegen.generate import Scope  # generate.py builds on this module
    queue, made = deque([(graph, "", runner)]), 0
    while queue:
        g, outer, module = queue.popleft()
        changed = False
        for path in _children(g, outer):
            box = tree.get_submodule(path)
            if not isinstance(box, Block):  # a leaf op's module owns this path
                continue
            run = [n for n in g.nodes if _owner(n).startswith(path + ".")]
            box.why = _not_callable(g, run) or (f"over {MAX_SCOPES} callable scopes" if made >= MAX_SCOPES else "")
            if box.why:
                continue
            rel = path[len(outer) + 1:] if outer else path
            body = _body(run, rel)
            scope = Scope(box, body, box.kind)
            parent, _, leaf = path.rpartition(".")
            tree.get_submodule(parent)._modules[leaf] = scope
            _call(g, run, rel, path)
            queue.append((body, path, scope))
            made, changed = made + 1, True
        if changed and module is not None:
            module.recompile()


def _owner(n: fx.Node) -> str:
    """The scope path a node belongs to: its IR node id, or the region module it calls."""
    return n.meta.get(OWNER) or n.meta.get(ARCH_ID, "")


def _children(g: fx.Graph, prefix: str) -> list[str]:
    """The scopes directly under ``prefix`` that nodes of ``g`` belong to, in order of appearance."""
    depth = prefix.count(".") + 1 if prefix else 0
    seen = {}
    for n in g.nodes:
        owner = _owner(n)
        parts = owner.split(".")
        if len(parts) > depth + 1 and (not prefix or owner.startswith(prefix + ".")):
            seen.setdefault(".".join(parts[:depth + 1]), None)
    return list(seen)


def _not_callable(g: fx.Graph, run: list) -> str:
    """Why ``run`` cannot be one module call; empty when it can."""
    order = {n: i for i, n in enumerate(g.nodes)}
    if order[run[-1]] - order[run[0]] + 1 != len(run):
        return "its nodes are interleaved with others"
    ins, outs = boundary(run)
    if len(ins) != 1:
        return f"it reads {len(ins)} values from outside"
    if len(outs) != 1:
        return f"{len(outs)} of its values are read outside it"
    return ""


def _body(run: list, rel: str) -> fx.Graph:
    """The run as a graph of its own, its module targets relative to the scope at ``rel``."""
    ins, outs = boundary(run)
    body, env = new_graph(), {}
    env[ins[0]] = body.placeholder("x")
    env[ins[0]].meta.update({k: ins[0].meta[k] for k in (SHAPE, NHWC) if k in ins[0].meta})
    for n in run:
        env[n] = body.node_copy(n, env.__getitem__)
        if n.op in ("call_module", "get_attr"):
            env[n].target = n.target[len(rel) + 1:]
    body.output(env[outs[0]])
    return body


def _call(g: fx.Graph, run: list, target: str, path: str) -> None:
    """Replace ``run`` in ``g`` by one call of the scope module at ``target`` (``path`` from the root)."""
    ins, outs = boundary(run)
    with g.inserting_before(run[0]):
        call = g.create_node("call_module", target, (ins[0],), name=py_name(target))
    call.meta.update({k: outs[0].meta[k] for k in (SHAPE, NHWC) if k in outs[0].meta})
    call.meta[OWNER] = path
    outs[0].replace_all_uses_with(call)
    for n in reversed(run):
        g.erase_node(n)
