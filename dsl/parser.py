"""Parse .arch text into the typed AST (dsl/ast.py).

Lark LALR with positions kept; the tree is turned into AST nodes by ``_Builder``, whose
method names are the grammar's rule aliases. Lark's errors become ``ParseError`` with a
caret line and the tokens that would have been accepted.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsl import ast
from dsl.errors import ParseError, Span

_GRAMMAR = Path(__file__).with_name("grammar.lark")

# What the user sees instead of Lark's terminal names.
_TOKEN_NAMES = {
    "_NL": "a newline", "NAME": "a name", "INT": "an integer", "FLOAT": "a number",
    "STRING": "a string", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "SEMICOLON": "';'",
    "EQUAL": "'='", "STAR": "'*'", "AT": "'@'", "DOT": "'.'", "_SEMI": "';'", "MERGE": "a merge",
    "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/', '//' or '%'",
    "$END": "end of file",
}


class _DropNewlinesInBrackets:
    """Post-lexer: newlines inside ( ) and [ ] are not separators, like Python."""

    always_accept = ("_SEP",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_SEP":
                if depth:
                    continue
                tok.type = "_NL" if "\n" in tok.value else "_SEMI"
            yield tok


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(_GRAMMAR.read_text(), parser="lalr", start=["module", "expr"],
                propagate_positions=True, postlex=_DropNewlinesInBrackets(),
                maybe_placeholders=True, cache=True)


def _span(meta_or_tok, file: str, lines: list[str]) -> Span:
    line = getattr(meta_or_tok, "line", 1) or 1
    col = getattr(meta_or_tok, "column", 1) or 1
    end_line = getattr(meta_or_tok, "end_line", line) or line
    end_col = getattr(meta_or_tok, "end_column", col + 1) or col + 1
    if end_line != line:  # a multi-line node: underline to the end of its first line
        end_col = len(lines[line - 1]) + 1 if line <= len(lines) else col + 1
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return Span(file, line, col, end_col, text)


@v_args(meta=True, inline=True)
class _Builder(Transformer):
    """Lark tree -> AST. One method per rule alias; ``meta`` carries the position."""

    def __init__(self, file: str, text: str):
        super().__init__()
        self.file, self.lines = file, text.splitlines()

    def _s(self, meta) -> Span:
        return _span(meta, self.file, self.lines)

    # -- declarations
    def module(self, meta, *decls):
        name, params, inp, init, imports, blocks, body = None, (), None, None, [], [], []
        for d in decls:
            if isinstance(d, tuple) and d and d[0] == "arch":
                if name is not None:
                    raise ParseError("a file declares `arch` twice", d[3],
                                     hint="keep one `arch NAME(...)` header per file")
                _, name, params, _ = d
            elif isinstance(d, tuple) and d and d[0] == "input":
                inp = d[1]
            elif isinstance(d, tuple) and d and d[0] == "init":
                init = d[1]
            elif isinstance(d, ast.Import):
                imports.append(d)
            elif isinstance(d, ast.BlockDef):
                blocks.append(d)
            else:
                body.append(d)
        return ast.Module(self._s(meta), name, params, inp, init, tuple(imports), tuple(blocks), tuple(body))

    def import_decl(self, meta, path):
        return ast.Import(self._s(meta), path[1:-1])

    def arch_decl(self, meta, name, params):
        return ("arch", str(name), params or (), self._s(meta))

    def input_decl(self, meta, expr):
        return ("input", expr)

    def init_decl(self, meta, name):
        return ("init", str(name))

    def block_decl(self, meta, name, params, doc, *rest):
        *attrs, body = rest
        return ast.BlockDef(self._s(meta), str(name), params or (), doc[1:-1] if doc else "",
                            tuple(attrs), body, self.file)

    def params(self, meta, *ps):
        return tuple(p for p in ps if p is not None)

    def param(self, meta, name, default):
        return ast.Param(self._s(meta), str(name), default)

    # -- items
    def labeled(self, meta, label, item):
        return ast.Labeled(self._s(meta), label, item)

    def label_name(self, meta, tok):
        return ast.Label(self._s(meta), (str(tok),))

    label_index = label_name

    def label_format(self, meta, tok):
        return ast.Label(self._s(meta), _format_parts(tok, self.file, self.lines))

    def optional(self, meta, item, cond):
        return ast.Optional(self._s(meta), item, cond, None)

    def choice(self, meta, item, cond, other):
        return ast.Optional(self._s(meta), item, cond, other)

    def repeat(self, meta, item, count):
        return ast.Repeat(self._s(meta), item, count)

    def attributed(self, meta, item, *attrs):
        return ast.Attributed(self._s(meta), item, attrs)

    def attr(self, meta, name, args):
        a, kw = args or ((), ())
        return ast.Attribute(self._s(meta), str(name), a, kw)

    def call(self, meta, name, args):
        a, kw = args or ((), ())
        return ast.Call(self._s(meta), str(name), a, kw)

    def group(self, meta, seq):
        return ast.Group(self._s(meta), seq)

    def merge(self, meta, kind, branches):
        return ast.Merge(self._s(meta), str(kind), branches)

    def loop(self, meta, first, second, iterable, body):
        index, var = (str(first), str(second)) if second is not None else (None, str(first))
        return ast.Loop(self._s(meta), index, var, iterable, body)

    def let(self, meta, name, value):
        return ast.Let(self._s(meta), str(name), value)

    def seq(self, meta, *items):
        return tuple(items)

    def branches(self, meta, *bs):
        return tuple(bs)

    def branch(self, meta, *items):
        return tuple(items)

    # -- expressions
    def args(self, meta, *items):
        pos = tuple(i for i in items if i is not None and not isinstance(i, tuple))
        kw = tuple(i for i in items if isinstance(i, tuple))
        return pos, kw

    def kwarg(self, meta, name, value):
        return (str(name), value)

    def cond(self, meta, then, test, other):
        return ast.Cond(self._s(meta), then, test, other)

    def or_(self, meta, *xs):
        return xs[0] if len(xs) == 1 else ast.BoolOp(self._s(meta), "or", xs)

    def and_(self, meta, *xs):
        return xs[0] if len(xs) == 1 else ast.BoolOp(self._s(meta), "and", xs)

    def not_(self, meta, x):
        return ast.Not(self._s(meta), x)

    def compare(self, meta, first, *rest):
        if not rest:
            return first
        pairs = tuple((str(rest[i]), rest[i + 1]) for i in range(0, len(rest), 2))
        return ast.Compare(self._s(meta), first, pairs)

    def binop(self, meta, left, *rest):
        for i in range(0, len(rest), 2):  # left-associative: a - b - c = (a - b) - c
            left = ast.BinOp(self._s(meta), str(rest[i]), left, rest[i + 1])
        return left

    def unary(self, meta, op, x):
        return ast.Unary(self._s(meta), str(op), x)

    def pow(self, meta, base, exp):
        return ast.BinOp(self._s(meta), "**", base, exp)

    def fcall(self, meta, func, args):
        return ast.FCall(self._s(meta), func, *args)

    def index(self, meta, obj, idx):
        if isinstance(idx, tuple):  # a slice, built by ``slice`` below
            return ast.Slice(self._s(meta), obj, *idx)
        return ast.Index(self._s(meta), obj, idx)

    def slice(self, meta, lo, hi):
        return (lo, hi)

    def attr_get(self, meta, obj, name):
        return ast.Attr(self._s(meta), obj, str(name))

    def int_lit(self, meta, tok):
        return ast.Lit(self._s(meta), int(tok))

    def float_lit(self, meta, tok):
        return ast.Lit(self._s(meta), float(tok))

    def str_lit(self, meta, tok):
        return ast.Lit(self._s(meta), tok[1:-1])

    def true_lit(self, meta):
        return ast.Lit(self._s(meta), True)

    def false_lit(self, meta):
        return ast.Lit(self._s(meta), False)

    def var(self, meta, tok):
        return ast.Var(self._s(meta), str(tok))

    def in_ref(self, meta):
        return ast.InRef(self._s(meta))

    def list_lit(self, meta, *items):
        return ast.ListLit(self._s(meta), tuple(i for i in items if i is not None))

    def list_comp(self, meta, elem, var, iterable, cond):
        return ast.ListComp(self._s(meta), elem, str(var), iterable, cond)


_INTERP = re.compile(r"\{([^{}]*)\}")


def _format_parts(tok: Token, file: str, lines: list[str]) -> tuple:
    """Split a label string like ``"denseblock{i + 1}"`` into text and parsed expressions."""
    text, parts, pos = tok[1:-1], [], 0
    for m in _INTERP.finditer(text):
        parts.append(text[pos:m.start()])
        parts.append(parse_expr(m.group(1), file, lines[tok.line - 1] if tok.line else "",
                                tok.line, tok.column + 1 + m.start(1)))
        pos = m.end()
    parts.append(text[pos:])
    return tuple(p for p in parts if p != "")


def parse_expr(text: str, file: str, line_text: str, line: int, col: int):
    """Parse an expression embedded in a label; positions point into the label."""
    try:
        tree = _lark().parse(text, start="expr")
    except UnexpectedInput as e:
        raise ParseError("bad expression inside a label's { }",
                         Span(file, line, col + (e.column or 1) - 1, 0, line_text),
                         expected="an expression such as {i + 1}", found=repr(text)) from None
    node = _Builder(file, " " * (col - 1) + text).transform(tree)
    return _shift(node, file, line, line_text)


def _shift(node, file, line, line_text):
    """Point a label expression's spans at the label's real line."""
    import dataclasses
    if isinstance(node, tuple):
        return tuple(_shift(n, file, line, line_text) for n in node)
    if not isinstance(node, ast.Node):
        return node
    changes = {f.name: _shift(getattr(node, f.name), file, line, line_text)
               for f in dataclasses.fields(node) if f.name != "span"}
    span = Span(file, line, node.span.col, node.span.end_col, line_text)
    return dataclasses.replace(node, span=span, **changes)


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse one .arch file's text. Raises ParseError with a located message."""
    lines = text.splitlines()
    try:
        tree = _lark().parse(text, start="module")
    except UnexpectedInput as e:
        raise _syntax_error(e, text, file, lines) from None
    return _Builder(file, text).transform(tree)


