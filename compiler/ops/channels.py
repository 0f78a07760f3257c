"""Per-channel and channel-moving ops: ``scale``, ``layer_scale``, ``affine``, ``shortcut_a``,
``chunk``, ``channel_shuffle``."""
from __future__ import annotations

import math

from archc.compiler.ops.base import Arg, Op, Parameter, ShapeFault, function, module, spatial
from archc.compiler.ops.linear import LAYERS
from archc.compiler.ops.registry import register_op


@register_op
class Scale(Op):
    name = "scale"
    doc = "a learned per-channel multiplier `weight`, initialised to 1 (DSNet's weighted shortcuts)"
    family = "scale"
    example = "scale"
    weights = ("weight",)
    fresh = True

    def tensors(self, a, ins):
        return {"weight": (ins[0][0],)}

    def lower(self, a, ins):
        return module(LAYERS + "Scale", ins[0][0])


@register_op
class LayerScale(Op):
    name = "layer_scale"
    doc = ("a learned per-channel multiplier stored as the tensor itself (C×1×1), initialised to `init`: "
           "torchvision ConvNeXt's `layer_scale`")
    family = "scale"
    args = (Arg("init", "float", 1e-6),)
    example = "layer_scale(0.5)"
    weights = ("",)  # the tensor itself, stored under the label
    fresh = True

    def tensors(self, a, ins):
        return {"": (ins[0][0],) + (1,) * (len(ins[0]) - 1)}  # C×1×1 on a map, C on a vector

    def lower(self, a, ins):
        return Parameter(self.tensors(a, ins)[""], a.init)

    def label(self, a):
        return f"{a.init:g}"


@register_op
class Affine(Op):
    name = "affine"
    doc = ("a fixed per-channel affine map x * scale + shift, no parameters (torchvision's transform_input "
           "of GoogLeNet and Inception v3)")
    family = "scale"
    args = (Arg("scale", "floats"), Arg("shift", "floats"))
    example = "affine([0.5, 1, 2, 1.5], [0, 0.1, -0.1, 1])"
    fresh = True

    def infer(self, a, ins):
        c = ins[0][0]
        for arg in ("scale", "shift"):
            if len(getattr(a, arg)) != c:
                raise ShapeFault(f"`affine` needs one `{arg}` per channel", expected=f"{c} values",
                                 found=f"{len(getattr(a, arg))}")
        return ins[0]

    def other_ops(self, a, ins, out):
        return 2 * math.prod(out)

    def lower(self, a, ins):
        return module(LAYERS + "Affine", a.scale, a.shift)


@register_op
class ShortcutA(Op):
    name = "shortcut_a"
    doc = "He et al. 2016 option A: subsample by `stride`, zero-pad channels up to `out`"
    family = "shape"
    args = (Arg("out", "pos_int"), Arg("stride", "pos_int", 1))
    example = "shortcut_a(8, stride = 2)"

    def infer(self, a, ins):
        c, h, w = spatial(ins[0], self.name)
        if a.out < c:
            raise ShapeFault("`shortcut_a` can only widen", expected=f"out >= {c}", found=str(a.out),
                             hint="use a 1×1 conv projection to reduce channels")
        return (a.out, -(-h // a.stride), -(-w // a.stride))

    def other_ops(self, a, ins, out):
        return 0

    def stride(self, a):
        return (a.stride, a.stride)

    def lower(self, a, ins):
        return module(LAYERS + "ShortcutA", a.out, stride=a.stride)

    def label(self, a):
        return f"{'' if a.stride == 1 else f'/{a.stride} '}→ {a.out}"


@register_op
class Chunk(Op):
    name = "chunk"
    doc = ("channel group `index` of `groups` equal groups, a view (ShuffleNet's channel split: "
           "`concat { chunk(2, 0) \\n { chunk(2, 1); ... } }`)")
    family = "shape"
    args = (Arg("groups", "pos_int"), Arg("index", "nonneg_int"))
    example = "chunk(2, 1)"
    view = True

    def infer(self, a, ins):
        c = ins[0][0]
        if c % a.groups:
            raise ShapeFault(f"`chunk` cannot split {c} channels into {a.groups} equal groups",
                             expected=f"channels divisible by {a.groups}", found=str(c))
        if a.index >= a.groups:
            raise ShapeFault(f"`chunk` index {a.index} is out of range", expected=f"0 .. {a.groups - 1}",
                             found=str(a.index))
        return (c // a.groups, *ins[0][1:])

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        size = ins[0][0] // a.groups
        return function("torch.narrow", 1, a.index * size, size)

    def label(self, a):
        return f"{a.index} of {a.groups}"


@register_op
class ChannelShuffle(Op):
    name = "channel_shuffle"
    doc = "interleave `groups` channel groups (ShuffleNet; torch.nn.ChannelShuffle)"
    family = "shape"
    args = (Arg("groups", "pos_int"),)
    example = "channel_shuffle(2)"
    fresh = True

    def infer(self, a, ins):
        c = spatial(ins[0], self.name)[0]
        if c % a.groups:
            raise ShapeFault(f"`channel_shuffle` cannot split {c} channels into {a.groups} groups",
                             expected=f"channels divisible by {a.groups}", found=str(c))
        return ins[0]

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        return module("torch.nn.ChannelShuffle", a.groups)

    def label(self, a):
        return str(a.groups)
