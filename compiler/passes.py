"""The front end as a straight list of named passes over one ``Compilation``.

    load -> elaborate -> validate -> infer-shapes -> costs

Each pass states its contract in its docstring; ``run(comp, until=NAME)`` stops after a
pass so any stage can be dumped (``archc compile --emit ast|ir|json``). No torch here.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

from archc.compiler.elaborate import Elaborator, Limits, _Ctx
from archc.compiler.evaluate import Evaluator, define, show, type_name
from archc.compiler.init import check_rules, resolve as resolve_init
from archc.compiler.ir import Cost, Graph, OpNode
from archc.compiler.ops import OPS
from archc.compiler.scope import GRAPH_ENDS, Scope
from archc.compiler.shapes import InferShapes
from archc.compiler.signature import coerce
from archc.dsl import loader
from archc.dsl.errors import UsageError, ValidationError
from archc.dsl.parser import parse_expr

@dataclass
class Compilation:
    path: str | None = None  # a file, or None with ``text``
    text: str | None = None
    overrides: dict = field(default_factory=dict)  # --set name=value, values already evaluated
    limits: Limits = field(default_factory=Limits)
    program: loader.Program | None = None
    graph: Graph | None = None


class Load:
    """`load`: path/text -> Program (typed AST of the main file + imported blocks)."""
    name = "load"

    def run(self, comp: Compilation):
        comp.program = loader.load(comp.path, comp.text, comp.limits.max_depth)


class Elaborate:
    """`elaborate`: Program + overrides -> Graph with input/output nodes and shapes."""
    name = "elaborate"

    def run(self, comp: Compilation):
        m = comp.program.main
        if m.name is None:
            raise ValidationError("this file has no `arch` header", m.span,
                                  expected="arch NAME(params...) followed by `input [C, H, W]`",
                                  hint="library files are imported, not compiled")
        params = bind_params(m, comp.overrides)
        names = {**_library(comp.program.lets), **params}  # what blocks and the body can read
        ev = Evaluator(names)
        if m.input is None:
            raise ValidationError(f"arch `{m.name}` declares no input shape", m.span, expected="input [C, H, W]")
        value = ev(m.input)
        shape = coerce("shape", value)
        if shape is None:
            raise ValidationError("bad input shape", m.input.span, expected="a list of 1 or 3 positive ints",
                                  found=f"{type_name(value)} {show(value)}")
        init = resolve_init(m.init, comp.program.schemes, params)
        g = comp.graph = Graph(m.name, params, shape, init)  # set first: a failed pass leaves the partial graph
        root = Scope()
        root.used.update(GRAPH_ENDS)
        el = Elaborator(_Ctx(g, comp.program.blocks, names, comp.limits, root=root))
        g.input_id = el.emit("input", OPS["input"].Args(shape), [], "input", m.span)
        last = el.seq(m.body, g.input_id, root, names)
        g.output_id = el.emit("output", OPS["output"].Args(), [last], "output", m.span)
        g.aux_ids = el.aux_outputs()


def _library(lets: list) -> dict:
    """The values and functions that imported library files define with top-level ``let``s, in
    load order (each sees the ones before it); the arch's parameters take precedence over them."""
    env = {}
    for let in lets:
        env[let.name] = define(let, Evaluator(env))
    return env


def bind_params(m, overrides: dict) -> dict:
    """Arch parameters: defaults evaluated in order, then ``--set`` overrides, type-checked."""
    names = [p.name for p in m.params]
    for key in overrides:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            raise UsageError(f"`--set {key}`: arch `{m.name}` has no parameter `{key}`", where="--set",
                             expected=", ".join(names) or "no parameters",
                             hint=f"did you mean `{near[0]}`?" if near else None)
    params = {}
    for p in m.params:
        default = Evaluator(params)(p.default) if p.default is not None else None
        if p.name in overrides:
            value = _as_dsl(overrides[p.name])
            if default is not None and not _same_type(default, value):
                raise UsageError(f"`--set {p.name}` has the wrong type", where="--set",
                                 expected=f"{type_name(default)} (default {show(default)})",
                                 found=f"{type_name(value)} {show(value)}")
            params[p.name] = value
        elif default is None:
            # located at the parameter: the header is where a default would go
            raise UsageError(f"arch `{m.name}` needs `--set {p.name}=...`", p.span, expected="a value",
                             hint=f"pass `--set {p.name}=VALUE`, or give it a default: `{p.name} = ...`")
        else:
            params[p.name] = default
    return params


def _as_dsl(v):
    """The language's lists are tuples; a Python caller's lists (``build(..., blocks=[2, 2])``) become them."""
    return tuple(_as_dsl(x) for x in v) if isinstance(v, (list, tuple)) else v


