"""Parse .arch text into the typed AST (dsl/ast.py).

Lark LALR with positions kept; the tree is turned into AST nodes by ``_Builder``, whose
method names are the grammar's rule aliases. Lark's errors become ``ParseError`` with a
caret line and the tokens that would have been accepted.
"""
from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from archc.dsl import ast
from archc.dsl.errors import ArchError, LimitError, ParseError, Span

_GRAMMAR = Path(__file__).with_name("grammar.lark")

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
class _Builder(Transformer_NonRecursive):  # iterative: deep input cannot overflow the stack
    """Lark tree -> AST. One method per rule alias; ``meta`` carries the position."""

    def __init__(self, file: str, text: str):
        super().__init__()
        self.file, self.lines = file, text.splitlines()

    def _s(self, meta) -> Span:
        return _span(meta, self.file, self.lines)

    # -- declarations
    def module(self, meta, *decls):
        name, params, inp, init, imports, blocks, body, schemes = None, (), None, None, [], [], [], []
        arch_span = None
        for d in decls:
            if isinstance(d, tuple) and d and d[0] == "arch":
                if name is not None:
                    raise ParseError("a file declares `arch` twice", d[3],
                                     hint="keep one `arch NAME(...)` header per file")
                _, name, params, arch_span = d
            elif isinstance(d, tuple) and d and d[0] == "input":
                if inp is not None:
                    raise ParseError("a file declares `input` twice", d[2], hint="keep one `input [C, H, W]` line")
                inp = d[1]
            elif isinstance(d, ast.InitScheme) and d.define:
                schemes.append(d)
            elif isinstance(d, ast.InitScheme):
                if init is not None:
                    raise ParseError("a file declares `init` twice", d.span,
                                     hint="keep one `init` line; extend a scheme with `init NAME { rules }`")
                init = d
            elif isinstance(d, ast.Import):
                imports.append(d)
            elif isinstance(d, ast.BlockDef):
                blocks.append(d)
            else:
                body.append(d)
        # The module's span (used by "declares no input shape" and the like) is its `arch` header,
        # else its first declaration: Lark's would start at a leading comment's newline.
        first = next((d[-1] if isinstance(d, tuple) else d.span for d in decls
                      if isinstance(d, ast.Node) or (isinstance(d, tuple) and isinstance(d[-1], Span))), None)
        span = arch_span or first or Span(self.file, 1, 1, 2, self.lines[0] if self.lines else "")
        return ast.Module(span, name, params, inp, init, tuple(imports), tuple(blocks), tuple(body), tuple(schemes))

    def import_decl(self, meta, path):
        return ast.Import(self._s(meta), path[1:-1])

    def arch_decl(self, meta, name, params):
        return ("arch", str(name), params or (), self._s(meta))

    def input_decl(self, meta, expr):
        return ("input", expr, self._s(meta))

    def init_use(self, meta, name):
        return ast.InitScheme(self._s(meta), str(name), (), False, self.file)

    def init_inline(self, meta, name, rules):
        return ast.InitScheme(self._s(meta), str(name) if name is not None else None, rules, False, self.file)

    def init_def(self, meta, name, rules):
        return ast.InitScheme(self._s(meta), str(name), rules, True, self.file)

    def init_rules(self, meta, *rules):
        return tuple(rules)

    def init_rule(self, meta, op, param, where, init, cond):
        return ast.InitRule(self._s(meta), str(op), str(param) if param is not None else None,
                            where[1:-1] if where is not None else None, init, cond)

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

    def keyword(self, meta, tok):
        return tok

    label_keyword = label_name

    def label_format(self, meta, tok):
        return ast.Label(self._s(meta), _format_parts(tok, self.file, self.lines))

    def optional(self, meta, item, cond):
        return ast.Optional(self._s(meta), item, cond, None)

    def choice(self, meta, item, cond, other):
        return ast.Optional(self._s(meta), item, cond, other)

    def repeat(self, meta, item, _star, count):
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
        span = self._s(meta)  # underline the keyword, not the whole first line of the merge
        return ast.Merge(replace(span, end_col=span.col + len(kind)), str(kind), branches)

    def loop(self, meta, first, second, iterable, body):
        index, var = (str(first), str(second)) if second is not None else (None, str(first))
        return ast.Loop(self._s(meta), index, var, iterable, body)

    def let(self, meta, name, params, value):
        return ast.Let(self._s(meta), str(name), value, params)

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
        return (ast.Ident(str(name), _span(name, self.file, self.lines)), value)

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
        if len(tok) > MAX_INT_DIGITS:  # before int(): Python refuses 4,300+ digits with a traceback
            raise LimitError(f"integer literal of {len(tok):,} digits is too large", self._s(meta),
                             expected=f"at most {MAX_INT_DIGITS} digits (|value| < 2**64)",
                             hint="widths, depths and counts are small numbers")
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
    """Parse an expression embedded in a label (or a ``--set`` value); positions point into it."""
    try:
        tree = _lark().parse(text, start="expr")
    except UnexpectedInput as e:
        at = e.column if isinstance(e.column, int) and not getattr(getattr(e, "token", None), "type", "") == "$END" \
            else len(text) + 1
        inside = "" if line_text == text else " inside a label's { }"
        raise ParseError(f"bad expression {text!r}{inside}", Span(file, line, col + at - 1, 0, line_text),
                         expected="an expression such as {i + 1}" if inside else "an expression", found=repr(text)) from None
    node = _build(_Builder(file, " " * (col - 1) + text), tree)
    check_nesting(node, MAX_NESTING)
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


