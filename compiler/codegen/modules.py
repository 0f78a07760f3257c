"""Which ``nn.Module`` each IR op becomes, as a constructor call (``Ctor``).

A ``Ctor`` can both build the module and print itself as Python source, so the fx build
and ``emit_python`` share one description of every layer. Ops that are not modules
(``input``, ``output``, ``identity``, ``add``, ``concat``, ``flatten``) map to ``None``:
lowering turns them into fx values or functions, as torchvision's forwards do.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch.nn as nn

from archc.compiler.codegen import layers


@dataclass(frozen=True)
class Ctor:
    cls: type
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...), defaults already dropped

    @classmethod
    def of(cls, module_cls: type, *args, **kwargs) -> "Ctor":
        """Drop keyword arguments equal to the constructor's defaults, to keep reprs short."""
        params = inspect.signature(module_cls).parameters
        kept = tuple((k, _short(v)) for k, v in kwargs.items() if _short(v) != params[k].default)
        return cls(module_cls, tuple(_short(a) for a in args), kept)

    def make(self):
        return self.cls(*self.args, **dict(self.kwargs))

    def source(self) -> str:
        prefix = "nn." if self.cls.__module__.startswith("torch.nn") else ""
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{prefix}{self.cls.__name__}({', '.join(parts)})"


def _short(v):
    """(3, 3) -> 3: PyTorch reads an int as a square pair, and it reads better."""
    return v[0] if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] else v


def ctor(op: str, a, c_in: int, overwrite: bool = False) -> Ctor | None:
    """The module for one op with arguments ``a`` and ``c_in`` input channels (or features).

    ``overwrite``: the op may write its result over its input (``inplace.overwritable``).
    """
    make = _TABLE.get(op)
    if make is None:
        return None
    c = make(a, c_in)
    return Ctor.of(c.cls, *c.args, **dict(c.kwargs), inplace=True) if overwrite and op in INPLACE else c


def _conv(a, c):
    return Ctor.of(nn.Conv2d, c, a.out, a.kernel, stride=a.stride, padding=a.pad,
                   dilation=a.dilation, groups=a.groups, bias=a.bias)


def _pool_stride(a):
    return a.stride if a.stride is not None else a.kernel


# Activations that can run in place, as torchvision's ReLU(inplace=True): no new buffer per call.
INPLACE = frozenset({"relu", "relu6", "leaky_relu"})

_TABLE = {
    "conv": _conv,
    "bn": lambda a, c: Ctor.of(nn.BatchNorm2d, c, eps=a.eps, momentum=a.momentum, affine=a.affine),
    "linear": lambda a, c: Ctor.of(nn.Linear, c, a.out, bias=a.bias),
    "scale": lambda a, c: Ctor.of(layers.Scale, c),
    "relu": lambda a, c: Ctor.of(nn.ReLU),
    "relu6": lambda a, c: Ctor.of(nn.ReLU6),
    "gelu": lambda a, c: Ctor.of(nn.GELU, approximate=a.approximate),
    "silu": lambda a, c: Ctor.of(nn.SiLU),
    "sigmoid": lambda a, c: Ctor.of(nn.Sigmoid),
    "tanh": lambda a, c: Ctor.of(nn.Tanh),
    "leaky_relu": lambda a, c: Ctor.of(nn.LeakyReLU, a.slope),
    "maxpool": lambda a, c: Ctor.of(nn.MaxPool2d, a.kernel, stride=_pool_stride(a), padding=a.pad,
                                    dilation=a.dilation, ceil_mode=a.ceil),
    "avgpool": lambda a, c: Ctor.of(nn.AvgPool2d, a.kernel, stride=_pool_stride(a), padding=a.pad,
                                    ceil_mode=a.ceil, count_include_pad=a.count_include_pad),
    # output sizes stay pairs: torchvision prints AdaptiveAvgPool2d(output_size=(1, 1))
    "adaptive_avgpool": lambda a, c: Ctor(nn.AdaptiveAvgPool2d, (tuple(a.size),)),
    "gap": lambda a, c: Ctor(nn.AdaptiveAvgPool2d, ((1, 1),)),
    "dropout": lambda a, c: Ctor.of(nn.Dropout, a.p),
    "drop_path": lambda a, c: Ctor.of(layers.DropPath, a.p),
    "shortcut_a": lambda a, c: Ctor.of(layers.ShortcutA, a.out, stride=a.stride),
}
