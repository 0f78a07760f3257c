"""Merges: ``add``, ``mul``, ``concat`` and DSNet's ``dense_sum``, written ``NAME { branches }``.

Each line of a merge is a branch starting from the merge's input (compiler/merges.py expands
them); ``add``/``mul``/``concat`` then join the branch ends in one IR node. ``dense_sum``
expands into ordinary ``bn``, ``scale`` and ``add`` nodes instead.
"""
from __future__ import annotations

import math

from archc.compiler.evaluate import define, show, type_name
from archc.compiler.ops.base import Fold, LazyConcat, Op, ShapeFault, fmt
from archc.compiler.ops.registry import OPS, register_op
from archc.dsl import ast
from archc.dsl.errors import EvalError, LimitError, ShapeError, ValidationError


class _Merge(Op):
    family = "merge"
    arity = (2, None)
    merge = True
    example_input = (4, 6, 6)

    def expand(self, el, it, cur, scope, env) -> str:
        """Elaborate ``NAME { branches }`` into IR nodes; returns the node holding the result."""
        from archc.compiler.merges import expand_branches  # merges.py builds on the elaborator
        return expand_branches(el, self, it, cur, scope, env)

    def hint(self, g, node_id: str) -> tuple[str, str | None]:
        """(``found:`` naming each branch's shape, a concrete fix) for a failed merge."""
        from archc.compiler import merge_hints
        return merge_hints.merge_hint(g, node_id, self.fix)

    def fix(self, g, branches, file: str) -> str | None:
        return None


@register_op
class Add(_Merge):
    name = "add"
    doc = "elementwise sum of equal-shaped branches (ResNet's identity addition)"
    example = "add {\n identity\n { conv(4, 3, pad = 1); bn }\n}"
    fresh = True
    commutative = True
    glyph = "+"

    def infer(self, a, ins):
        first = ins[0]
        for i, s in enumerate(ins[1:], 1):
            if s != first:
                raise ShapeFault("`add` branches have different shapes", found=f"branch 0 {fmt(first)}, "
                                 f"branch {i} {fmt(s)}", expected="equal shapes")
        return first

    def other_ops(self, a, ins, out):
        return math.prod(out) * (len(ins) - 1)

    def lower(self, a, ins):
        return Fold("operator.add", "add_")

    def fix(self, g, branches, file):
        from archc.compiler.merge_hints import add_fix
        return add_fix(branches)


@register_op
class Mul(_Merge):
    name = "mul"
    doc = ("elementwise product, broadcasting sizes of 1 (a squeeze-excitation gate: "
           "`mul { identity \\n { gap; conv(c // 4, 1); relu; conv(c, 1); sigmoid } }`)")
    example = "mul {\n identity\n { gap; conv(2, 1); relu; conv(4, 1); sigmoid }\n}"
    fresh = True
    commutative = True
    glyph = "×"

    def infer(self, a, ins):
        out = list(ins[0])
        for i, s in enumerate(ins[1:], 1):
            if len(s) != len(out) or any(x != y and 1 not in (x, y) for x, y in zip(s, out)):
                raise ShapeFault("`mul` branches do not broadcast", found=f"branch 0 {fmt(ins[0])}, branch {i} {fmt(s)}",
                                 expected="equal sizes, or 1 where a branch is a gate (C×1×1 against C×H×W)")
            out = [max(x, y) for x, y in zip(s, out)]
        return tuple(out)

    def other_ops(self, a, ins, out):
        return math.prod(out) * (len(ins) - 1)

    def lower(self, a, ins):
        return Fold("operator.mul", "mul_")

    def fix(self, g, branches, file):
        from archc.compiler.merge_hints import gate_fix
        return gate_fix(branches)


