"""Elementwise activations, each exactly its ``torch.nn`` module."""
from __future__ import annotations

from archc.compiler.ops.base import Arg, Op, module
from archc.compiler.ops.registry import register_op


class _Activation(Op):
    """An elementwise nonlinearity: shape-preserving, parameter-free, layout-agnostic."""
    family = "activation"
    module_path = ""

    def lower(self, a, ins):
        kwargs = {arg.name: getattr(a, arg.name) for arg in self.args}
        return module(self.module_path, layout="any", **{self.torch_names.get(k, k): v for k, v in kwargs.items()})

    torch_names: dict = {}  # .arch argument name -> the module's keyword, where they differ


def _define(name: str, path: str, doc: str, inplace: bool = False, args: tuple = (),
            torch_names: dict | None = None, example: str | None = None) -> type:
    """One activation's definition. ``inplace``: its module takes ``inplace=True`` and its backward
    reads only its output, so it may overwrite a fresh input (ReLU, not SiLU)."""
    cls = type(name.title().replace("_", ""), (_Activation,), {
        "name": name, "doc": doc, "module_path": path, "inplace": inplace, "args": args,
        "torch_names": torch_names or {}, "example": example or name, "__module__": __name__})
    return register_op(cls)


_define("relu", "torch.nn.ReLU", "max(x, 0)", inplace=True)
_define("relu6", "torch.nn.ReLU6", "min(max(x, 0), 6)", inplace=True)
_define("leaky_relu", "torch.nn.LeakyReLU", "x if x > 0 else slope * x", inplace=True,
        args=(Arg("slope", "float", 0.01),), torch_names={"slope": "negative_slope"}, example="leaky_relu(0.2)")
_define("gelu", "torch.nn.GELU", "x * Φ(x) (approximate = \"tanh\": the tanh approximation)",
        args=(Arg("approximate", "choice", "none", ("none", "tanh")),), example='gelu(approximate = "tanh")')
_define("silu", "torch.nn.SiLU", "x * sigmoid(x) (swish)")
_define("sigmoid", "torch.nn.Sigmoid", "1 / (1 + exp(-x))")
_define("tanh", "torch.nn.Tanh", "tanh(x)")
_define("hardswish", "torch.nn.Hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)")
_define("hardsigmoid", "torch.nn.Hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3's gate)")


@register_op
class Softmax(Op):
    name = "softmax"
    doc = "exp(x) / Σ exp(x) over the channels of each pixel, or the features of a vector (torch.nn.Softmax(dim=1))"
    family = "activation"
    example = "softmax"  # not fresh: its backward reads its output, which nothing may overwrite

    def lower(self, a, ins):
        return module("torch.nn.Softmax", dim=1, layout="any")
