"""Initialisation schemes: how each learned tensor of the built model starts (torch-free).

An arch states its scheme per op kind, as torchvision does per family:

    init resnet = {                                     # defined in any file (archs/lib/resnet.arch)
        conv: kaiming_normal(mode = "fan_out", nonlinearity = "relu")
        bn.weight: ones; bn.bias: zeros
    }
    init resnet { bn.weight in "layer*.*.bn3": zeros if zero_init_residual }   # used, and extended

A rule ``OP[.TENSOR] [in "GLOB"]: INITIALIZER(args) [if COND]`` applies to the tensors of every
node of that op (whose id matches the glob); the last matching rule wins; a tensor no rule
matches keeps PyTorch's own initialisation. Initializer arguments may use ``fan_in``,
``fan_out`` (torch's rule for the tensor) and the arch parameters. Codegen applies the resolved
rules (``compiler/codegen/init.py``); the initializers are ``torch.nn.init.NAME_``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass
from functools import lru_cache

from archc.compiler.evaluate import Evaluator
from archc.compiler.ops import OPS, Arg, fmt
from archc.compiler.signature import bind_op, suggest
from archc.dsl import ast
from archc.dsl.errors import NameError_, ValidationError
from archc.dsl.parser import parse

_NONLINEARITY = ("leaky_relu", "relu", "tanh", "sigmoid", "linear", "selu", "conv2d")
_FAN = Arg("mode", "choice", "fan_in", ("fan_in", "fan_out"))


@dataclass(frozen=True)
class Initializer:
    """One of ``torch.nn.init``'s functions, by its name without the trailing underscore."""
    name: str
    args: tuple = ()
    example: str = ""
    min_dims: int = 0  # the fan-based ones need a weight's 2+ dimensions: torch refuses a bias

    @property
    def Args(self) -> type:  # what bind_op builds: the typed argument values
        return _args_class(self)


@lru_cache(maxsize=None)
def _args_class(init: Initializer) -> type:
    fields = [(a.name, object, dataclasses.field(default=a.default)) for a in init.args]
    return dataclasses.make_dataclass(f"{init.name}_args", fields, frozen=True)


INITIALIZERS = {i.name: i for i in (
    Initializer("zeros"), Initializer("ones"),
    Initializer("constant", (Arg("val", "float", 0.0),), "constant(0.5)"),
    Initializer("normal", (Arg("mean", "float", 0.0), Arg("std", "float", 1.0)), "normal(std = 0.01)"),
    Initializer("trunc_normal", (Arg("mean", "float", 0.0), Arg("std", "float", 1.0), Arg("a", "float", -2.0),
                                 Arg("b", "float", 2.0)), "trunc_normal(std = 0.02)"),
    Initializer("uniform", (Arg("a", "float", 0.0), Arg("b", "float", 1.0)), "uniform(-0.1, 0.1)"),
    *(Initializer(f"kaiming_{d}", (Arg("a", "float", 0.0), _FAN,
                                   Arg("nonlinearity", "choice", "leaky_relu", _NONLINEARITY)),
                  f'kaiming_{d}(mode = "fan_out", nonlinearity = "relu")', 2) for d in ("normal", "uniform")),
    *(Initializer(f"xavier_{d}", (Arg("gain", "float", 1.0),), f"xavier_{d}()", 2) for d in ("normal", "uniform")),
)}
DEFAULT = "default"  # a rule's initializer that leaves PyTorch's own initialisation (undoes an earlier rule)

# Built-in schemes. `torchvision` is the ResNet/DenseNet habit archc always used: Kaiming-normal
# fan-out convs, BN 1 and 0, zero biases; `pytorch` keeps every module's own initialisation.
PRESETS = {
    "pytorch": "",
    "torchvision": 'conv: kaiming_normal(mode = "fan_out", nonlinearity = "relu"); conv.bias: zeros\n'
                   "bn.weight: ones; bn.bias: zeros; linear.bias: zeros",
}


