"""Normalisations: ``bn`` (BatchNorm2d), ``layernorm`` (over channels, torchvision's LayerNorm2d) and
``groupnorm`` (GroupNorm)."""
from __future__ import annotations

import math

from archc.compiler.ops.base import Arg, Op, ShapeFault, fmt, module, spatial
from archc.compiler.ops.registry import register_op


class _Norm(Op):
    """A normalisation with an optional learned weight and bias per channel (``affine``)."""
    family = "norm"
    weights = ("weight", "bias")
    fresh = True

    def tensors(self, a, ins):
        return {"weight": (ins[0][0],), "bias": (ins[0][0],)} if a.affine else {}

    def other_ops(self, a, ins, out):
        return 5 * math.prod(out)  # mean, variance, normalise, scale, shift


@register_op
class BatchNorm(_Norm):
    name = "bn"
    doc = "batch normalisation over each channel (torch.nn.BatchNorm2d)"
    args = (Arg("eps", "pos_float", 1e-5), Arg("momentum", "unit", 0.1), Arg("affine", "bool", True))
    example = "bn(eps = 0.001, momentum = 0.01)"

    def infer(self, a, ins):
        return spatial(ins[0], "bn")

    def other_ops(self, a, ins, out):
        return 2 * math.prod(out)

    def lower(self, a, ins):
        return module("torch.nn.BatchNorm2d", ins[0][0], eps=a.eps, momentum=a.momentum, affine=a.affine)


@register_op
class LayerNorm(_Norm):
    name = "layernorm"
    doc = ("layer normalisation over the channels of each pixel (torchvision's LayerNorm2d: weight and bias "
           "per channel), or over the features of a vector")
    args = (Arg("eps", "pos_float", 1e-5), Arg("affine", "bool", True))
    example = "layernorm(eps = 0.000001)"

    def infer(self, a, ins):
        if len(ins[0]) not in (1, 3):
            raise ShapeFault("`layernorm` needs a C×H×W map or a vector", found=fmt(ins[0]))
        return ins[0]

    def lower(self, a, ins):
        # Over channels: torch's LayerNorm normalises the last dim, so the map runs channels-last,
        # exactly as torchvision's LayerNorm2d and ConvNeXt block permute around it.
        layout = "nhwc" if len(ins[0]) == 3 else "nchw"
        return module("torch.nn.LayerNorm", (ins[0][0],), eps=a.eps, elementwise_affine=a.affine, layout=layout)


@register_op
class GroupNorm(_Norm):
    name = "groupnorm"
    doc = ("group normalisation (torch.nn.GroupNorm): the channels in `groups` groups, each normalised over "
           "its channels and pixels, with a weight and bias per channel; independent of the batch")
    args = (Arg("groups", "pos_int"), Arg("eps", "pos_float", 1e-5), Arg("affine", "bool", True))
    example = "groupnorm(2)"

    def infer(self, a, ins):
        c = spatial(ins[0], self.name)[0]
        if c % a.groups:
            raise ShapeFault(f"`groupnorm` groups={a.groups} must divide the {c} channels",
                             expected=f"channels divisible by {a.groups}", found=f"{c} channels",
                             hint="change `groups` (32 in Wu & He 2018) or the width")
        return ins[0]

    def lower(self, a, ins):
        return module("torch.nn.GroupNorm", a.groups, ins[0][0], eps=a.eps, affine=a.affine)

    def label(self, a):
        return f"/{a.groups}"
