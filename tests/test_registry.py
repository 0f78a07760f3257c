"""Every registered op and merge, proved against torch from its own definition.

Parametrized over the registry itself: an op added to ``compiler/ops`` (or by a user through
``archc.register_op``) is picked up here with no edit. For each, a one-op network built from
the op's ``example`` must have torch's shapes, parameter count and MACs (FlopCounterMode),
give the same training step as an out-of-place twin, survive ``--emit python`` and render.
Incomplete definitions are refused when they are registered.
"""
from __future__ import annotations

import pytest
import torch

from archc.compiler.builder import build_graph, emit_python
from archc.compiler.codegen import inplace
from archc.compiler.ops import OPS, Module, Op, OpDefinitionError, register_op
from archc.compiler.ops.registry import BUILTIN_IO
from archc.compiler.passes import compile_file
from archc.compiler.render import to_dot
from torchcheck import check_in_place, load_emitted, one_thread, static_costs_match  # noqa: F401 (fixture)

EXAMPLES = sorted(n for n in OPS if n not in BUILTIN_IO)


def one_op_network(name: str) -> str:
    op = OPS[name]
    return f"arch one_{name}\ninput [{', '.join(map(str, op.example_input))}]\n{op.example}\n"




@pytest.mark.parametrize("name", EXAMPLES)
def test_op_matches_torch(name, tmp_path):
    g = compile_file(text=one_op_network(name)).graph
    assert name in {g.node(n).op for n in g.topo()} or OPS[name].merge, "the example must use the op"
    model = build_graph(g).eval()
    x = torch.randn(2, *g.input_shape)
    static_costs_match(g, model, x)
    # in place where the graph allows it changes nothing
    if any(inplace.overwritable(g, src, n) for n in g.topo() for src in g.inputs(n)):
        check_in_place(g, model, x)
    # the standalone Python twin computes the same
    emitted = load_emitted(emit_python(g), tmp_path).build().eval()
    emitted.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    with torch.no_grad():
        assert torch.equal(emitted(x), model(x))
    # and it draws: every op is a node of the drawing
    dot = to_dot(g, depth=99)
    assert all(f'"{n}"' in dot or f"\t{n} " in dot for n in g.topo() if not g.node(n).spec.passthrough)


def test_every_definition_is_complete():
    """What codegen, render, hints and the generators read exists for every op."""
    for name, op in OPS.items():
        assert op.doc and op.family, name
        if name not in BUILTIN_IO:
            assert op.example, name
        low, high = op.arity
        assert low >= 0 and (high is None or high >= low), name


@pytest.mark.parametrize("attrs, missing", [
    ({"doc": ""}, "doc"),
    ({"family": "magic"}, "family"),
    ({"example": ""}, "example"),
    ({"lower": Op.lower}, "lower()"),
    ({"weights": ("weight",)}, "tensors()"),
    ({"name": "arch"}, "word of the .arch language"),
    ({"name": "conv"}, "already registered"),
    ({"name": "2x"}, "must be an identifier"),
])
def test_incomplete_definitions_are_refused_at_registration(attrs, missing):
    body = {"name": "probe", "doc": "a probe", "family": "activation", "example": "probe",
            "lower": lambda self, a, ins: Module("torch.nn.ReLU"), **attrs}
    with pytest.raises(OpDefinitionError, match=missing.replace("(", r"\(").replace(")", r"\)")):
        register_op(type("Probe", (Op,), body))
    assert "probe" not in OPS


# Where the compiler itself names an op, and why: the graph's two ends, and `@drop_path(p)`, which
# is sugar for the op of that name.
NAMED_OPS = {("compiler/passes.py", "input"), ("compiler/passes.py", "output"),
             ("compiler/elaborate.py", "output"), ("compiler/elaborate.py", "drop_path")}


def test_nothing_outside_the_registry_keys_on_op_names():
    """No second table: outside compiler/ops, no code compares `.op` with an op's name, indexes
    OPS by a literal name (but NAMED_OPS) or builds a dict keyed by op names. So adding an op is
    its definition plus its test (README, "Your own ops")."""
    import ast
    from pathlib import Path
    from archc.compiler.ops.base import FAMILIES
    root = Path(__file__).resolve().parents[1]
    names = set(OPS) - set(FAMILIES)  # `conv`, `linear`, `scale` also name families, which may key tables
    found = []
    for path in [root / "__init__.py", *(p for d in ("dsl", "compiler", "runtime") for p in (root / d).rglob("*.py"))]:
        rel = path.relative_to(root).as_posix()
        if rel.startswith("compiler/ops/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            literals = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and c.value in set(OPS)}
            if isinstance(node, ast.Compare) and any(isinstance(x, ast.Attribute) and x.attr == "op"
                                                     for x in (node.left, *node.comparators)) and literals:
                found.append(f"{rel}:{node.lineno} compares .op with {sorted(literals)}")
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "OPS":
                found += [f"{rel}:{node.lineno} OPS[{n!r}]" for n in literals if (rel, n) not in NAMED_OPS]
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)} & names
                if len(keys) >= 2:
                    found.append(f"{rel}:{node.lineno} a dict keyed by {sorted(keys)}")
    assert found == []
