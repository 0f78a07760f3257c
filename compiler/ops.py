"""The op catalogue: signature, exact PyTorch shape formula, parameters and MACs per op.

Shapes exclude the batch: ``(C, H, W)`` for feature maps, ``(F,)`` after ``flatten``.
Each op's arguments become a frozen dataclass (``OP.Args``) so IR nodes carry typed
values, not dicts. Cost convention: one multiply-add = 1 MAC, counted for conv and linear;
every other op's elementwise work goes to ``other_ops`` (one per output element, times
the window for pools, two for bn).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

Shape = tuple  # (C, H, W) or (F,)


class ShapeFault(Exception):
    """Raised by shape rules; the caller adds the source location (compiler/shapes.py)."""

    def __init__(self, what: str, expected: str | None = None, found: str | None = None,
                 hint: str | None = None):
        super().__init__(what)
        self.what, self.expected, self.found, self.hint = what, expected, found, hint


REQUIRED = object()  # marks an argument without a default


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: str  # pos_int | nonneg_int | int | float | prob | bool | pair | npair | pad | choice | shape
    default: object = REQUIRED
    choices: tuple = ()


def fmt(shape: Shape) -> str:
    return "×".join(str(d) for d in shape)


class Op:
    """Base op: shape-preserving, parameter-free, no MACs. Subclasses override."""

    name = ""
    args: tuple = ()
    inplace_view = False   # flatten/identity: output aliases the input, no new activation
    arity = 1              # inputs; 0 = any number >= 2 (merges)
    Args: type

    def infer(self, a, ins: list[Shape]) -> Shape:
        return ins[0]

    def params(self, a, ins: list[Shape]) -> int:
        return 0

    def macs(self, a, ins: list[Shape], out: Shape) -> int:
        return 0

    def other_ops(self, a, ins: list[Shape], out: Shape) -> int:
        return math.prod(out)


def _spatial(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeFault(f"`{op}` needs a C×H×W feature map", expected="C×H×W",
                         found=fmt(shape), hint="remove the `flatten` before it")
    return shape


def _window(size, k, s, p, d, ceil, op, dim):
    """PyTorch's output size for conv/pool along one dimension."""
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        need = d * (k - 1) + 1 - 2 * p
        raise ShapeFault(f"`{op}` collapses the {dim} size {size} to zero",
                         expected=f"an input {dim} of at least {need}", found=str(size),
                         hint="use a smaller kernel or stride, add padding, or downsample less before it")
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:  # PyTorch: the last window must start inside the input
        out -= 1
    return out


