"""Outlining: each checkpoint region of the flat fx graph becomes one ``CheckpointRegion`` call.

The region's nodes (contiguous, by ``lower.schedule``) move into a body graph whose
``call_module`` targets are unchanged, so the body calls the model's own modules and the
state dict keeps the node ids. The root graph calls ``<scope>.checkpoint(inputs...)``,
where ``<scope>`` is the deepest container holding all the region's modules (for a
DenseNet layer, ``features.denseblock1.denselayer1.checkpoint``).
"""
from __future__ import annotations

import itertools
import operator

import torch.fx as fx
import torch.nn as nn

from archc.compiler.codegen.comments import new_graph
from archc.compiler.codegen.layers import AuxHeads, CheckpointRegion
from archc.compiler.codegen.lower import NHWC, REGION, SHAPE

OWNER = "archc_owner"  # meta: the module path a region call belongs to (its scope's, for nest.py)


def outline(flat: fx.Graph, tree: nn.Module) -> tuple[fx.Graph, dict]:
    """The root graph, and ``{region module path: body graph}`` (emit_python writes these as methods)."""
    root, env, bodies = new_graph(), {}, {}
    # list(): fx's node iterator restarts when called again after StopIteration, as groupby does
    for region, run in itertools.groupby(list(flat.nodes), key=lambda n: n.meta.get(REGION, 0)):
        run = list(run)
        if not region:
            for n in run:
                env[n] = root.node_copy(n, env.__getitem__)
            continue
        ins, outs = boundary(run)
        path, body = _region(run, ins, outs, tree)
        bodies[path] = body
        _call(root, path, ins, outs, env)
    return root, bodies


def boundary(run: list) -> tuple[list, list]:
    """The region's inputs (values from before it) and outputs (values read after it)."""
    inside = set(run)
    ins = list(dict.fromkeys(a for n in run for a in n.all_input_nodes if a not in inside))
    outs = [n for n in run if any(u not in inside for u in n.users)]
    return ins, outs


def _region(run: list, ins: list, outs: list, tree: nn.Module) -> tuple[str, fx.Graph]:
    """Build the body graph, install its CheckpointRegion in the tree; return its path and the body."""
    body, benv = new_graph(), {}
    for a in ins:
        benv[a] = body.placeholder(a.name)
        benv[a].meta.update({k: a.meta[k] for k in (SHAPE, NHWC) if k in a.meta})
    for n in run:
        benv[n] = body.node_copy(n, benv.__getitem__)
    body.output(benv[outs[0]] if len(outs) == 1 else tuple(benv[o] for o in outs))

    targets = [n.target for n in run if n.op == "call_module"]
    aux = run[0].meta[REGION] < 0  # an auxiliary head
    scope = "" if aux else _common_scope(targets)
    box = tree.get_submodule(scope)
    name = _free_name(box, "aux_heads" if aux else "checkpoint")  # unique, so `bodies` keys never clash
    fn = fx.GraphModule(tree, body, "Region")
    if aux:
        region = AuxHeads(fn)
    else:
        norms = [m for m in map(tree.get_submodule, targets) if isinstance(m, nn.BatchNorm2d)]
        region = CheckpointRegion(fn, norms, ", ".join(t[len(scope) + 1:] if scope else t for t in targets))
    box.add_module(name, region)
    return f"{scope}.{name}" if scope else name, body


def _free_name(box: nn.Module, base: str) -> str:
    for i in itertools.count():
        name = base if i == 0 else f"{base}_{i}"
        if not hasattr(box, name):
            return name


def _common_scope(targets: list[str]) -> str:
    parents = [t.split(".")[:-1] for t in targets] or [[]]
    common = []
    for parts in zip(*parents):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _call(root: fx.Graph, path: str, ins: list, outs: list, env: dict) -> None:
    """``out = scope.checkpoint(ins...)``, or one ``getitem`` per output when there are several.
    They belong (``OWNER``) to the region module's scope, for nest.py."""
    args = tuple(env[a] for a in ins)
    if len(outs) == 1:
        env[outs[0]] = root.create_node("call_module", path, args, name=outs[0].name)
        env[outs[0]].meta.update({k: outs[0].meta[k] for k in (SHAPE, NHWC) if k in outs[0].meta}, **{OWNER: path})
        return
    call = root.create_node("call_module", path, args, name=path.replace(".", "_"))
    call.meta[OWNER] = path
    for i, o in enumerate(outs):
        env[o] = root.create_node("call_function", operator.getitem, (call, i), name=o.name)
        env[o].meta.update({k: o.meta[k] for k in (SHAPE, NHWC) if k in o.meta}, **{OWNER: path})
