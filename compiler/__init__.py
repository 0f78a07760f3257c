"""archc's compiler: ``.arch`` text -> checked graph IR -> PyTorch.

``check`` runs the torch-free front end and returns the graph with shapes and costs;
``build`` (imported lazily, it needs torch) returns an ``nn.Module``.
"""
from __future__ import annotations


def check(path_or_text, overrides: dict | None = None, **params):
    """Parse, elaborate, validate, infer shapes and costs; returns the ``Graph``.

    A path (``os.PathLike``) is read from disk; so is a one-line string, a path or a name found as
    the command line finds FILE (``resnet50``: the working folder, $ARCHC_PATH, the bundled registry),
    since no spec fits on one line. Any other string is the spec's text. ``params`` win over
    ``overrides``, as ``--set`` does.
    """
    import os
    from archc.compiler.passes import compile_file
    from archc.compiler.registry import find
    text = os.fspath(path_or_text)
    values = {**(overrides or {}), **params}
    if isinstance(path_or_text, os.PathLike) or len(text.splitlines()) <= 1:  # CR-only text has lines too
        path = find(text, "archc.check", "pass a path, a name `archc list` shows, or the spec's text")
        return compile_file(path=str(path), overrides=values).graph
    return compile_file(text=text, overrides=values).graph


def __getattr__(name):
    if name in ("build", "build_graph", "emit_python"):
        from archc.compiler import builder  # torch is loaded only here
        return getattr(builder, name)
    raise AttributeError(name)
