"""Dense layers and plumbing: ``linear``, ``channel_linear``, ``flatten``, ``identity``, ``dropout``, ``drop_path``."""
from __future__ import annotations

import math

from archc.compiler.ops.base import Alias, Arg, Op, ShapeFault, fmt, function, module, spatial
from archc.compiler.ops.registry import register_op

LAYERS = "archc.compiler.codegen.layers."  # archc's own torch modules, for what torch.nn lacks


@register_op
class Linear(Op):
    name = "linear"
    doc = "fully connected layer on a flat feature vector (torch.nn.Linear)"
    family = "linear"
    args = (Arg("out", "pos_int"), Arg("bias", "bool", True))
    example = "flatten; linear(5)"
    weights = ("weight", "bias")
    fresh = True

    def infer(self, a, ins):
        if len(ins[0]) != 1:
            raise ShapeFault("`linear` needs a flat feature vector", expected="F (after flatten)",
                             found=fmt(ins[0]), hint="insert `gap; flatten` (or `flatten`) before it, or use "
                                                     "`channel_linear` to apply it to every pixel's channels")
        return (a.out,)

    def tensors(self, a, ins):
        return {"weight": (a.out, ins[0][0]), **({"bias": (a.out,)} if a.bias else {})}

    def macs(self, a, ins, out):
        return a.out * ins[0][0]

    def other_ops(self, a, ins, out):
        return a.out if a.bias else 0

    def lower(self, a, ins):
        return module("torch.nn.Linear", ins[0][0], a.out, bias=a.bias)

    def label(self, a):
        return f"→ {a.out}"


@register_op
class ChannelLinear(Linear):
    name = "channel_linear"
    doc = ("a Linear over the channels of every pixel (torchvision ConvNeXt's pointwise layers: weight "
           "[out, in], run channels-last); the same function as a 1×1 conv")
    example = "channel_linear(8)"

    def infer(self, a, ins):
        _, h, w = spatial(ins[0], self.name)
        return (a.out, h, w)

    def macs(self, a, ins, out):
        return math.prod(out) * ins[0][0]

    def other_ops(self, a, ins, out):
        return math.prod(out) if a.bias else 0

    def lower(self, a, ins):
        return module("torch.nn.Linear", ins[0][0], a.out, bias=a.bias, layout="nhwc")


@register_op
class Flatten(Op):
    name = "flatten"
    doc = "C×H×W -> C*H*W features (torch.flatten(x, 1))"
    family = "shape"
    example = "flatten"
    view = True

    def infer(self, a, ins):
        return (math.prod(ins[0]),)

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        return function("torch.flatten", 1)


@register_op
class Identity(Op):
    name = "identity"
    doc = "the input, unchanged (a skip connection's branch)"
    family = "shape"
    example = "identity"
    view = True
    passthrough = True

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        return Alias()


@register_op
class Dropout(Op):
    name = "dropout"
    doc = "zero each element with probability p in training, scaling the rest by 1/(1-p) (torch.nn.Dropout)"
    family = "regularizer"
    args = (Arg("p", "prob", 0.5),)
    example = "dropout(0.2)"

    def lower(self, a, ins):
        return module("torch.nn.Dropout", a.p, layout="any")

    def label(self, a):
        return f"{a.p:g}"


@register_op
class DropPath(Op):
    name = "drop_path"
    doc = "stochastic depth: drop the whole sample's value with probability p in training (also `@drop_path(p)`)"
    family = "regularizer"
    args = (Arg("p", "prob"),)
    example = "drop_path(0.2)"

    def lower(self, a, ins):
        return module(LAYERS + "DropPath", a.p, layout="any")

    def label(self, a):
        return f"{a.p:g}"
