"""Pooling: ``maxpool``, ``avgpool``, ``adaptive_avgpool`` and ``gap``, exactly torch's modules."""
from __future__ import annotations

import math

from archc.compiler.ops.base import Arg, Op, ShapeFault, module, spatial, stride_text, window
from archc.compiler.ops.registry import register_op


class _Pool(Op):
    family = "pool"
    fresh = True

    def window(self, a):
        stride = a.stride if a.stride is not None else a.kernel
        return a.kernel, stride, a.pad, getattr(a, "dilation", (1, 1))

    def infer(self, a, ins):
        c, h, w = spatial(ins[0], self.name)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.window(a)
        if ph > kh // 2 or pw > kw // 2:
            raise ShapeFault(f"`{self.name}` padding {a.pad} is more than half the kernel {a.kernel}",
                             hint="PyTorch allows pad <= kernel // 2")
        return (c, window(h, kh, sh, ph, dh, a.ceil, self.name, "height"),
                window(w, kw, sw, pw, dw, a.ceil, self.name, "width"))

    def other_ops(self, a, ins, out):
        return math.prod(out) * a.kernel[0] * a.kernel[1]

    def stride(self, a):
        return self.window(a)[1]

    def keeping_pad(self, a):
        (kh, kw), _, _, (dh, dw) = self.window(a)
        total = [d * (k - 1) for k, d in ((kh, dh), (kw, dw))]
        if any(t % 2 for t in total):
            return None
        ph, pw = (t // 2 for t in total)
        if ph > kh // 2 or pw > kw // 2:
            return None  # a dilated pool: PyTorch caps its padding at half the kernel
        return str(ph) if ph == pw else f"[{ph}, {pw}]"

    def label(self, a):
        return f"{'×'.join(map(str, a.kernel))}{stride_text(self.window(a)[1])}"


@register_op
class MaxPool(_Pool):
    name = "maxpool"
    doc = "max over each window (torch.nn.MaxPool2d); stride defaults to the kernel"
    args = (Arg("kernel", "pair"), Arg("stride", "pair", None), Arg("pad", "npair", (0, 0)),
            Arg("dilation", "pair", (1, 1)), Arg("ceil", "bool", False))
    example = "maxpool(3, stride = 2, pad = 1, ceil = true)"

    def lower(self, a, ins):
        return module("torch.nn.MaxPool2d", a.kernel, stride=self.window(a)[1], padding=a.pad,
                      dilation=a.dilation, ceil_mode=a.ceil)


@register_op
class AvgPool(_Pool):
    name = "avgpool"
    doc = "mean over each window (torch.nn.AvgPool2d); stride defaults to the kernel"
    args = (Arg("kernel", "pair"), Arg("stride", "pair", None), Arg("pad", "npair", (0, 0)),
            Arg("ceil", "bool", False), Arg("count_include_pad", "bool", True))
    example = "avgpool(3, stride = 2, pad = 1, count_include_pad = false)"

    def lower(self, a, ins):
        return module("torch.nn.AvgPool2d", a.kernel, stride=self.window(a)[1], padding=a.pad,
                      ceil_mode=a.ceil, count_include_pad=a.count_include_pad)


@register_op
class AdaptiveAvgPool(Op):
    name = "adaptive_avgpool"
    doc = "mean pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d)"
    family = "pool"
    args = (Arg("size", "pair"),)
    example = "adaptive_avgpool([2, 3])"
    fresh = True

    def infer(self, a, ins):
        c, _, _ = spatial(ins[0], self.name)
        return (c, *a.size)

    def other_ops(self, a, ins, out):
        return math.prod(ins[0])

    def lower(self, a, ins):
        # sizes stay pairs: torchvision prints AdaptiveAvgPool2d(output_size=(1, 1))
        return module("torch.nn.AdaptiveAvgPool2d", tuple(a.size))

    def label(self, a):
        return f"→ {'×'.join(map(str, a.size))}"


@register_op
class GlobalAvgPool(AdaptiveAvgPool):
    name = "gap"
    doc = "global average pooling to 1×1 (torchvision's avgpool)"
    args = ()
    example = "gap"

    def infer(self, a, ins):
        return (spatial(ins[0], "gap")[0], 1, 1)

    def lower(self, a, ins):
        return module("torch.nn.AdaptiveAvgPool2d", (1, 1))

    def label(self, a):
        return ""


@register_op
class Upsample(Op):
    name = "upsample"
    doc = ("enlarge by an integer `scale` (torch.nn.Upsample): \"nearest\" repeats pixels, \"bilinear\" "
           "interpolates (align_corners false): decoders and feature pyramids")
    family = "shape"
    args = (Arg("scale", "pos_int"), Arg("mode", "choice", "nearest", ("nearest", "bilinear")))
    example = 'upsample(2, mode = "bilinear")'
    fresh = True  # its backward reads neither its input nor its output

    def infer(self, a, ins):
        c, h, w = spatial(ins[0], self.name)
        return (c, h * a.scale, w * a.scale)

    def lower(self, a, ins):
        return module("torch.nn.Upsample", scale_factor=float(a.scale), mode=a.mode)

    def label(self, a):
        return f"×{a.scale} {a.mode}"
