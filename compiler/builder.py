"""Build PyTorch models from .arch specs: ``build("archs/densenet121.arch", growth=12)``.

The only torch-importing entry of the compiler besides ``compiler/codegen``.
"""
from __future__ import annotations

import os

import torch.nn as nn

from archc.compiler.codegen import emit_python, generate
from archc.compiler.ir import Graph

__all__ = ["build", "build_graph", "emit_python"]


def build(source: str | os.PathLike, overrides: dict | None = None, **params) -> nn.Module:
    """The network of a spec: a path ending in ``.arch``, or the spec's text (see ``compiler.check``)."""
    from archc.compiler import check
    return build_graph(check(source, overrides, **params))


def build_graph(g: Graph) -> nn.Module:
    """The network of an already compiled graph (``compile_file(...).graph``)."""
    return generate(g)
