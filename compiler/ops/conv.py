"""``conv``: 2-d convolution, exactly ``torch.nn.Conv2d``."""
from __future__ import annotations

import math

from archc.compiler.ops.base import (Arg, Op, ShapeFault, module, pair_text, spatial, stride_text,
                                     window)
from archc.compiler.ops.registry import register_op


@register_op
class Conv(Op):
    name = "conv"
    doc = "2-d convolution (torch.nn.Conv2d); pad \"same\" pads d*(k-1) in total, extra on the right/bottom"
    family = "conv"
    args = (Arg("out", "pos_int", doc="output channels"), Arg("kernel", "pair"), Arg("stride", "pair", (1, 1)),
            Arg("pad", "pad", (0, 0)), Arg("dilation", "pair", (1, 1)),
            Arg("groups", "pos_int", 1), Arg("bias", "bool", True))
    example = "conv(8, 3, pad = 1)"
    weights = ("weight", "bias")
    fresh = True

    def padding(self, a) -> tuple[int, int]:
        if a.pad == "valid":
            return (0, 0)
        if a.pad == "same":  # PyTorch pads the total d*(k-1), extra on the right/bottom
            return tuple(d * (k - 1) // 2 for k, d in zip(a.kernel, a.dilation))
        return a.pad

    def infer(self, a, ins):
        c, h, w = spatial(ins[0], "conv")
        if c % a.groups or a.out % a.groups:
            raise ShapeFault(f"`conv` groups={a.groups} must divide both channel counts",
                             expected=f"in and out channels divisible by {a.groups}",
                             found=f"in {c}, out {a.out}", hint="change `groups` or the widths")
        if a.pad == "same":
            if a.stride != (1, 1):
                raise ShapeFault("`conv` with pad = \"same\" needs stride 1", found=f"stride {a.stride}",
                                 hint="give the padding as a number when striding")
            return (a.out, h, w)
        (ph, pw), (kh, kw), (sh, sw), (dh, dw) = self.padding(a), a.kernel, a.stride, a.dilation
        return (a.out, window(h, kh, sh, ph, dh, False, "conv", "height"),
                window(w, kw, sw, pw, dw, False, "conv", "width"))

    def tensors(self, a, ins):
        return {"weight": (a.out, ins[0][0] // a.groups, *a.kernel), **({"bias": (a.out,)} if a.bias else {})}

    def macs(self, a, ins, out):
        return math.prod(out) * (ins[0][0] // a.groups) * a.kernel[0] * a.kernel[1]

    def other_ops(self, a, ins, out):
        return math.prod(out) if a.bias else 0

    def stride(self, a):
        return a.stride

    def keeping_pad(self, a):
        total = [d * (k - 1) for k, d in zip(a.kernel, a.dilation)]
        if any(t % 2 for t in total):
            return '"same"'
        ph, pw = (t // 2 for t in total)
        return str(ph) if ph == pw else f"[{ph}, {pw}]"

    def lower(self, a, ins):
        return module("torch.nn.Conv2d", ins[0][0], a.out, a.kernel, stride=a.stride, padding=a.pad,
                      dilation=a.dilation, groups=a.groups, bias=a.bias)

    def label(self, a):
        extra = "".join(f" {tag}{pair_text(v)}" for tag, v in (("d", a.dilation), ("g", (a.groups,) * 2))
                        if v != (1, 1))
        return f"{'×'.join(map(str, a.kernel))}{stride_text(a.stride)}{extra} → {a.out}"