def _same_type(a, b) -> bool:
    return type(a) is type(b) or (type(a) is float and type(b) is int)


def parse_value(text: str, key: str):
    """A ``--set`` value: an .arch expression (``12``, ``[6, 12]``, ``true``, ``"same"``)."""
    from archc.dsl.errors import ArchError
    from archc.dsl.text import printable
    try:
        return Evaluator({})(parse_expr(text, "--set", text, 1, 1))
    except ArchError as e:
        python_bool = e.what in ("unknown name `True`", "unknown name `False`")
        word = text.strip().isidentifier() and not python_bool  # `--set act=silu`: meant as a string
        hint = ("booleans are written `true` and `false`" if python_bool else
                f"a string is written in double quotes, and the shell needs them quoted: "
                f"--set '{printable(key, 40)}=\"{printable(text.strip(), 40)}\"'" if word else None)
        raise UsageError(f"`{printable(f'--set {key}={text}', 120)}`: not a value", where="--set",
                         expected="a number, bool, string or list, e.g. --set blocks=[6,12,24,16] or "
                                  "--set 'act=\"silu\"'", found=printable(e.what), hint=hint) from None


class Validate:
    """`validate`: one input, one output, acyclic, arity, known ops, typed arguments."""
    name = "validate"

    def run(self, comp: Compilation):
        g = comp.graph
        cycle = g.find_cycle()
        if cycle:
            raise ValidationError(f"the graph has a cycle through {', '.join(cycle)}", g.node(cycle[0]).span)
        if g.sources() != [g.input_id] or sorted(g.sinks()) != sorted(g.output_ids):
            raise ValidationError("the graph must have exactly one input and its declared outputs", None,
                                  found=f"inputs {g.sources()}, outputs {g.sinks()}")
        for n in g.topo():
            _check_node(g.node(n), len(g.inputs(n)))


def _check_node(node: OpNode, n_in: int):
    spec = OPS.get(node.op)
    if spec is None:
        raise ValidationError(f"unknown op `{node.op}`", node.span)
    low, high = spec.arity
    if n_in < low or (high is not None and n_in > high):
        raise ValidationError(f"`{node.op}` at `{node.id}` has {n_in} inputs", node.span,
                              expected=f"{low}" + ("+" if high is None else "" if high == low else f" to {high}"))
    if not isinstance(node.args, spec.Args):
        raise ValidationError(f"`{node.id}` carries arguments of the wrong type", node.span)


class Costs:
    """`costs`: params, MACs, other ops and kept activations per node (needs shapes)."""
    name = "costs"

    def run(self, comp: Compilation):
        g = comp.graph
        for n in g.topo():
            node, out = g.node(n), g.shapes[n]
            ins = [g.shapes[i] for i in g.inputs(n)]
            spec, a = node.spec, node.args
            kept = math.prod(out) if _kept(g, n) else 0
            g.costs[n] = Cost(spec.params(a, ins), spec.macs(a, ins, out), spec.other_ops(a, ins, out), kept)


def _kept(g, n: str) -> bool:
    """Whether the compiled module keeps this node's output for backward.

    Views (and the output) are free. Inside a checkpoint region only the values read outside
    it are kept; the rest is recomputed. A lazy op (concat) is a list of its pieces until a
    non-lazy op reads it (codegen's lowering), and that `cat` runs inside the reader's region
    when there is one, so it is kept only when a reader outside every region exists.
    """
    spec = g.node(n).spec
    if spec.view:
        return False
    readers = g.consumers(n)
    if spec.lazy:
        return any(not g.node(r).checkpoint for r in readers if not g.node(r).spec.lazy)
    return not g.node(n).checkpoint or any(g.node(r).checkpoint != g.node(n).checkpoint for r in readers)


class _Shapes:
    name = "infer-shapes"

    def run(self, comp: Compilation):
        InferShapes().run(comp.graph)


class CheckInit:
    """`init`: every init rule fits the tensors it starts (dimensions, arguments with their fans)."""
    name = "init"

    def run(self, comp: Compilation):
        check_rules(comp.graph)


PASSES = (Load(), Elaborate(), Validate(), _Shapes(), CheckInit(), Costs())


def run(comp: Compilation, until: str | None = None) -> Compilation:
    for p in PASSES:
        p.run(comp)
        if p.name == until:
            break
    return comp


def compile_file(path: str | Path | None = None, text: str | None = None, overrides: dict | None = None,
                 limits: Limits | None = None, until: str | None = None) -> Compilation:
    comp = Compilation(str(path) if path is not None else None, text, overrides or {}, limits or Limits())
    return run(comp, until)
