"""Expanding merges: ``NAME { branches }`` into IR nodes (a merge op's default ``expand``).

Every branch starts from the merge's input; a branch that is a lone ``for`` gives one branch per
iteration, a lone ``X if c`` with c false gives none, and a merge left with one branch is that
branch (so ``shortcut = false`` turns ResNet into its plain twin). A merge with a lowering of its
own (``dense_sum``) defines ``expand`` in its definition instead (compiler/ops/merge.py).
"""
from __future__ import annotations

from archc.dsl import ast
from archc.dsl.errors import ValidationError


def expand_branches(el, op, it, cur, scope, env) -> str:
    if len(it.branches) == 1 and not (len(it.branches[0]) == 1 and isinstance(it.branches[0][0], ast.Loop)):
        n = len(it.branches[0])
        raise ValidationError(f"`{it.kind}` is written with one branch", it.span, expected="a branch per line",
                              found=f"one branch of {n} item{'s' * (n != 1)}",
                              hint=f"each line is a branch and `;` separates the items of one branch: write "
                                   f"`{it.kind} {{`, then a line per branch (e.g. `identity`, then "
                                   "`{ conv(64, 3, pad = 1); bn }`), then `}`")
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
