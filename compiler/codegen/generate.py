"""Graph IR -> ``torch.fx.GraphModule``: module tree, lowering, outlining, initialisation."""
from __future__ import annotations

import torch.fx as fx
import torch.nn as nn

from archc.compiler.codegen.init import initialise
from archc.compiler.codegen.layers import AuxHeads
from archc.compiler.codegen.lower import lower
from archc.compiler.codegen.nest import nest
from archc.compiler.codegen.outline import outline
from archc.compiler.codegen.tree import build_tree
from archc.compiler.ir import Graph


class _Tree(fx.GraphModule):
    """A GraphModule that keeps its whole module tree.

    fx keeps only the modules the graph calls, under plain nn.Module containers. Keep them all:
    the containers print like torchvision's, and modules (and tensors) that only checkpoint
    regions or the auxiliary heads use must stay registered at their node ids."""

    def __init__(self, root: nn.Module, graph: fx.Graph, class_name: str = "GraphModule"):
        super().__init__(root, graph, class_name)
        self._modules.clear()
        for name, child in root.named_children():
            self.add_module(name, child)
        # fx registered the tensors the top graph reads, in its order; register all (a layer_scale only a
        # region reads too) in the tree's node order, so that parameters() has the same order with and
        # without checkpointing (an optimizer's state is matched by position)
        self._parameters.clear()
        for name, tensor in root.named_parameters(recurse=False):
            self.register_parameter(name, tensor)

    def _deepcopy_init(self):
        name = type(self).__name__  # fx's default would rename the copy "GraphModule"
        return lambda res, root, graph: fx.GraphModule.__init__(res, root, graph, name)

    def __copy__(self):
        twin = type(self).__bases__[0](self, self.graph, type(self).__name__)  # fx's copy drops uncalled modules
        twin.meta = self.meta
        return twin

    def __str__(self) -> str:
        return nn.Module.__repr__(self)


class ArchModule(_Tree):
    """The built network: an fx GraphModule over the whole module tree.

    ``print(model)`` shows the tree only, like torchvision's models; ``model.code`` is the
    generated forward with shape comments. ``model.meta["archc"]["values"]`` maps each IR
    node to the fx value(s) holding it (see ``probe.record_shapes``).
    """


class Scope(_Tree):
    """A scope that runs alone (``model.layer1(x)``): its forward is its own part of the graph."""

    def __init__(self, root: nn.Module, graph: fx.Graph, class_name: str = "Block"):
        super().__init__(root, graph, class_name)
        self.kind = class_name

    def __getitem__(self, name) -> nn.Module:  # model.layer1[0], as with torchvision's Sequential
        return self._modules[str(name)]


def generate(g: Graph) -> ArchModule:
    """Build the network of a compiled graph, initialised as ``g.init`` says."""
    tree = build_tree(g)
    flat, values = lower(g)
    root, bodies = outline(flat, tree)
    nest(root, tree)
    for path, body in bodies.items():  # the auxiliary heads' scopes are callable too
        region = tree.get_submodule(path)
        if isinstance(region, AuxHeads):
            nest(body, tree)
            region.__dict__["fn"] = fx.GraphModule(tree, body, "Region")
    model = ArchModule(tree, root, g.name)
    model.meta["archc"] = {"values": values, "input": tuple(g.input_shape)}
    initialise(model, g)
    return model