def _syntax_error(e: UnexpectedInput, text: str, file: str, lines: list[str]) -> ParseError:
    line, col = max(1, e.line or 1), max(1, e.column or 1)
    if isinstance(e, UnexpectedEOF) or getattr(getattr(e, "token", None), "type", "") == "$END":
        line = max(1, len(lines))
        col = len(lines[-1]) + 1 if lines else 1
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    span = Span(file, line, col, col + 1, src)
    expected = sorted({_TOKEN_NAMES.get(t, repr(t.strip('"').lower()) if t.isupper() is False else t)
                       for t in (getattr(e, "expected", None) or getattr(e, "allowed", None) or ())})
    found = None
    if isinstance(e, UnexpectedToken):
        found = _TOKEN_NAMES.get(e.token.type, repr(str(e.token)))
        if e.token.type in ("NAME", "INT", "FLOAT"):
            found = repr(str(e.token))
    elif isinstance(e, UnexpectedCharacters):
        found = repr(text[e.pos_in_stream]) if e.pos_in_stream < len(text) else "end of file"
    hint = _hint(found, expected)
    return ParseError("unexpected " + (found or "input"), span,
                      expected=", ".join(_readable(expected)[:8]) or None, found=found, hint=hint)


def _readable(names: list[str]) -> list[str]:
    return [_TOKEN_NAMES.get(n, n) for n in names]


def _hint(found: str | None, expected: list[str]) -> str:
    if found in ("'='",):
        return "use `==` to compare; `=` only names an argument (conv(64, 3, stride = 2))"
    if "')'" in _readable(expected) or "']'" in _readable(expected):
        return "check that every '(' and '[' is closed"
    if "'}'" in _readable(expected):
        return "check that every '{' is closed; separate items with newlines or ';'"
    return "see the language reference in README.md"
