"""Shape comments in the generated forward: ``layer1_0_conv1 = ...  # 64×56×56``."""
from __future__ import annotations

import dataclasses
import re

import torch.fx as fx

from archc.compiler.codegen.lower import NHWC, SHAPE
from archc.compiler.ops import fmt

_ASSIGN = re.compile(r"^\s+(\w+) = ")


class ShapeComments(fx.graph.CodeGen):
    """fx's code generator, plus each computed value's static shape (batch excluded).

    Comments go at the end of a line, after fx's ``;  x = None`` clean-ups, so the code
    and its line numbers are unchanged.
    """

    def _gen_python_code(self, nodes, root_module, namespace, **kwargs):
        code = super()._gen_python_code(nodes, root_module, namespace, **kwargs)
        shapes = {n.name: _shape(n) for n in nodes if SHAPE in n.meta}
        args = ", ".join(f"{n.name}: {shapes[n.name]}" for n in nodes
                         if n.op == "placeholder" and n.name in shapes)
        lines = []
        for line in code.src.split("\n"):
            m = _ASSIGN.match(line)
            if m and m.group(1) in shapes:
                line += f"  # {shapes[m.group(1)]}"
            elif line.startswith("def ") and args:
                line += f"  # {args}"
            lines.append(line)
        return dataclasses.replace(code, src="\n".join(lines))


def _shape(n: fx.Node) -> str:
    if n.meta.get(NHWC):  # a permuted map: say what the tensor's dimensions are
        c, *hw = n.meta[SHAPE]
        return f"{fmt((*hw, c))} channels-last"
    return fmt(n.meta[SHAPE])


def new_graph() -> fx.Graph:
    g = fx.Graph()
    g.set_codegen(ShapeComments())
    return g