class Conv(Op):
    name = "conv"
    args = (Arg("out", "pos_int"), Arg("kernel", "pair"), Arg("stride", "pair", (1, 1)),
            Arg("pad", "pad", (0, 0)), Arg("dilation", "pair", (1, 1)),
            Arg("groups", "pos_int", 1), Arg("bias", "bool", True))

    def padding(self, a) -> tuple[int, int]:
        if a.pad == "valid":
            return (0, 0)
        if a.pad == "same":  # PyTorch pads the total d*(k-1), extra on the right/bottom
            return tuple(d * (k - 1) // 2 for k, d in zip(a.kernel, a.dilation))
        return a.pad

    def infer(self, a, ins):
        c, h, w = _spatial(ins[0], "conv")
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
        return (a.out, _window(h, kh, sh, ph, dh, False, "conv", "height"),
                _window(w, kw, sw, pw, dw, False, "conv", "width"))

    def params(self, a, ins):
        return a.out * (ins[0][0] // a.groups) * a.kernel[0] * a.kernel[1] + (a.out if a.bias else 0)

    def macs(self, a, ins, out):
        return math.prod(out) * (ins[0][0] // a.groups) * a.kernel[0] * a.kernel[1]

    def other_ops(self, a, ins, out):
        return math.prod(out) if a.bias else 0


class BatchNorm(Op):
    name = "bn"
    args = (Arg("eps", "float", 1e-5), Arg("momentum", "float", 0.1), Arg("affine", "bool", True))

    def infer(self, a, ins):
        return _spatial(ins[0], "bn")

    def params(self, a, ins):
        return 2 * ins[0][0] if a.affine else 0

    def other_ops(self, a, ins, out):
        return 2 * math.prod(out)


class Scale(Op):
    """A learned per-channel multiplier (init 1), as in DSNet's weighted shortcuts."""
    name = "scale"

    def params(self, a, ins):
        return ins[0][0]


class _Activation(Op):
    pass


def _activation(op_name: str, extra: tuple = ()) -> type:
    return type(op_name.title().replace("_", ""), (_Activation,), {"name": op_name, "args": extra})


class _Pool(Op):
    def window(self, a):
        stride = a.stride if a.stride is not None else a.kernel
        return a.kernel, stride, a.pad, getattr(a, "dilation", (1, 1))

    def infer(self, a, ins):
        c, h, w = _spatial(ins[0], self.name)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.window(a)
        if ph > kh // 2 or pw > kw // 2:
            raise ShapeFault(f"`{self.name}` padding {a.pad} is more than half the kernel {a.kernel}",
                             hint="PyTorch allows pad <= kernel // 2")
        return (c, _window(h, kh, sh, ph, dh, a.ceil, self.name, "height"),
                _window(w, kw, sw, pw, dw, a.ceil, self.name, "width"))

    def other_ops(self, a, ins, out):
        return math.prod(out) * a.kernel[0] * a.kernel[1]


class MaxPool(_Pool):
    name = "maxpool"
    args = (Arg("kernel", "pair"), Arg("stride", "pair", None), Arg("pad", "npair", (0, 0)),
            Arg("dilation", "pair", (1, 1)), Arg("ceil", "bool", False))


class AvgPool(_Pool):
    name = "avgpool"
    args = (Arg("kernel", "pair"), Arg("stride", "pair", None), Arg("pad", "npair", (0, 0)),
            Arg("ceil", "bool", False), Arg("count_include_pad", "bool", True))


class AdaptiveAvgPool(Op):
    name = "adaptive_avgpool"
    args = (Arg("size", "pair"),)

    def infer(self, a, ins):
        c, _, _ = _spatial(ins[0], self.name)
        return (c, *a.size)

    def other_ops(self, a, ins, out):
        return math.prod(ins[0])


class GlobalAvgPool(AdaptiveAvgPool):
    """``gap``: adaptive average pooling to 1×1 (torchvision's ``avgpool``)."""
    name = "gap"
    args = ()

    def infer(self, a, ins):
        return (_spatial(ins[0], "gap")[0], 1, 1)


class Flatten(Op):
    name = "flatten"
    inplace_view = True

    def infer(self, a, ins):
        return (math.prod(ins[0]),)

    def other_ops(self, a, ins, out):
        return 0


class Linear(Op):
    name = "linear"
    args = (Arg("out", "pos_int"), Arg("bias", "bool", True))

    def infer(self, a, ins):
        if len(ins[0]) != 1:
            raise ShapeFault("`linear` needs a flat feature vector", expected="F (after flatten)",
                             found=fmt(ins[0]), hint="insert `gap; flatten` (or `flatten`) before it")
        return (a.out,)

    def params(self, a, ins):
        return a.out * ins[0][0] + (a.out if a.bias else 0)

    def macs(self, a, ins, out):
        return a.out * ins[0][0]

    def other_ops(self, a, ins, out):
        return a.out if a.bias else 0


class Dropout(Op):
    name = "dropout"
    args = (Arg("p", "prob", 0.5),)


class DropPath(Op):
    """Stochastic depth: drop the whole branch per sample with probability p (``@drop_path(p)``)."""
    name = "drop_path"
    args = (Arg("p", "prob"),)


class Identity(Op):
    name = "identity"
    inplace_view = True

    def other_ops(self, a, ins, out):
        return 0


class ShortcutA(Op):
    """He et al. 2016 option A: subsample by ``stride``, zero-pad channels up to ``out``."""
    name = "shortcut_a"
    args = (Arg("out", "pos_int"), Arg("stride", "pos_int", 1))

    def infer(self, a, ins):
        c, h, w = _spatial(ins[0], self.name)
        if a.out < c:
            raise ShapeFault("`shortcut_a` can only widen", expected=f"out >= {c}", found=str(a.out),
                             hint="use a 1×1 conv projection to reduce channels")
        return (a.out, -(-h // a.stride), -(-w // a.stride))

    def other_ops(self, a, ins, out):
        return 0


class Add(Op):
    name = "add"
    arity = 0

    def infer(self, a, ins):
        first = ins[0]
        for i, s in enumerate(ins[1:], 1):
            if s != first:
                raise ShapeFault("`add` branches have different shapes", found=f"branch 0 {fmt(first)}, "
                                 f"branch {i} {fmt(s)}", expected="equal shapes")
        return first

    def other_ops(self, a, ins, out):
        return math.prod(out) * (len(ins) - 1)


class Concat(Op):
    name = "concat"
    arity = 0

    def infer(self, a, ins):
        first = ins[0]
        for i, s in enumerate(ins[1:], 1):
            if len(s) != len(first) or s[1:] != first[1:]:
                raise ShapeFault("`concat` branches differ in more than channels",
                                 found=f"branch 0 {fmt(first)}, branch {i} {fmt(s)}",
                                 expected="equal height and width")
        return (sum(s[0] for s in ins), *first[1:])

    def other_ops(self, a, ins, out):
        return 0


class Input(Op):
    name = "input"
    arity = -1  # no inputs
    args = (Arg("shape", "shape"),)

    def infer(self, a, ins):
        return a.shape

    def other_ops(self, a, ins, out):
        return 0


class Output(Identity):
    name = "output"


ACTIVATIONS = ("relu", "relu6", "silu", "sigmoid", "tanh")
_CLASSES = [Conv, BatchNorm, Scale, MaxPool, AvgPool, AdaptiveAvgPool, GlobalAvgPool, Flatten,
            Linear, Dropout, DropPath, Identity, ShortcutA, Add, Concat, Input, Output,
            *(_activation(n) for n in ACTIVATIONS),
            _activation("gelu", (Arg("approximate", "choice", "none", ("none", "tanh")),)),
            _activation("leaky_relu", (Arg("slope", "float", 0.01),))]


def _with_args(cls) -> Op:
    """Instantiate an op and give it a frozen dataclass of its typed arguments."""
    fields = [(a.name, object) if a.default is REQUIRED else (a.name, object, dataclasses.field(default=a.default))
              for a in cls.args]
    op = cls()
    op.Args = dataclasses.make_dataclass(f"{cls.__name__}Args", fields, frozen=True, slots=True)
    return op


OPS: dict[str, Op] = {cls.name: _with_args(cls) for cls in _CLASSES}
MERGES = ("add", "concat", "dense_sum")