MAX_INT_DIGITS = 20  # 2**64 has 20 digits: the evaluator's integer bound, checked before converting
MAX_NESTING = 100  # default AST nesting limit (``--max-depth``); see ``check_nesting``


def parse(text: str, file: str = "<string>", max_depth: int = MAX_NESTING) -> ast.Module:
    """Parse one .arch file's text. Raises ParseError with a located message, or LimitError
    when the text nests deeper than ``max_depth`` levels."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # old-Mac CR-only files too: the grammar's newline is \n
    lines = text.splitlines()
    _check_brackets(text, file, lines, max_depth)
    try:
        tree = _lark().parse(text, start="module")
    except UnexpectedInput as e:
        raise _syntax_error(e, text, file, lines) from None
    module = _build(_Builder(file, text), tree)
    check_nesting(module, max_depth)
    return module


def _build(builder: "_Builder", tree):
    """Run the builder; an ArchError raised inside it (a bad label) leaves Lark's wrapper."""
    try:
        return builder.transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, ArchError):
            raise e.orig_exc from None
        raise


def _check_brackets(text: str, file: str, lines: list[str], max_depth: int) -> None:
    """Refuse brackets nested deeper than ``max_depth`` before parsing: a long run of '{'
    would otherwise cost seconds of parsing before ``check_nesting`` could refuse it."""
    if text.count("(") + text.count("[") + text.count("{") <= max_depth:
        return
    depth, line, line_start = 0, 1, 0
    for m in _BRACKETS.finditer(text):
        tok = m.group()
        if tok == "\n":
            line, line_start = line + 1, m.end()
        elif tok in "([{":
            depth += 1
            if depth > max_depth:
                col = m.start() - line_start + 1
                raise LimitError(f"brackets nest deeper than {max_depth} levels",
                                 Span(file, line, col, col + 1, lines[line - 1] if line <= len(lines) else ""),
                                 hint="name inner parts with `let` or `block`, or raise the limit with --max-depth")
        elif tok in ")]}":
            depth = max(0, depth - 1)


_BRACKETS = re.compile(r'"[^"\n]*"|#[^\n]*|[()\[\]{}\n]')  # strings and comments hide brackets


def check_nesting(node, max_depth: int) -> None:
    """Refuse ASTs nested deeper than ``max_depth`` nodes, walking them without recursion.

    The evaluator, the elaborator and ``dump`` recurse over the AST; bounding its depth here
    keeps inputs like ``- - - 1`` or a 10,000-term sum (left-nested ``BinOp``s) from reaching
    Python's recursion limit. Parentheses leave no node, so ``((1))`` costs nothing."""
    stack = [(node, 1)]
    while stack:
        n, depth = stack.pop()
        if isinstance(n, tuple):
            stack.extend((c, depth) for c in n)
            continue
        if not isinstance(n, ast.Node):
            continue
        if depth > max_depth:
            raise LimitError(f"nesting is deeper than {max_depth} levels", n.span,
                             hint="name inner parts with `let` or `block`, or raise the limit with --max-depth")
        stack.extend((getattr(n, f), depth + 1) for f in n.__dataclass_fields__ if f not in ("span", "file"))


