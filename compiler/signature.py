"""Bind call arguments to an op's signature and coerce them to typed values.

Positional and keyword arguments are matched like Python's; every value is checked against
the argument's kind (``pos_int``, ``pair``, ``pad`` ...) so the IR only ever holds valid,
normalised values (``kernel=3`` becomes ``(3, 3)``).
"""
from __future__ import annotations

import difflib

from archc.compiler.evaluate import show, type_name
from archc.compiler.ops import REQUIRED, Op
from archc.dsl.errors import NameError_, Span, ValidationError

_KIND_TEXT = {
    "pos_int": "a positive int", "nonneg_int": "an int >= 0", "int": "an int", "float": "a number",
    "pos_float": "a number > 0", "unit": "a number in [0, 1]", "floats": "a list of numbers",
    "prob": "a probability in [0, 1)", "bool": "true or false",
    "pair": "a positive int or a list of two", "npair": "an int >= 0 or a list of two",
    "pad": 'an int >= 0, a list of two, "same" or "valid"', "choice": "one of {choices}",
    "shape": "a list of 1 or 3 positive ints, e.g. [3, 32, 32]",
}


def _is_int(v) -> bool:
    return type(v) is int


def _pair(v, low: int):
    if _is_int(v) and v >= low:
        return (v, v)
    if isinstance(v, tuple) and len(v) == 2 and all(_is_int(x) and x >= low for x in v):
        return v
    return None


def coerce(kind: str, v, choices: tuple = ()):
    """Return the normalised value, or None when ``v`` does not fit ``kind``."""
    if kind == "pos_int":
        return v if _is_int(v) and v > 0 else None
    if kind == "nonneg_int":
        return v if _is_int(v) and v >= 0 else None
    if kind == "int":
        return v if _is_int(v) else None
    if kind == "float":
        return float(v) if type(v) in (int, float) else None
    if kind == "pos_float":
        return float(v) if type(v) in (int, float) and v > 0 else None
    if kind == "unit":
        return float(v) if type(v) in (int, float) and 0 <= v <= 1 else None
    if kind == "floats":
        ok = isinstance(v, tuple) and v and all(type(x) in (int, float) for x in v)
        return tuple(float(x) for x in v) if ok else None
    if kind == "prob":
        return float(v) if type(v) in (int, float) and 0 <= v < 1 else None
    if kind == "bool":
        return v if type(v) is bool else None
    if kind == "pair":
        return _pair(v, 1)
    if kind == "npair":
        return _pair(v, 0)
    if kind == "pad":
        return v if v in ("same", "valid") else _pair(v, 0)
    if kind == "choice":
        return v if v in choices else None
    if kind == "shape":
        ok = isinstance(v, tuple) and len(v) in (1, 3) and all(_is_int(x) and x > 0 for x in v)
        return v if ok else None
    raise AssertionError(kind)


def bind_op(op: Op, args: list, kwargs: list, span: Span, arg_spans: dict):
    """Match evaluated arguments to ``op.args``; returns an ``op.Args`` instance."""
    names = [a.name for a in op.args]
    # arg_spans: keyword -> its value's span, and position (0, 1 ...) -> a positional argument's span
    arg_spans = {names[k] if type(k) is int and k < len(names) else k: v for k, v in arg_spans.items()}
    if len(args) > len(names):
        raise ValidationError(f"`{op.name}` takes at most {len(names)} positional arguments",
                              arg_spans.get(len(names), span),
                              expected=f"{op.name}({', '.join(names)})", found=f"{len(args)} arguments")
    values = dict(zip(names, args))
    for key, value in kwargs:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            raise NameError_(f"`{op.name}` has no argument `{key}`", getattr(key, "span", None) or arg_spans.get(key, span),
                             expected=", ".join(names) or "no arguments",
                             hint=f"did you mean `{near[0]}`?" if near else None)
        if key in values:
            raise ValidationError(f"argument `{key}` of `{op.name}` is given twice",
                                  getattr(key, "span", None) or arg_spans.get(key, span))
        values[key] = value
    out = {}
    for a in op.args:
        if a.name not in values:
            if a.default is REQUIRED:
                raise ValidationError(f"`{op.name}` needs its `{a.name}` argument", span,
                                      expected=f"{op.name}({', '.join(names)})",
                                      hint=f"e.g. {op.example.rsplit('; ', 1)[-1]}")
            out[a.name] = a.default
            continue
        v = coerce(a.kind, values[a.name], a.choices)
        if v is None:
            raise ValidationError(f"bad value for `{a.name}` of `{op.name}`", arg_spans.get(a.name, span),
                                  expected=_KIND_TEXT[a.kind].format(choices=", ".join(map(repr, a.choices))),
                                  found=f"{type_name(values[a.name])} {show(values[a.name])}")
        out[a.name] = v
    return op.Args(**out)


def suggest(name: str, candidates) -> str | None:
    near = difflib.get_close_matches(name, list(candidates), n=1)
    return f"did you mean `{near[0]}`?" if near else None
