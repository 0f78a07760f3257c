"""What an op is: the one class that says everything about it (see ``Op``).

An op's definition holds its argument signature, its exact PyTorch shape rule, its parameter,
MAC and other-op counts, how it lowers to torch, its in-place and memory behaviour, how it is
drawn, and a one-line example for the test generators. Nothing else in archc keeps a table
keyed by op names: the elaborator, codegen, in-place analysis, render, hints, error texts and
the tests read these attributes. This file and the definitions never import torch: lowering is
*described* (``Module("torch.nn.Conv2d", ...)``) and codegen turns the description into fx nodes.

Shapes exclude the batch: ``(C, H, W)`` for feature maps, ``(F,)`` for vectors.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

Shape = tuple  # (C, H, W) or (F,)


class ShapeFault(Exception):
    """Raised by shape rules; the caller adds the source location (compiler/shapes.py)."""

    def __init__(self, what: str, expected: str | None = None, found: str | None = None,
                 hint: str | None = None):
        super().__init__(what)
        self.what, self.expected, self.hint, self.found = what, expected, hint, found


REQUIRED = object()  # marks an argument without a default

# Argument kinds (compiler/signature.py coerces values to them and words the errors).
KINDS = ("pos_int", "nonneg_int", "int", "float", "pos_float", "unit", "prob", "bool", "pair", "npair",
         "pad", "choice", "shape", "floats")

# Families: what an op is for. Render colours and legends by family; init presets and docs group by it.
FAMILIES = ("conv", "linear", "norm", "activation", "pool", "scale", "regularizer", "shape", "merge", "io")


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: str  # one of KINDS
    default: object = REQUIRED
    choices: tuple = ()
    doc: str = ""


def fmt(shape: Shape) -> str:
    return "×".join(str(d) for d in shape)


# ---- lowering descriptions: what codegen builds for a node ---------------------------------------
# ``cls``/``fn`` is a dotted path ("torch.nn.Conv2d") that codegen imports, or the object itself
# (a user's op registered from Python). ``layout``: "nchw" (torch's default), "nhwc" (the op reads
# and writes channels-last maps, as torchvision's ConvNeXt applies LayerNorm and Linear after a
# permute; codegen inserts the permutes and drops pairs that cancel) or "any" (elementwise).
@dataclass(frozen=True)
class Module:
    """``call_module``: an ``nn.Module`` built as ``cls(*args, **kwargs)``, stored at the node's id."""
    cls: object
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...)
    layout: str = "nchw"


@dataclass(frozen=True)
class Function:
    """``call_function``: ``fn(x, *args, **kwargs)``; no state."""
    fn: object
    args: tuple = ()
    kwargs: tuple = ()
    layout: str = "nchw"


@dataclass(frozen=True)
class Parameter:
    """A learned tensor of ``shape`` filled with ``fill``, stored at the node's id itself (as
    torchvision's ConvNeXt keeps ``layer_scale`` on its block), combined with the input by ``fn``."""
    shape: tuple
    fill: float
    fn: str = "operator.mul"
    layout: str = "nchw"


@dataclass(frozen=True)
class Alias:
    """The output is the input (``identity``): no fx node at all."""
    layout: str = "any"


@dataclass(frozen=True)
class Fold:
    """A merge folding its branches left to right with ``fn``; ``method`` is its in-place twin
    (``add_``), used when the written operand may be overwritten (codegen/inplace.py)."""
    fn: str
    method: str | None = None


@dataclass(frozen=True)
class LazyConcat:
    """A concat kept as the list of its pieces until an op reads it (DenseNet's layout)."""


@dataclass(frozen=True)
class Placeholder:
    """The network's input."""


@dataclass(frozen=True)
class Result:
    """The network's output."""


def module(cls, *args, layout: str = "nchw", **kwargs) -> Module:
    return Module(cls, args, tuple(kwargs.items()), layout)


def function(fn, *args, layout: str = "nchw", **kwargs) -> Function:
    return Function(fn, args, tuple(kwargs.items()), layout)


