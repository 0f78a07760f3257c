"""Typed AST of the .arch language: frozen dataclasses, each with its source span.

Expressions (``Expr``) compute values; items (``Item``) build graph nodes. The parser
(dsl/parser.py) builds these from Lark's tree; the elaborator (compiler/elaborate.py)
walks them. ``dump`` prints any node as an indented tree (``archc compile --emit ast``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from archc.dsl.errors import Span


@dataclass(frozen=True, slots=True)
class Node:
    span: Span


class Ident(str):
    """A keyword argument's name (``stride`` in ``conv(64, 3, stride = 2)``) that remembers
    where it was written, so "no argument `strde`" can point at the name itself."""

    span: Span | None = None

    def __new__(cls, text: str, span: Span | None = None):
        self = super().__new__(cls, text)
        self.span = span
        return self


# ---- expressions -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Lit(Node):
    value: object  # int | float | bool | str


@dataclass(frozen=True, slots=True)
class Var(Node):
    name: str


@dataclass(frozen=True, slots=True)
class InRef(Node):
    """``in``: the shape of the tensor flowing into the current item."""


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple


@dataclass(frozen=True, slots=True)
class ListComp(Node):
    elem: object
    var: str
    iterable: object
    cond: object | None


@dataclass(frozen=True, slots=True)
class Cond(Node):
    then: object
    test: object
    other: object


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    operands: tuple


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: object


@dataclass(frozen=True, slots=True)
class Compare(Node):
    first: object
    rest: tuple  # ((op, expr), ...): chained like Python's a < b <= c


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    op: str
    left: object
    right: object


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str
    operand: object


@dataclass(frozen=True, slots=True)
class FCall(Node):
    func: object
    args: tuple
    kwargs: tuple  # ((name, expr), ...)


@dataclass(frozen=True, slots=True)
class Index(Node):
    obj: object
    index: object


@dataclass(frozen=True, slots=True)
class Slice(Node):
    obj: object
    lo: object | None
    hi: object | None


@dataclass(frozen=True, slots=True)
class Attr(Node):
    obj: object
    name: str


# ---- items -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Call(Node):
    """An op (``conv(64, 3)``) or a block instance (``dense_layer(k)``)."""
    name: str
    args: tuple
    kwargs: tuple  # ((name, expr), ...)


@dataclass(frozen=True, slots=True)
class Group(Node):
    items: tuple


@dataclass(frozen=True, slots=True)
class Merge(Node):
    kind: str  # a registered merge's name: "add", "concat", "mul", "dense_sum" ...
    branches: tuple  # tuple of tuples of items (dense_sum: one branch, its items are the units)


@dataclass(frozen=True, slots=True)
class Loop(Node):
    index: str | None  # ``for i, x in xs``: i is the position
    var: str
    iterable: object
    body: tuple


@dataclass(frozen=True, slots=True)
class Let(Node):
    name: str
    value: object
    params: tuple | None = None  # of Param: ``let f(x, d = 8) = expr`` defines a function


@dataclass(frozen=True, slots=True)
class Label(Node):
    parts: tuple  # str pieces and expressions to interpolate: "denseblock{i + 1}"


@dataclass(frozen=True, slots=True)
class Labeled(Node):
    label: Label
    item: object


@dataclass(frozen=True, slots=True)
class Optional(Node):
    item: object
    cond: object
    other: object | None  # ``X if c else Y``; None drops the item when c is false


@dataclass(frozen=True, slots=True)
class Repeat(Node):
    item: object
    count: object


@dataclass(frozen=True, slots=True)
class Attribute(Node):
    """``@checkpoint`` or ``@drop_path(0.1)`` on an item."""
    name: str
    args: tuple
    kwargs: tuple


@dataclass(frozen=True, slots=True)
class Attributed(Node):
    item: object
    attrs: tuple  # of Attribute


# ---- declarations ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Param(Node):
    name: str
    default: object | None


@dataclass(frozen=True, slots=True)
class BlockDef(Node):
    name: str
    params: tuple  # of Param
    doc: str
    attrs: tuple  # of Attribute, applied to every instance
    body: object
    file: str


@dataclass(frozen=True, slots=True)
class InitRule(Node):
    """``conv.weight in "layer*": kaiming_normal(mode = "fan_out") if cond``: how matching tensors start."""
    op: str
    param: str | None  # None: every tensor of the op
    where: str | None  # a glob on node ids; None: everywhere
    init: object  # a Call: the initializer and its arguments
    cond: object | None


@dataclass(frozen=True, slots=True)
class InitScheme(Node):
    """``init NAME`` (use a scheme), ``init [NAME] { rules }`` (extend one) or ``init NAME = { rules }``
    (define one, in any file, for ``init NAME`` to use)."""
    name: str | None  # the scheme used or extended; the one defined, with ``define``
    rules: tuple  # of InitRule, later ones winning
    define: bool = False
    file: str = ""


@dataclass(frozen=True, slots=True)
class Import(Node):
    path: str


@dataclass(frozen=True, slots=True)
class Module(Node):
    """One parsed file. ``name`` is None for a library file (blocks only)."""
    name: str | None
    params: tuple
    input: object | None
    init: object | None  # InitScheme in use, or None (the default scheme)
    imports: tuple
    blocks: tuple
    body: tuple
    schemes: tuple = ()  # InitSchemes defined in this file (``init NAME = { ... }``)


def dump(node, indent: int = 0) -> str:
    """An indented, position-annotated text form of an AST (``--emit ast``)."""
    pad = "  " * indent
    if isinstance(node, tuple):
        return "\n".join(dump(n, indent) for n in node) if node else f"{pad}()"
    if not isinstance(node, Node):
        return f"{pad}{node!r}"
    head = f"{pad}{type(node).__name__} @{node.span.line}:{node.span.col}"
    simple, nested = [], []
    for f in fields(node):
        if f.name in ("span", "file"):
            continue
        value = getattr(node, f.name)
        if isinstance(value, (Node, tuple)) and value != ():
            nested.append(f"{pad}  .{f.name}:\n{dump(value, indent + 2)}")
        else:
            simple.append(f"{f.name}={value!r}")
    return "\n".join([f"{head} {' '.join(simple)}".rstrip(), *nested])