# ---- syntax errors ------------------------------------------------------------------
# Lark's terminal names -> what the user reads. Literal terminals ('(' 'for' ...) are
# shown quoted, straight from the grammar.
_TOKEN_NAMES = {
    "_NL": "a newline", "_SEMI": "';'", "_SEP": "a newline or ';'", "$END": "end of file",
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "COMP_OP": "a comparison (== != < <= > >=)",
    "ADD_OP": "'+' or '-'", "MUL_OP": "'/', '//' or '%'", "STAR": "'*'", "_POW": "'**'",
}
_ITEM_START = {"NAME", "LBRACE", "FOR", "LET"}            # plus STRING/INT labels
_EXPR_START = {"INT", "FLOAT", "STRING", "NAME", "TRUE", "FALSE", "IN", "NOT", "LPAR", "LSQB", "ADD_OP"}
_OPERATORS = {"ADD_OP", "MUL_OP", "STAR", "COMP_OP", "_POW", "AND", "OR"}
_AFTER_OPERAND = _OPERATORS | {"DOT", "LPAR", "LSQB", "IF"}
_ENDS = {"_NL", "_SEMI", "$END"}
_ORDER = ["RPAR", "RSQB", "RBRACE", "COMMA", "COLON", "EQUAL", "STAR", "AT", "IF", "ELSE", "FOR", "IN",
          "LPAR", "LSQB", "LBRACE", "STRING", "NAME", "INT"]
_CLOSE = {"(": ")", "[": "]", "{": "}"}


def _describe_terminal(name: str) -> str:
    if name in _TOKEN_NAMES:
        return _TOKEN_NAMES[name]
    term = next((t for t in _lark().terminals if t.name == name), None)
    if term is not None and term.pattern.type == "str":
        return f"'{term.pattern.value}'"
    return name.lower()


def _describe_token(tok) -> str:
    """``name `relu```, ``number 3``, ``'='``, ``end of line`` ... for the 'found' part."""
    kind, text = tok.type, str(tok)
    if kind == "NAME":
        return f"name `{text}`"
    if kind in ("INT", "FLOAT"):
        return f"number {text}"
    if kind == "STRING":
        return f"string {text}"
    if kind in ("_NL", "_SEP") and "\n" in text:
        return "end of line"
    if kind == "$END":
        return "end of file"
    if kind in ("COMP_OP", "ADD_OP", "MUL_OP", "STAR", "_SEMI", "_SEP"):
        return f"'{text.strip()[:2] or text}'"
    return _describe_terminal(kind)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _expected(accepts: set[str]) -> str | None:
    """A short, readable list of what the parser would have accepted, groups first."""
    rest, parts = set(accepts), []
    if _ITEM_START <= rest:
        parts.append("an item (an op or block, '{', a merge, 'for' or 'let')")
        rest -= _ITEM_START | {"STRING", "INT"}
    elif {"NAME", "INT", "LSQB", "LPAR"} <= rest:
        parts.append("an expression")
        rest -= _EXPR_START
    if len(_OPERATORS & rest) >= 3:
        parts.append("an operator")
        rest -= _AFTER_OPERAND
    if "_NL" in rest:
        parts.append("a newline")
    if "_SEMI" in rest:
        parts.append("';'")
    if "$END" in rest and not rest & {"_NL", "_SEMI"}:
        parts.append("end of file")
    rest -= _ENDS
    parts += [_describe_terminal(t) for t in sorted(rest, key=lambda t: (_ORDER.index(t) if t in _ORDER else 99, t))]
    return _join(parts) if parts else None


def _open_brackets(text: str, stop: int) -> list[tuple[str, int, int]]:
    """Brackets still open at offset ``stop``: (char, line, col), skipping strings and comments."""
    stack, line, col, i = [], 1, 1, 0
    while i < min(stop, len(text)):
        ch = text[i]
        if ch == "\n":
            line, col, i = line + 1, 1, i + 1
            continue
        if ch in "\"#":  # a string (one line) or a comment: skip to its end
            end = text.find("\"" if ch == "\"" else "\n", i + 1)
            end = len(text) if end < 0 or (ch == "\"" and "\n" in text[i:end]) else end + (ch == "\"")
            end = min(end, stop)
            col, i = col + (end - i), end
            continue
        if ch in _CLOSE:
            stack.append((ch, line, col))
        elif ch in ")]}" and stack and _CLOSE[stack[-1][0]] == ch:
            stack.pop()
        col, i = col + 1, i + 1
    return stack


