"""The graph's ends: ``input`` and ``output`` (made by the compiler, not callable in .arch files)."""
from __future__ import annotations

from archc.compiler.ops.base import Arg, Op, Placeholder, Result
from archc.compiler.ops.registry import register_op


@register_op
class Input(Op):
    name = "input"
    doc = "the network's input tensor (declared by `input [C, H, W]`)"
    family = "io"
    arity = (0, 0)
    args = (Arg("shape", "shape"),)
    glyph = "input"

    def infer(self, a, ins):
        return a.shape

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        return Placeholder()


@register_op
class Output(Op):
    name = "output"
    doc = "the network's output"
    family = "io"
    view = True
    glyph = "output"

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        return Result()