class Op:
    """An op of the language. Subclass it, set the class attributes, override what differs, and
    register it (``compiler.ops.register_op``); the defaults describe a shape-preserving,
    parameter-free elementwise op.

    Class attributes:
      name, doc       the keyword in .arch files and one line for the docs and ``archc ops``
      args            tuple of ``Arg``: the call signature, in positional order
      family          one of FAMILIES
      example         an .arch item applying the op to a tensor of ``example_input`` (test generators,
                      hints, the registry test); merges write the whole merge
      arity           (min, max) inputs; max None = any number (merges)
      merge           used as ``NAME { branches }`` instead of ``NAME(args)``
      fresh           the output is a new tensor its backward does not read: its only reader may
                      overwrite it (an in-place ReLU after a conv)
      inplace         its module accepts ``inplace=True`` and may then overwrite a fresh input
      view            the output aliases the input: no activation memory is kept for it
      lazy            the output is materialised by its readers (concat): kept only when one of them
                      runs outside every checkpoint region
      passthrough     the output is the input itself (identity): a skip branch, drawn as a plain edge
      weights         the names of its learned tensors (``init`` rules address them: ``bn.weight``);
                      an op with weights defines ``tensors`` (their shapes), from which ``params`` follows
      commutative     a merge whose branch order does not change the result (graph hashes ignore it)
      glyph           how render draws it when not a plain box: "+", "×", "concat", "input", "output"
    """

    name = ""
    doc = ""
    args: tuple = ()
    family = "activation"
    example = ""
    example_input: Shape = (4, 6, 6)
    arity: tuple = (1, 1)
    merge = False
    fresh = False
    inplace = False
    view = False
    lazy = False
    passthrough = False
    weights: tuple = ()
    commutative = False
    glyph = ""

    @functools.cached_property
    def Args(self) -> type:
        """The frozen dataclass of this op's typed argument values (what IR nodes carry). Made on first
        use: a dataclass costs ~1.5 ms to create, and a spec uses a few of the registry's ops."""
        fields = [(a.name, object) if a.default is REQUIRED else (a.name, object, dataclasses.field(default=a.default))
                  for a in self.args]
        return dataclasses.make_dataclass(f"{type(self).__name__}Args", fields, frozen=True, slots=True)

    # ---- static semantics ----------------------------------------------------------------------
    def infer(self, a, ins: list[Shape]) -> Shape:
        return ins[0]

    def tensors(self, a, ins: list[Shape]) -> dict[str, Shape]:
        """The learned tensors these arguments give it, by name (of ``weights``), with their shapes."""
        return {}

    def params(self, a, ins: list[Shape]) -> int:
        return sum(math.prod(shape) for shape in self.tensors(a, ins).values())

    def macs(self, a, ins: list[Shape], out: Shape) -> int:
        return 0

    def other_ops(self, a, ins: list[Shape], out: Shape) -> int:
        return math.prod(out)

    def stride(self, a) -> tuple | None:
        """The spatial stride, for hints that name what downsampled a branch; None if none."""
        return None

    def keeping_pad(self, a) -> str | None:
        """The ``pad`` with which this op keeps its input's size at stride 1 (hints), if any."""
        return None

    # ---- torch ---------------------------------------------------------------------------------
    def lower(self, a, ins: list[Shape]):
        """The lowering description (Module, Function, Parameter, Alias, Fold, LazyConcat ...)."""
        raise NotImplementedError(f"op `{self.name}` has no lowering")

    # ---- drawing -------------------------------------------------------------------------------
    def label(self, a) -> str:
        """The op's key arguments as drawn after its name: ``3×3 /2 → 64``; empty for none."""
        return ""


# ---- shape helpers shared by the definitions ----------------------------------------------------
def spatial(shape: Shape, op: str) -> Shape:
    if len(shape) != 3:
        raise ShapeFault(f"`{op}` needs a C×H×W feature map", expected="C×H×W",
                         found=fmt(shape), hint="use it before `flatten`: a vector (after `flatten` or "
                                                "`linear`, or a vector input) has no height and width")
    return shape


def window(size, k, s, p, d, ceil, op, dim) -> int:
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


def pair_text(v) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"


def stride_text(stride) -> str:
    return "" if tuple(stride) == (1, 1) else f" /{pair_text(stride)}"
