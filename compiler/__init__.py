"""archc's compiler: ``.arch`` text -> checked graph IR -> PyTorch.

``check`` runs the torch-free front end and returns the graph with shapes and costs;
``build`` (imported lazily, it needs torch) returns an ``nn.Module``.
"""
from __future__ import annotations


def _split(path_or_text: str):
    text = str(path_or_text)
    if "\n" in text or not text.endswith(".arch"):
        return None, text
    return text, None


def check(path_or_text, overrides: dict | None = None, **params):
    """Parse, elaborate, validate, infer shapes and costs; returns the ``Graph``."""
    from compiler.passes import compile_file
    path, text = _split(path_or_text)
    return compile_file(path, text, {**(overrides or {}), **params}).graph


def __getattr__(name):
    if name in ("build", "build_graph", "emit_python"):
        import importlib
        module = importlib.import_module("compiler.build")  # torch is loaded only here
        # Importing the submodule binds `compiler.build` to the module; the public name is the function.
        globals()["build"] = module.build
        return getattr(module, name)
    raise AttributeError(name)
