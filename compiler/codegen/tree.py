"""The module tree: every op's module at its node id, inside ``Block`` containers.

``layer1.0.conv1`` lands at ``model.layer1[0].conv1`` (state-dict key
``layer1.0.conv1.weight``); a container opened by a block instance prints under the
block's name, so ``print(model)`` reads like torchvision's.
"""
from __future__ import annotations

import torch.nn as nn

from archc.compiler.codegen import inplace
from archc.compiler.codegen.layers import Block
from archc.compiler.codegen.modules import Ctor, ParamCtor, ctor
from archc.compiler.ir import Graph


def module_plan(g: Graph) -> list[tuple[str, Ctor | ParamCtor]]:
    """(node id, constructor) for each op that stores a module or a tensor, in topological order."""
    plan = []
    for n in g.topo():
        node, ins = g.node(n), g.inputs(n)
        in_place = len(ins) == 1 and inplace.overwritable(g, ins[0], n)
        c = ctor(node.spec, node.args, [g.shapes[i] for i in ins], in_place)
        if c is not None:
            plan.append((n, c))
    return plan


def scope_kinds(g: Graph) -> dict[str, str]:
    """Container path -> class name shown by print: the block instantiated there, else Block."""
    kinds = {}
    for node in g.nodes():
        for frame in node.blocks:
            kinds.setdefault(frame.path, "".join(w.title() for w in frame.name.split("_")))
    return kinds


def build_tree(g: Graph) -> Block:
    """A root Block holding every op's module at its node id (names were checked by compiler/scope.py)."""
    root, kinds = Block(g.name), scope_kinds(g)
    for path, c in module_plan(g):
        install(root, path, c.make(), kinds)
    return root


def install(root: nn.Module, path: str, module: nn.Module | nn.Parameter, kinds: dict[str, str]) -> None:
    """Put ``module`` (or a learned tensor) at dotted ``path``, opening the containers on the way."""
    *parents, leaf = path.split(".")
    box = root
    for depth, name in enumerate(parents, 1):
        if name not in box._modules:
            box.add_module(name, Block(kinds.get(".".join(parents[:depth]), "Block")))
        box = box._modules[name]
    if leaf in box._modules or leaf in box._parameters:
        raise AssertionError(f"internal: two modules at `{path}`")
    if isinstance(module, nn.Parameter):
        box.register_parameter(leaf, module)
    else:
        box.add_module(leaf, module)
