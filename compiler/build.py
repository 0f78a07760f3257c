"""Build PyTorch models from .arch specs: ``build("archs/densenet121.arch", growth=12)``.

The only torch-importing entry of the compiler besides ``compiler/codegen``.
"""
from __future__ import annotations

import os

import torch.nn as nn

from compiler.codegen import emit_python, generate
from compiler.ir import Graph
from compiler.passes import compile_file

__all__ = ["build", "build_graph", "emit_python"]


def build(source: str | os.PathLike, overrides: dict | None = None, **params) -> nn.Module:
    """The network of a spec: a path ending in ``.arch``, or the spec's text.

    A string with a newline, or not ending in ``.arch``, is read as text. ``overrides`` and
    ``params`` set arch parameters (``params`` wins), as ``--set`` does.
    """
    values = {**(overrides or {}), **params}
    text = os.fspath(source)
    if isinstance(source, os.PathLike) or ("\n" not in text and text.endswith(".arch")):
        return build_graph(compile_file(path=text, overrides=values).graph)
    return build_graph(compile_file(text=text, overrides=values).graph)


def build_graph(g: Graph) -> nn.Module:
    """The network of an already compiled graph (``compile_file(...).graph``)."""
    return generate(g)