def _header_hint(src: str) -> str | None:
    word = src.strip().split(" ")[0].split("(")[0] if src.strip() else ""
    return {
        "arch": "the header reads `arch NAME(param = default, ...)`, e.g. `arch resnet(depth = 18)`",
        "input": "the input shape is a list, e.g. `input [3, 224, 224]`",
        "block": "a block reads `block NAME(params) = item`, e.g. `block unit(c) = { conv(c, 3, pad = 1); bn; relu }`",
        "import": "an import names a file in quotes, e.g. `import \"lib/blocks.arch\"`",
        "init": "`init` names a scheme: `init torchvision` or `init pytorch`",
        "let": "`let` binds a name: `let width = 64`",
    }.get(word)


def _syntax_error(e: UnexpectedInput, text: str, file: str, lines: list[str]) -> ParseError:
    at_end = isinstance(e, UnexpectedEOF) or getattr(getattr(e, "token", None), "type", "") == "$END"
    line, col = max(1, e.line if isinstance(e.line, int) else 1), max(1, e.column if isinstance(e.column, int) else 1)
    width = 1
    if at_end:
        line = max(1, len(lines))
        col = len(lines[-1]) + 1 if lines else 1
    elif isinstance(e, UnexpectedToken) and e.token.type not in ("_NL", "_SEP", "_SEMI"):
        width = max(1, len(str(e.token).split("\n")[0]))

    def span(ln, c, w=1):
        src = lines[ln - 1] if 0 < ln <= len(lines) else ""
        return Span(file, ln, c, c + w, src)

    pos = len(text) if at_end else (e.pos_in_stream if isinstance(e.pos_in_stream, int) else len(text))
    still_open = _open_brackets(text, pos)

    if isinstance(e, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        if ch == "\"":
            return ParseError("unterminated string", span(line, col), found="'\"' with no closing '\"' on this line",
                              hint="a string ends with '\"' on the same line")
        shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}" if ch else "end of file"
        hint = {"!": "use `not` (or `!=` to compare)", "&": "use `and`", "|": "use `or`",
                "'": "strings use double quotes: \"same\"", "\t": None}.get(ch, f"{shown} is not part of the .arch language")
        return ParseError(f"unexpected character {shown}", span(line, col), found=shown,
                          hint=hint)

    accepts = set(getattr(e, "accepts", None) or getattr(e, "expected", None) or ())
    token = getattr(e, "token", None)
    found = "end of file" if at_end else _describe_token(token) if token is not None else "input"
    expected = _expected(accepts)

    closer = token is not None and token.type in ("RPAR", "RSQB", "RBRACE")
    if still_open and closer and _CLOSE[still_open[-1][0]] != str(token):
        ch, oline, ocol = still_open[-1]
        return ParseError(f"'{token}' does not match the '{ch}' at {oline}:{ocol}", span(line, col),
                          expected=f"'{_CLOSE[ch]}'", found=f"'{token}'",
                          hint=f"close the '{ch}' with '{_CLOSE[ch]}' first")
    if still_open and (at_end or (still_open[-1][0] in "([" and still_open[-1][1] < line
                                  and still_open[-1] in _open_brackets(text, len(text)))):
        ch, oline, ocol = still_open[-1]
        where = "end of file" if at_end else f"{found} on line {line}"
        return ParseError(f"'{ch}' is never closed", span(oline, ocol), expected=f"'{_CLOSE[ch]}'", found=where,
                          hint=f"add the matching '{_CLOSE[ch]}'" + (
                              "; inside ( ) and [ ] newlines do not end an item" if ch in "([" and not at_end else ""))
    if token is not None and token.type in ("RPAR", "RSQB", "RBRACE") and not still_open:
        return ParseError(f"unmatched '{token}'", span(line, col), found=f"'{token}'",
                          hint=f"remove it, or add the opening '{ {')': '(', ']': '[', '}': '{'}[str(token)] }' it closes")

    hint = _header_hint(lines[line - 1] if 0 < line <= len(lines) else "")
    if token is not None and token.type == "EQUAL":
        if "COMP_OP" in accepts:
            hint = "use `==` to compare; a single `=` only names an argument, as in conv(64, 3, stride = 2)"
        elif "COLON" in accepts:
            hint = "bind a value with `let NAME = value`; name an item with `NAME: item`"
    elif token is not None and "COMMA" in accepts and token.type in _EXPR_START:
        hint = "separate arguments and list elements with ','"
    elif token is not None and accepts & {"_NL", "_SEMI"} and token.type in _ITEM_START | {"STRING", "INT"}:
        hint = hint or "put each item on its own line, or separate items with ';'"
    return ParseError(f"unexpected {found}", span(line, col, width), expected=expected, found=found, hint=hint)
