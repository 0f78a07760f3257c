"""What each IR node stores in the model: an ``nn.Module`` or a learned tensor, as a ``Ctor``.

An op's definition describes its lowering torch-free (``compiler/ops``); here a ``Module`` or
``Parameter`` description becomes a ``Ctor`` that can both build the object and print itself as
Python source, so the fx build and ``emit_python`` share one description of every layer.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn

from archc.compiler.ops import Module, Parameter


@lru_cache(maxsize=None)
def resolve(target):
    """A dotted path (``torch.nn.Conv2d``, ``operator.add``) as the object it names; objects pass."""
    if not isinstance(target, str):
        return target
    path, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(path), attr)


@dataclass(frozen=True)
class Ctor:
    cls: type
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...), defaults already dropped

    @classmethod
    def of(cls, module_cls: type, *args, **kwargs) -> "Ctor":
        """Drop keyword arguments equal to the constructor's defaults, to keep reprs short."""
        params = inspect.signature(module_cls).parameters
        kept = tuple((k, _short(v)) for k, v in kwargs.items() if k not in params or _short(v) != params[k].default)
        return cls(module_cls, tuple(_short(a) for a in args), kept)

    def make(self):
        return self.cls(*self.args, **dict(self.kwargs))

    def source(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{qualified(self.cls)}({', '.join(parts)})"


@dataclass(frozen=True)
class ParamCtor:
    """A learned tensor stored at the node id itself (``layer_scale``), filled with one value."""
    shape: tuple
    fill: float

    def make(self) -> nn.Parameter:
        return nn.Parameter(torch.full(self.shape, self.fill))

    def source(self) -> str:
        return f"nn.Parameter(torch.full({self.shape!r}, {self.fill!r}))"


def qualified(cls) -> str:
    """How emitted source names a class: ``nn.Conv2d``; archc's and users' layers by their own name."""
    return f"nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") else cls.__name__


def _short(v):
    """(3, 3) -> 3: PyTorch reads an int as a square pair, and it reads better."""
    return v[0] if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] else v


def ctor(spec, a, ins: list, overwrite: bool = False) -> Ctor | ParamCtor | None:
    """What the node of op ``spec`` with arguments ``a`` and input shapes ``ins`` stores, or None.

    ``overwrite``: the op may write its result over its input (``inplace.overwritable``)."""
    low = spec.lower(a, ins)
    if isinstance(low, Parameter):
        return ParamCtor(tuple(low.shape), float(low.fill))
    if not isinstance(low, Module):
        return None
    kwargs = dict(low.kwargs)
    if overwrite and spec.inplace:
        kwargs["inplace"] = True
    return Ctor.of(resolve(low.cls), *low.args, **kwargs)
