"""Evaluate .arch expressions: ints, floats, bools, strings and (immutable) lists.

Our own tree-walking evaluator (no Python ``eval``). Every result is size-checked before
it is built, so ``2 ** 10 ** 10``, ``range(10 ** 12)`` or ``[0] * 10 ** 9`` are refused at
once with a ``LimitError`` instead of hanging or exhausting memory.
"""
from __future__ import annotations

import difflib
import math
import operator

from archc.dsl import ast
from archc.dsl.errors import EvalError, LimitError, NameError_, ValueError_

MAX_INT_BITS = 64          # |ints| < 2**64: far above any width, small enough to be instant
MAX_LIST = 1_000_000       # elements in one list (ranges, repetitions, comprehensions)
MAX_STR = 10_000           # characters in one string
MAX_WORK = 20_000_000      # evaluation steps + list elements built, all expressions of a compilation


class Work:
    """What is left of an evaluation budget: one step per expression evaluated, plus one per
    list element or character built. The elaborator shares one (10 per allowed node) among all
    its evaluations, so ``[[0 for i in xs] for j in xs]`` or a ``for`` loop re-evaluating a long
    list is refused after seconds instead of running for hours."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int = MAX_WORK):
        self.left = self.limit = limit

    def spend(self, n: int, node) -> None:
        self.left -= n
        if self.left < 0:
            raise LimitError(f"the spec's expressions take more than {self.limit:,} steps to evaluate",
                             node.span, hint="check ranges, repetitions and comprehensions, "
                                             "or raise the limit with --max-nodes (10 steps per node)")


MAX_CALLS = 100  # nested calls of user functions (`let f(x) = ...`) in one evaluation


class Function:
    """A user function, ``let f(v, d = 8) = expr``: its parameters and body, and the names it saw
    where it was defined (a function cannot see itself, so it cannot recurse)."""

    __slots__ = ("let", "env")

    def __init__(self, let: ast.Let, env: dict):
        self.let, self.env = let, dict(env)

    def call(self, ev: "Evaluator", node, args: list, kwargs: list):
        names = [p.name for p in self.let.params]
        name = self.let.name
        if len(args) > len(names):
            raise EvalError(f"`{name}` takes {len(names)} arguments", node.span,
                            expected=f"{name}({', '.join(names)})", found=f"{len(args)} arguments")
        bound = dict(zip(names, args))
        for key, value in kwargs:
            if key not in names or key in bound:
                raise EvalError(f"`{name}` {'has no parameter' if key not in names else 'gets twice'} `{key}`",
                                node.span, expected=f"{name}({', '.join(names)})")
            bound[key] = value
        for p in self.let.params:
            if p.name not in bound:
                if p.default is None:
                    raise EvalError(f"`{name}` needs its `{p.name}` argument", node.span,
                                    expected=f"{name}({', '.join(names)})")
                bound[p.name] = Evaluator(self.env, ev.shape, ev.work, ev.calls)(p.default)
        if ev.calls >= MAX_CALLS:
            raise LimitError(f"function calls nest deeper than {MAX_CALLS}", node.span,
                             hint="a function passed to itself never ends")
        itself = {} if name in self.env else {name: Itself()}  # an outer `name` stays callable from the body
        return Evaluator({**self.env, **itself, **bound}, ev.shape, ev.work, ev.calls + 1)(self.let.value)


class Itself:
    """What a function's own name means in its body (when no outer definition has that name): a call
    through it is refused as recursion, which the language leaves out so that every spec ends."""


def define(let: ast.Let, ev: "Evaluator"):
    """The value a ``let`` binds: its expression's value, or a Function."""
    return Function(let, ev.env) if let.params is not None else ev(let.value)


class ShapeRef:
    """The value of ``in``: the current input's shape; ``in.c``, ``in.h``, ``in.w``."""

    def __init__(self, shape: tuple):
        self.shape = shape

    def get(self, name: str, node) -> object:
        s = self.shape
        if name == "shape":
            return s
        if name == "c":
            return s[0]
        if name in ("h", "w") and len(s) == 3:
            return s[1] if name == "h" else s[2]
        raise EvalError(f"`in.{name}` is not defined for a {'×'.join(map(str, s))} input", node.span,
                        expected="in.c, in.h, in.w (feature maps) or in.c, in.shape (vectors)",
                        found=f"in.{name}")


