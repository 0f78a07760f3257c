"""archc: a declarative architecture language and graph compiler for CNNs in PyTorch.

The public API. Importing ``archc`` loads neither torch nor the compiler: ``check`` stays
torch-free, and ``build``/``train`` import torch when they are called.

    import archc
    g = archc.check("densenet121", growth=12)      # Graph: shapes, params, MACs (no torch)
    model = archc.build("resnet50")                # nn.Module (torch.fx GraphModule)
    summary = archc.train("resnet_uva", data="sample", epochs=2)

    @archc.register_op                             # an op of your own, usable in .arch files
    class Mish(archc.Op):
        name, doc, example = "mish", "x * tanh(softplus(x))", "mish"
        def lower(self, a, ins):
            return archc.module("torch.nn.Mish", layout="any")
"""
from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["Arg", "ArchError", "Op", "ShapeFault", "build", "check", "function", "module", "register_op", "train",
           "__version__"]
_OPS = ("Arg", "Op", "ShapeFault", "function", "module", "register_op")  # from archc.compiler.ops (torch-free)


def check(spec, overrides: dict | None = None, **params):
    """Parse, elaborate, validate, infer shapes and costs of ``spec`` (a path, an arch name, or
    the spec's text); returns the checked ``Graph``. ``params`` override arch parameters."""
    from archc.compiler import check as _check
    return _check(spec, overrides, **params)


def build(spec, overrides: dict | None = None, **params):
    """The ``nn.Module`` of ``spec`` (see ``check``), initialised as the arch says."""
    from archc.compiler.builder import build as _build
    return _build(spec, overrides, **params)


def train(spec, params: dict | None = None, **settings):
    """Train the network of ``spec`` as ``archc train`` does; ``settings`` are TrainConfig keys
    (``data``, ``out``, ``epochs``, ...). Returns the run's summary (also in ``out/summary.json``)."""
    from archc.runtime.commands import train_spec
    return train_spec(spec, params or {}, settings)


def __getattr__(name):
    if name == "ArchError":
        from archc.dsl.errors import ArchError
        return ArchError
    if name in _OPS:  # defining ops: see compiler/ops/base.py's Op, and the README's "Your own ops"
        from archc.compiler import ops
        return getattr(ops, name)
    raise AttributeError(f"module 'archc' has no attribute {name!r}")
