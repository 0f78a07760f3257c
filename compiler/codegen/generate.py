"""Graph IR -> ``torch.fx.GraphModule``: module tree, lowering, outlining, initialisation."""
from __future__ import annotations

import torch.fx as fx
import torch.nn as nn

from archc.compiler.codegen.init import initialise
from archc.compiler.codegen.lower import lower
from archc.compiler.codegen.outline import outline
from archc.compiler.codegen.tree import build_tree
from archc.compiler.ir import Graph


class ArchModule(fx.GraphModule):
    """The built network: an fx GraphModule over the whole module tree.

    ``print(model)`` shows the tree only, like torchvision's models; ``model.code`` is the
    generated forward with shape comments. ``model.meta["archc"]["values"]`` maps each IR
    node to the fx value(s) holding it (see ``probe.record_shapes``).
    """

    def __init__(self, root: nn.Module, graph: fx.Graph, class_name: str = "GraphModule"):
        super().__init__(root, graph, class_name)
        # fx keeps only the modules the root graph calls, under plain nn.Module containers.
        # Keep the whole tree: its Block containers print like torchvision, and modules that
        # only checkpoint regions call must stay registered at their node ids.
        self._modules.clear()
        for name, child in root.named_children():
            self.add_module(name, child)

    def _deepcopy_init(self):
        name = type(self).__name__  # fx's default would rename the copy "GraphModule"
        return lambda res, root, graph: fx.GraphModule.__init__(res, root, graph, name)

    def __copy__(self) -> "ArchModule":
        twin = ArchModule(self, self.graph, type(self).__name__)  # fx's copy would drop region-only modules
        twin.meta = self.meta
        return twin

    def __str__(self) -> str:
        return nn.Module.__repr__(self)


def generate(g: Graph) -> ArchModule:
    """Build the network of a compiled graph, initialised as ``g.init`` says."""
    tree = build_tree(g)
    flat, values = lower(g)
    root, _ = outline(flat, tree)
    model = ArchModule(tree, root, g.name)
    model.meta["archc"] = {"values": values, "input": tuple(g.input_shape)}
    initialise(model, g)
    return model
