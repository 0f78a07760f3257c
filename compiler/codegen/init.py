"""Initialising the built model as the arch's ``init`` scheme says (rules: compiler/init.py).

``init_plan`` resolves, per learned tensor, which ``torch.nn.init`` function starts it and with
what arguments; ``initialise`` runs that plan, and ``emit_python`` writes the same plan as data
for the emitted ``build()``, so both start every tensor alike.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from archc.compiler.init import rule_for
from archc.compiler.ir import Graph


def init_plan(model: nn.Module, g: Graph) -> list[tuple[str, str, dict]]:
    """(tensor path, initializer name, keyword arguments) for every tensor a rule matches."""
    plan = []
    for n in g.topo():
        node = g.node(n)
        for name, tensor in _tensors(model, node):
            rule = rule_for(g.init, node.op, n, name)
            if rule is not None:
                plan.append((f"{n}.{name}" if name else n, rule.fn, rule.arguments(tuple(tensor.shape))))
    return plan


def _tensors(model: nn.Module, node) -> list[tuple[str, torch.Tensor]]:
    """The node's learned tensors by the names its op declares (``weights``)."""
    if not node.spec.weights:
        return []
    if node.spec.weights == ("",):  # the tensor is stored at the node id itself (layer_scale)
        return [("", model.get_parameter(node.id))]
    return list(model.get_submodule(node.id).named_parameters(recurse=False))


def initialise(model: nn.Module, g: Graph) -> None:
    with torch.no_grad():
        for path, fn, kwargs in init_plan(model, g):
            getattr(nn.init, fn + "_")(model.get_parameter(path), **kwargs)