def type_name(v) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", tuple: "list",
            ShapeRef: "shape", Function: "function"}.get(type(v), type(v).__name__)


def show(v, limit: int = 60) -> str:
    """A value as .arch source would write it: [3, 224, 224], true, "same" (cut to ``limit`` chars)."""
    if type(v) is bool:
        text = "true" if v else "false"
    elif type(v) is str:
        text = '"' + v + '"'
    elif type(v) is tuple:
        text = "[" + ", ".join(show(x, limit) for x in v[:limit // 2]) + (", ..." if len(v) > limit // 2 else "") + "]"
    elif isinstance(v, ShapeRef):
        text = "in"
    elif isinstance(v, Function):
        text = f"{v.let.name}(...)"
    else:
        text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(value, node):
    if type(value) is float and not math.isfinite(value):
        raise LimitError("number result is infinite", node.span, expected="a finite number",
                         hint="check the expression for huge factors or exponents")
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise LimitError("integer result is too large", node.span, expected=f"|value| < 2**{MAX_INT_BITS}",
                         hint="widths, depths and counts are small numbers; check the expression")
    if isinstance(value, (tuple, str)):
        limit = MAX_LIST if isinstance(value, tuple) else MAX_STR
        if len(value) > limit:
            raise LimitError(f"{type_name(value)} of {len(value):,} {'elements' if isinstance(value, tuple) else 'characters'} is too long",
                             node.span, expected=f"at most {limit:,}")
    return value


def _num(v, node, what="a number"):
    if type(v) not in (int, float):
        raise EvalError(f"expected {what}", node.span, expected=what, found=f"{type_name(v)} {show(v)}")
    return v


def _pow(a, b, node):
    _num(a, node), _num(b, node)
    # |a| >= 2**(bits-1), so a**b has over b*(bits-1) bits: refuse before computing it
    if type(a) is int and type(b) is int and b >= 0 and abs(a) > 1 and b * (abs(a).bit_length() - 1) > MAX_INT_BITS:
        raise LimitError("`**` result is too large", node.span, expected=f"|value| < 2**{MAX_INT_BITS}",
                         hint="widths, depths and counts are small numbers; check the expression")
    if type(b) is int and b < 0 and a == 0:
        raise ValueError_("0 raised to a negative power", node.span)
    try:
        result = a ** b
    except OverflowError:
        raise LimitError("`**` result overflows a float", node.span) from None
    if type(result) is complex:
        raise EvalError("a negative number raised to a fractional power", node.span,
                        found=f"{show(a)} ** {show(b)}", hint="the result would be a complex number")
    return result


def _mul(a, b, node):
    if isinstance(a, (tuple, str)) or isinstance(b, (tuple, str)):  # list/string repetition
        seq, n = (a, b) if isinstance(a, (tuple, str)) else (b, a)
        if type(n) is not int:
            raise EvalError("a list can only be repeated by an int", node.span, found=type_name(n))
        if len(seq) * max(n, 0) > MAX_LIST:
            raise LimitError("list repetition is too long", node.span, expected=f"at most {MAX_LIST:,} elements")
        return seq * n
    return _num(a, node) * _num(b, node)


def _div(fn):
    def op(a, b, node):
        _num(a, node), _num(b, node)
        if b == 0:
            raise ValueError_("division by zero", node.span, hint="check the divisor expression")
        return fn(a, b)
    return op


def _add(a, b, node):
    if type(a) is type(b) and isinstance(a, (tuple, str)):
        return a + b
    return _num(a, node) + _num(b, node)


_BIN = {"+": _add, "-": lambda a, b, n: _num(a, n) - _num(b, n), "*": _mul, "**": _pow,
        "/": _div(operator.truediv), "//": _div(operator.floordiv), "%": _div(operator.mod)}
_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


def _range(node, *args):
    if not 1 <= len(args) <= 3 or any(type(a) is not int for a in args):
        raise EvalError("range takes 1 to 3 ints", node.span, found=", ".join(map(type_name, args)))
    if len(args) == 3 and args[2] == 0:
        raise EvalError("range step must not be zero", node.span)
    r = range(*args)
    try:
        n = len(r)
    except OverflowError:  # over 2**63 elements
        n = None
    if n is None or n > MAX_LIST:
        raise LimitError(f"range of {n:,} elements is too long" if n else "range is too long",
                         node.span, expected=f"at most {MAX_LIST:,} elements")
    return tuple(r)


def _seq_fn(fn, what):
    def call(node, *args):
        if len(args) == 1 and isinstance(args[0], tuple):
            args = args[0]
        if not args:
            raise EvalError(f"{what} of an empty list", node.span)
        return fn(_num(a, node) for a in args)
    return call


def _len(node, x):
    if not isinstance(x, (tuple, str)):
        raise EvalError("len needs a list or string", node.span, found=type_name(x))
    return len(x)


BUILTINS = {
    "min": _seq_fn(min, "min"), "max": _seq_fn(max, "max"), "sum": lambda n, xs: _seq_fn(sum, "sum")(n, xs) if xs else 0,
    "len": _len, "range": _range, "abs": lambda n, x: abs(_num(x, n)),
    "int": lambda n, x: int(_num(x, n)), "float": lambda n, x: float(_num(x, n)),
    "round": lambda n, x: round(_num(x, n)), "str": lambda n, x: str(x), "sqrt": lambda n, x: _sqrt(_num(x, n), n),
    "ceil": lambda n, x: math.ceil(_num(x, n)), "floor": lambda n, x: math.floor(_num(x, n)),
    "log": lambda n, x, base=math.e: _log(_num(x, n), _num(base, n), n),
}


def _log(x, base, node) -> float:
    if x <= 0 or base <= 0 or base == 1:
        raise ValueError_("log needs a positive number and a positive base other than 1", node.span,
                          found=f"log({show(x)}, {show(base)})")
    return math.log(x, base)


def _sqrt(x, node) -> float:
    if x < 0:
        raise ValueError_("square root of a negative number", node.span, found=show(x))
    return math.sqrt(x)


class Evaluator:
    """Evaluates expressions in an environment (a dict of name -> value) and an ``in`` shape."""

    def __init__(self, env: dict, shape: tuple | None = None, work: Work | None = None, calls: int = 0):
        self.env, self.shape = env, shape
        self.work = work or Work()
        self.calls = calls  # user-function calls this evaluation is nested in
        self._level = 0  # recursion depth of __call__, to turn a RecursionError into a LimitError

    def __call__(self, node):
        self._level += 1
        try:
            value = _check(getattr(self, "_" + type(node).__name__)(node), node)
            self.work.spend(1 + len(value) if isinstance(value, (tuple, str)) else 1, node)
            return value
        except RecursionError:
            if self._level > 1:
                raise
            raise LimitError("this expression nests too deeply to evaluate", node.span,
                             hint="split it with `let`, or lower --max-depth") from None
        finally:
            self._level -= 1

    def _Lit(self, n):
        return n.value

    def _Var(self, n):
        if n.name in self.env:
            return self.env[n.name]
        near = difflib.get_close_matches(n.name, [*self.env, *BUILTINS], n=1)
        raise NameError_(f"unknown name `{n.name}`", n.span,
                         hint=f"did you mean `{near[0]}`?" if near else "define it with `let` or as a parameter")

    def _InRef(self, n):
        if self.shape is None:
            raise EvalError("`in` is only defined inside the network body", n.span,
                            hint="arch parameters and the input shape cannot depend on `in`")
        return ShapeRef(self.shape)

    def _ListLit(self, n):
        return tuple(self(i) for i in n.items)

    def _ListComp(self, n):
        items, saved = self(n.iterable), self.env
        if not isinstance(items, tuple):
            raise EvalError("a comprehension iterates over a list", n.iterable.span, found=type_name(items))
        out = []
        try:
            for v in items:
                self.env = {**saved, n.var: v}
                if n.cond is None or self.truth(n.cond):
                    out.append(self(n.elem))
        finally:
            self.env = saved
        return tuple(out)

    def _Cond(self, n):
        return self(n.then) if self.truth(n.test) else self(n.other)

    def _BoolOp(self, n):
        for operand in n.operands:
            v = self.truth(operand)
            if v == (n.op == "or"):
                return v
        return n.op == "and"

    def _Not(self, n):
        return not self.truth(n.operand)

    def _Compare(self, n):
        left = self(n.first)
        for op, right_node in n.rest:
            right = self(right_node)
            try:
                ok = _CMP[op](left, right)
            except TypeError:
                raise EvalError(f"cannot compare {type_name(left)} {op} {type_name(right)}", n.span) from None
            if not ok:
                return False
            left = right
        return True

    def _BinOp(self, n):
        return _BIN[n.op](self(n.left), self(n.right), n)

    def _Unary(self, n):
        v = _num(self(n.operand), n)
        return -v if n.op == "-" else v

    def _FCall(self, n):
        if isinstance(n.func, ast.Var) and isinstance(self.env.get(n.func.name), Function):
            return self.env[n.func.name].call(self, n, [self(a) for a in n.args],
                                              [(k, self(v)) for k, v in n.kwargs])
        if isinstance(n.func, ast.Var) and isinstance(self.env.get(n.func.name), Itself):
            raise NameError_(f"`{n.func.name}` calls itself: functions cannot recurse", n.func.span,
                            hint="compute the repetition with a list and `sum`/`max`/`min`, e.g. "
                                 "`sum([k * i for i in range(n)])`, or a `for` loop of items")
        if not isinstance(n.func, ast.Var) or n.func.name not in BUILTINS:
            name = n.func.name if isinstance(n.func, ast.Var) else "this expression"
            known = [*BUILTINS, *(k for k, v in self.env.items() if isinstance(v, Function))]
            near = difflib.get_close_matches(name, known, n=1)
            raise NameError_(f"unknown function `{name}`", n.func.span, expected=", ".join(known),
                             hint=f"did you mean `{near[0]}`?" if near else "define one with `let NAME(params) = expr`")
        if n.kwargs:
            raise EvalError(f"`{n.func.name}` takes no keyword arguments", n.span)
        try:
            return BUILTINS[n.func.name](n, *(self(a) for a in n.args))
        except TypeError:
            raise EvalError(f"wrong number of arguments to `{n.func.name}`", n.span) from None

    def _Index(self, n):
        obj, idx = self(n.obj), self(n.index)
        if not isinstance(obj, (tuple, str)) or type(idx) is not int:
            raise EvalError("indexing needs a list and an int", n.span,
                            found=f"{type_name(obj)}[{type_name(idx)}]")
        if not -len(obj) <= idx < len(obj):
            raise ValueError_(f"index {idx} is out of range for a list of {len(obj)}", n.span)
        return obj[idx]

    def _Slice(self, n):
        obj = self(n.obj)
        lo = None if n.lo is None else self(n.lo)
        hi = None if n.hi is None else self(n.hi)
        if not isinstance(obj, (tuple, str)) or any(v is not None and type(v) is not int for v in (lo, hi)):
            raise EvalError("slicing needs a list and int bounds", n.span, found=type_name(obj))
        return obj[lo:hi]

    def _Attr(self, n):
        obj = self(n.obj)
        if isinstance(obj, ShapeRef):
            return obj.get(n.name, n)
        raise EvalError(f"`.{n.name}` is only defined on `in`", n.span, found=type_name(obj))

    def truth(self, node) -> bool:
        v = self(node)
        if type(v) is not bool:
            raise EvalError("a condition must be true or false", node.span, expected="bool",
                            found=f"{type_name(v)} {show(v)}", hint="compare explicitly, e.g. `n > 0`")
        return v
