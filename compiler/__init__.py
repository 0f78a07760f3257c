"""archc's compiler: ``.arch`` text -> checked graph IR -> PyTorch.

``check`` runs the torch-free front end and returns the graph with shapes and costs;
``build`` (imported lazily, it needs torch) returns an ``nn.Module``.
"""
from __future__ import annotations


def check(path_or_text, overrides: dict | None = None, **params):
    """Parse, elaborate, validate, infer shapes and costs; returns the ``Graph``.

    A path (``os.PathLike``, or a one-line string ending in ``.arch``) is read from disk;
    any other string is the spec's text. ``params`` win over ``overrides``, as ``--set`` does.
    """
    import os
    from archc.compiler.passes import compile_file
    text = os.fspath(path_or_text)
    is_path = isinstance(path_or_text, os.PathLike) or ("\n" not in text and text.endswith(".arch"))
    values = {**(overrides or {}), **params}
    return (compile_file(path=text, overrides=values) if is_path else compile_file(text=text, overrides=values)).graph


def __getattr__(name):
    if name in ("build", "build_graph", "emit_python"):
        from archc.compiler import builder  # torch is loaded only here
        return getattr(builder, name)
    raise AttributeError(name)