@register_op
class Concat(_Merge):
    name = "concat"
    doc = "branches joined along channels, in written order (DenseNet's feature concatenation)"
    example = "concat {\n identity\n { bn; relu; conv(3, 3, pad = 1) }\n}"
    lazy = True
    glyph = "concat"

    def infer(self, a, ins):
        first = ins[0]
        for i, s in enumerate(ins[1:], 1):
            if len(s) != len(first) or s[1:] != first[1:]:
                raise ShapeFault("`concat` branches differ in more than channels",
                                 found=f"branch 0 {fmt(first)}, branch {i} {fmt(s)}",
                                 expected="equal height and width")
        return (sum(s[0] for s in ins), *first[1:])

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        return LazyConcat()

    def fix(self, g, branches, file):
        from archc.compiler.merge_hints import concat_fix
        return concat_fix(g, branches, file)


@register_op
class DenseSum(_Merge):
    name = "dense_sum"
    doc = ("DSNet: with o0 the input and ok = uk(xk), xk = Σ_{j<k} s_kj ⊙ BN_kj(o_j); the output is the same "
           "sum over o0 .. on (lowers to bn, scale and add nodes)")
    example = "dense_sum {\n { conv(4, 3, pad = 1); relu }\n { conv(4, 3, pad = 1); relu }\n}"

    def expand(self, el, it, cur, scope, env) -> str:
        return _dense_sum(el, it, cur, scope, env)


# ---- dense_sum's expansion: units, and the weighted sums between them ----------------------------
def _units(el, it, cur, scope, env):
    """Yield (item, env, scope, owns_scope) per unit; ``X * n`` gives n units."""
    for branch in it.branches:
        for item in branch:
            if isinstance(item, ast.Let):  # binds for the units after it, as in a sequence
                env = {**env, item.name: define(item, el.ev(env, cur))}
            elif isinstance(item, ast.Repeat):
                n = el.ev(env, cur)(item.count)
                if type(n) is not int or n < 0:
                    raise EvalError("a repetition count must be an int >= 0", item.count.span,
                                    found=f"{type_name(n)} {show(n)}")
                lim = el.c.limits.max_nodes
                if n * n > lim:  # unit k adds 2k weighted-sum nodes: n units need over n**2
                    raise LimitError(f"`dense_sum` with {n:,} units needs over {n * n:,} nodes, "
                                     f"over the limit {lim:,}", item.count.span,
                                     hint="raise the limit with --max-nodes if this is intended")
                home = scope.child(scope.fresh("unit"))
                for i in range(n):
                    yield item.item, env, home.child(home.claim(str(i), item.span)), True
            elif isinstance(item, ast.Loop):
                for env2 in el.iterations(item, env, cur):
                    yield ast.Group(item.span, item.body), env2, scope, False
            else:
                yield item, env, scope, False


def _dense_sum(el, it, cur, scope, env) -> str:
    outs = [cur]
    for k, (item, env2, uscope, own) in enumerate(_units(el, it, cur, scope, env), 1):
        x = _weighted_sum(el, outs, scope, k, it.span)
        outs.append(el.item(item, x, uscope, env2, own))
        _same_shape(el, outs, item.span)
    if len(outs) == 1:
        raise ValidationError("`dense_sum` has no units", it.span, expected="at least one unit")
    return _weighted_sum(el, outs, scope, len(outs), it.span)


def _same_shape(el, outs, span):
    first, last = el.shape(outs[0]), el.shape(outs[-1])
    if first != last:
        raise ShapeError(f"`dense_sum` unit {len(outs) - 1} changes the shape", span,
                         expected=f"{fmt(first)} (the input of the dense_sum)", found=fmt(last),
                         hint="units of a dense_sum keep their shape; downsample in a block before it")


def _weighted_sum(el, outs, scope, k, span):
    """x_k = sum_j scale_kj * BN_kj(o_j), as named nodes ``sum{k}.norm{j}``/``scale{j}``/``add``."""
    sub = scope.child(scope.fresh(f"sum{k}"))
    terms = []
    for j, o in enumerate(outs):
        bn = el.emit("bn", OPS["bn"].Args(), [o], sub.join(f"norm{j}"), span)
        terms.append(el.emit("scale", OPS["scale"].Args(), [bn], sub.join(f"scale{j}"), span))
    if len(terms) == 1:
        return terms[0]
    return el.emit("add", OPS["add"].Args(), terms, sub.join("add"), span)

