"""Expanding merges: ``NAME { branches }`` into IR nodes.

``add`` / ``mul`` / ``concat`` (``expand_branches``): every branch starts from the merge's
input; a branch that is a lone ``for`` gives one branch per iteration, a lone ``X if c`` with
c false gives none, and a merge left with one branch is that branch (so ``shortcut = false``
turns ResNet into its plain twin). ``dense_sum { u1 ... un }`` (``dense_sum``): with o_0 the
input and o_k = u_k(x_k), x_k = sum_{j<k} s_kj * BN_kj(o_j) and the output is the same sum over
o_0 .. o_n; each BN/scale pair is an ordinary ``bn`` + ``scale`` node, the sum an ``add``.
"""
from __future__ import annotations

from archc.compiler.evaluate import define, show, type_name
from archc.compiler.ops import OPS, fmt
from archc.dsl import ast
from archc.dsl.errors import EvalError, LimitError, ShapeError, ValidationError


def expand_branches(el, op, it, cur, scope, env) -> str:
    outs = [el.seq(items, cur, scope, env2) for items, env2 in _branches(el, it, cur, env)]
    if not outs:
        raise ValidationError(f"`{it.kind}` has no branches left", it.span,
                              expected="at least one branch", hint="check the `if` conditions of its branches")
    if len(outs) == 1:
        return outs[0]
    return el.emit(op.name, op.Args(), outs, scope.join(scope.fresh(op.name)), it.span)


def _branches(el, it, cur, env):
    for branch in it.branches:
        if len(branch) == 1 and isinstance(branch[0], ast.Loop):
            for env2 in el.iterations(branch[0], env, cur):
                yield branch[0].body, env2
        elif len(branch) == 1 and _dropped(el, branch[0], env, cur):
            continue
        else:
            yield branch, env


def _dropped(el, item, env, cur) -> bool:
    """A branch line `X if c` (labelled or not) with c false is no branch at all."""
    while isinstance(item, ast.Labeled):
        item = item.item
    return isinstance(item, ast.Optional) and item.other is None and not el.ev(env, cur).truth(item.cond)


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


def dense_sum(el, it, cur, scope, env) -> str:
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