@dataclass(frozen=True)
class InitRule:
    """A resolved rule: which tensors (op, tensor name, node-id glob) start how (initializer + args)."""
    op: str
    param: str | None
    where: str | None
    fn: str  # an INITIALIZERS name, or DEFAULT
    call: object  # the ast.Call, evaluated per tensor (its arguments may use fan_in / fan_out)
    env: dict  # the arch parameters
    span: object

    def matches(self, op: str, node_id: str, param: str) -> bool:
        return (self.op == op and self.param in (None, param)
                and (self.where is None or fnmatch.fnmatchcase(node_id, self.where)))

    def arguments(self, shape: tuple) -> dict:
        """The initializer's keyword arguments for a tensor of ``shape``."""
        fan_in, fan_out = fans(shape)
        ev = Evaluator({**self.env, "fan_in": fan_in, "fan_out": fan_out})
        args = bind_op(INITIALIZERS[self.fn], [ev(a) for a in self.call.args],
                       [(k, ev(v)) for k, v in self.call.kwargs], self.call.span, {})
        return dataclasses.asdict(args)

    def check(self, shape: tuple, node: str, tensor: str) -> None:
        """That the initializer can start ``tensor`` (a name of the op's ``weights``) of ``node``."""
        need = INITIALIZERS[self.fn].min_dims
        if len(shape) >= need:
            self.arguments(shape)
            return
        what = f"{self.op}.{tensor} of `{node}`" if tensor else f"`{node}` ({self.op})"
        fanless = ", ".join(n for n, i in INITIALIZERS.items() if not i.min_dims)
        hint = (f"a rule without `.TENSOR` starts every tensor of `{self.op}`: name the one it is for, e.g. "
                f"`{self.op}.weight: {self.fn}(...)`" if self.param is None and tensor
                else f"start it with an initializer that needs no fans: {fanless}")
        raise ValidationError(f"`{self.fn}` cannot start {what}: it needs a tensor of {need} or more dimensions "
                              f"(it computes fan_in and fan_out)", self.span,
                              found=f"a {len(shape)}-d tensor ({fmt(shape)})", hint=hint)

    def target(self) -> str:
        return self.op + (f".{self.param}" if self.param else "") + (f' in "{self.where}"' if self.where else "")


def check_rules(g) -> None:
    """Every tensor an init rule starts can be started so (``Op.tensors`` gives the shapes): `archc
    check` finds what would otherwise fail in torch.nn.init when the model is built. A rule meets
    the same shape many times (every 3×3 conv of a stage): each (rule, shape) is checked once."""
    checked = set()
    for n in g.topo():
        node = g.node(n)
        for name, shape in node.spec.tensors(node.args, [g.shapes[i] for i in g.inputs(n)]).items():
            rule = rule_for(g.init, node.op, n, name)
            if rule is not None and (id(rule), shape) not in checked:
                rule.check(shape, n, name)
                checked.add((id(rule), shape))


def fans(shape: tuple) -> tuple[int, int]:
    """torch.nn.init's fan_in and fan_out of a tensor; a 1-d tensor (a bias) counts its length for both."""
    if len(shape) < 2:
        n = math.prod(shape) or 1
        return n, n
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def resolve(scheme: ast.InitScheme | None, schemes: dict, params: dict) -> tuple[InitRule, ...]:
    """The rules in force: the named (or default ``torchvision``) scheme's, then the inline ones."""
    base = "torchvision" if scheme is None else scheme.name
    rules = []
    if base is not None:
        rules += _named(base, scheme, schemes, params)
    if scheme is not None:
        rules += _rules(scheme.rules, params)
    return tuple(rules)


def _named(name: str, use: ast.InitScheme | None, schemes: dict, params: dict) -> list[InitRule]:
    if name in schemes:
        return _rules(schemes[name].rules, params)
    if name in PRESETS:
        return _rules(parse(f"init {name} = {{\n{PRESETS[name]}\n}}", f"<init {name}>").schemes[0].rules, params)
    known = [*PRESETS, *schemes]
    raise NameError_(f"unknown init scheme `{name}`", use.span if use else None, expected=", ".join(known),
                     hint=suggest(name, known) or "define it with `init NAME = { rules }` in a file you import")


def _rules(rules: tuple, params: dict) -> list[InitRule]:
    out = []
    for r in rules:
        if r.cond is not None and not Evaluator(params).truth(r.cond):
            continue
        _check_target(r)
        out.append(InitRule(r.op, r.param, r.where, _initializer(r.init), r.init, params, r.span))
        if out[-1].fn != DEFAULT:
            out[-1].arguments((3, 3, 3, 3))  # types and names now, not when a model is built
    return out


def _check_target(r: ast.InitRule) -> None:
    op = OPS.get(r.op)
    if op is None:
        raise NameError_(f"unknown op `{r.op}` in an init rule", r.span, hint=suggest(r.op, list(OPS)))
    if not op.weights:
        raise ValidationError(f"`{r.op}` has no learned tensors to initialise", r.span)
    if r.param is not None and r.param not in op.weights:
        raise NameError_(f"`{r.op}` has no tensor `{r.param}`", r.span, expected=", ".join(op.weights),
                         hint=suggest(r.param, op.weights))


def _initializer(call: ast.Call) -> str:
    if call.name == DEFAULT or call.name in INITIALIZERS:
        return call.name
    known = [*INITIALIZERS, DEFAULT]
    raise NameError_(f"unknown initializer `{call.name}`", call.span, expected=", ".join(known),
                     hint=suggest(call.name, known))


def rule_for(rules: tuple, op: str, node_id: str, param: str) -> InitRule | None:
    """The last rule matching this tensor, or None when none does (or it says ``default``)."""
    for r in reversed(rules):
        if r.matches(op, node_id, param):
            return None if r.fn == DEFAULT else r
    return None
