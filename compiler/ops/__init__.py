"""The op registry. Each op is one class in one file of this package (see ``base.Op``):

    conv.py        conv
    norm.py        bn, layernorm
    activation.py  relu, relu6, leaky_relu, gelu, silu, sigmoid, tanh, hardswish, hardsigmoid
    pool.py        maxpool, avgpool, adaptive_avgpool, gap
    linear.py      linear, channel_linear, flatten, identity, dropout, drop_path
    channels.py    scale, layer_scale, affine, shortcut_a, chunk, channel_shuffle
    merge.py       add, mul, concat, dense_sum
    io.py          input, output

Adding an op is one class in one of these files (or in your own code: ``archc.register_op``)
plus its test; nothing else names it. Torch-free: lowering is a description.
"""
from archc.compiler.ops.base import (REQUIRED, Alias, Arg, Fold, Function, LazyConcat, Module, Op, Parameter,
                                     Placeholder, Result, Shape, ShapeFault, fmt, function, module)
from archc.compiler.ops.registry import OPS, OpDefinitionError, callable_ops, merges, register_op
from archc.compiler.ops import activation, channels, conv, io, linear, merge, norm, pool  # noqa: F401  (they register)

__all__ = ["OPS", "REQUIRED", "Alias", "Arg", "Fold", "Function", "LazyConcat", "Module", "Op", "OpDefinitionError",
           "Parameter", "Placeholder", "Result", "Shape", "ShapeFault", "callable_ops", "fmt", "function", "merges",
           "module", "register_op"]
