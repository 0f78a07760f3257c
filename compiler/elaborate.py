"""Pass `elaborate`: AST items -> graph IR nodes.

Contract: given a resolved program (main module + imported blocks) and evaluated arch
parameters, emit one ``OpNode`` per op into a ``Graph``, expanding blocks, repetitions,
loops, conditions and merges. Shapes are inferred as each node is added, because the
language lets arguments read the current input's shape (``conv(in.c // 2, 1)``). Limits
(nodes, parameters, nesting) are checked before anything large is built.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace

from archc.compiler import shapes
from archc.compiler.evaluate import Evaluator, Work, define, show, type_name
from archc.compiler.ir import BlockFrame, Graph, OpNode
from archc.compiler.ops import OPS, callable_ops, merges
from archc.compiler.ops.registry import BUILTIN_IO
from archc.compiler.scope import Scope, check_name
from archc.compiler.signature import bind_op, suggest
from archc.dsl import ast
from archc.dsl.errors import EvalError, LimitError, NameError_, ValidationError


@dataclass(frozen=True)
class Limits:
    max_nodes: int = 1_000_000   # graph nodes after expansion
    max_params: int = 10 ** 11   # learned parameters in the whole network
    max_depth: int = 100         # nesting of blocks, groups, merges and imports


@dataclass
class _Ctx:
    graph: Graph
    blocks: dict
    globals: dict
    limits: Limits
    params: int = 0
    depth: int = 0
    steps: int = 0  # items visited and loop turns, bounded by Elaborator.step_limit
    work: Work | None = None  # evaluation budget shared by all expressions: 10 steps per allowed node
    frames: tuple = ()
    checkpoint: int = 0
    regions: int = 0
    in_aux: bool = False  # inside an `@aux` head
    root: Scope | None = None  # the network's top scope, where output nodes are named
    outputs: list = field(default_factory=list)  # (position or None, node id, span) per `@aux` output
    stack: list = field(default_factory=list)  # block names being expanded (recursion check)

    def __post_init__(self):  # the archs/ specs use at most ~6 per node
        self.work = self.work or Work(10 * self.limits.max_nodes + 100_000)


ATTRIBUTES = ("checkpoint", "drop_path", "aux")


class Elaborator:
    def __init__(self, ctx: _Ctx):
        self.c = ctx

    # ---- nodes ---------------------------------------------------------------------
    def emit(self, op_name: str, args, inputs: list[str], node_id: str, span) -> str:
        g, lim = self.c.graph, self.c.limits
        if len(g) >= lim.max_nodes:
            raise LimitError(f"the graph grows past {lim.max_nodes:,} nodes", span,
                             hint="reduce repetition counts, or raise the limit with --max-nodes")
        node = OpNode(node_id, op_name, args, span, self.c.frames, self.c.checkpoint)
        g.add(node, inputs)
        shapes.infer_node(g, node_id)
        self.c.params += shapes.node_params(g, node_id)
        if self.c.params > lim.max_params:
            raise LimitError(f"the network passes {lim.max_params:,} parameters at this op", span,
                             found=f"{self.c.params:,}", hint="reduce widths, or raise the limit with --max-params")
        return node_id

    def shape(self, cur: str) -> tuple:
        return self.c.graph.shapes[cur]

    def ev(self, env: dict, cur: str | None) -> Evaluator:
        return Evaluator(env, self.shape(cur) if cur else None, self.c.work)

    # ---- sequences and items ------------------------------------------------------------
    def seq(self, items, cur: str, scope: Scope, env: dict) -> str:
        env = dict(env)  # `let` binds for the rest of this sequence only
        for item in items:
            if isinstance(item, ast.Let):
                env[item.name] = define(item, self.ev(env, cur))
            else:
                cur = self.item(item, cur, scope, env, own=False)
        return cur

    def step_limit(self) -> int:
        """Items visited (op calls, groups, conditions ... and loop turns) allowed while expanding:
        loops and repetitions that build nothing (`{ relu if false } * n`) still cost time."""
        return 4 * self.c.limits.max_nodes + 10_000

    def count_step(self, span) -> None:
        self.c.steps += 1
        if self.c.steps > self.step_limit():
            raise LimitError(f"expanding the spec takes more than {self.step_limit():,} steps "
                             f"(4 per allowed node)", span,
                             hint="check loop and repetition counts, or raise the limit with --max-nodes")

    def project(self, what: str, n: int, before: tuple[int, int], span) -> None:
        """After the first of ``n`` copies/iterations, refuse if ``n`` such copies would pass the
        node or step limit: a 10**6-fold repetition is refused at once, not after building."""
        nodes, steps = len(self.c.graph) - before[0], self.c.steps - before[1]
        lim = self.c.limits.max_nodes
        if before[0] + nodes * n > lim:
            raise LimitError(f"{what} would build about {nodes * n:,} nodes, over the limit {lim:,}", span,
                             hint="raise the limit with --max-nodes if this is intended")
        if before[1] + steps * n > self.step_limit():
            raise LimitError(f"{what} would take about {steps * n:,} steps, over the limit {self.step_limit():,} "
                             f"(4 per allowed node)", span, hint="raise the limit with --max-nodes if this is intended")

    def item(self, it, cur: str, scope: Scope, env: dict, own: bool) -> str:
        self.count_step(it.span)
        self.c.depth += 1
        if self.c.depth > self.c.limits.max_depth:
            inside = f" (inside blocks {' -> '.join(self.c.stack)})" if self.c.stack else ""
            raise LimitError(f"nesting is deeper than {self.c.limits.max_depth} levels{inside}", it.span,
                             hint="flatten the structure, or raise the limit with --max-depth")
        try:
            return getattr(self, "_" + type(it).__name__)(it, cur, scope, env, own)
        except RecursionError:  # --max-depth raised past what Python's stack allows
            if self.c.depth > 1:
                raise
            raise LimitError("nesting is too deep for archc to expand", it.span,
                             hint="lower --max-depth, or flatten the structure") from None
        finally:
            self.c.depth -= 1

    def _Labeled(self, it, cur, scope, env, own):
        item = it.item
        while isinstance(item, ast.Optional):  # decide first: an item that is not built claims no name
            if self.ev(env, cur).truth(item.cond):
                item = item.item
            elif item.other is None:
                return cur
            else:
                item = item.other
        ev = self.ev(env, cur)
        label = "".join(p if isinstance(p, str) else _label_text(ev(p), p) for p in it.label.parts)
        name = scope.claim(label, it.label.span, env)
        return self.item(item, cur, scope.child(name), env, own=True)

    def _Optional(self, it, cur, scope, env, own):
        if self.ev(env, cur).truth(it.cond):
            return self.item(it.item, cur, scope, env, own)
        return cur if it.other is None else self.item(it.other, cur, scope, env, own)

    def _Group(self, it, cur, scope, env, own):
        return self.seq(it.items, cur, scope, env)

    def _Loop(self, it, cur, scope, env, own):
        for env2 in self.iterations(it, env, cur):
            cur = self.seq(it.body, cur, scope, env2)
        return cur

    def iterations(self, it, env, cur):
        values = self.ev(env, cur)(it.iterable)
        if not isinstance(values, tuple):
            raise EvalError("`for` iterates over a list", it.iterable.span, found=type_name(values),
                            hint="use range(n) to count")
        before = (len(self.c.graph), self.c.steps)
        for i, v in enumerate(values):
            self.count_step(it.span)
            yield {**env, it.var: v, **({it.index: i} if it.index else {})}
            if i == 0 and len(values) > 1:
                self.project(f"`for` over {len(values):,} values", len(values), before, it.span)

    def _Repeat(self, it, cur, scope, env, own):
        n = self.ev(env, cur)(it.count)
        if type(n) is not int or n < 0:
            raise EvalError("a repetition count must be an int >= 0", it.count.span, found=f"{type_name(n)} {show(n)}")
        lim = self.c.limits.max_nodes
        if n > lim:
            raise LimitError(f"repetition count {n:,} exceeds the node limit {lim:,}", it.count.span,
                             hint="raise the limit with --max-nodes if this is intended")
        home = scope if own else scope.child(scope.fresh(_base_name(it.item)))
        before = (len(self.c.graph), self.c.steps)
        for i in range(n):
            cur = self.item(it.item, cur, home.child(home.claim(str(i), it.span)), env, own=True)
            if i == 0 and n > 1:  # one copy's size bounds the rest: refuse before building them
                self.project(f"`* {n:,}`", n, before, it.span)
        return cur

    def _Attributed(self, it, cur, scope, env, own):
        attrs = {a.name: a for a in it.attrs}
        for a in it.attrs:
            if a.name not in ATTRIBUTES:
                near = difflib.get_close_matches(a.name, ATTRIBUTES, n=1)
                raise NameError_(f"unknown attribute `@{a.name}`", a.span, expected=", ".join(f"@{n}" for n in ATTRIBUTES),
                                 hint=f"did you mean `@{near[0]}`?" if near else None)
        outer, in_aux = self.c.checkpoint, self.c.in_aux
        if "checkpoint" in attrs and not outer and self._enabled(attrs["checkpoint"], env, cur):
            if in_aux or "aux" in attrs:
                raise ValidationError("`@checkpoint` inside an `@aux` head is not supported", attrs["checkpoint"].span,
                                      hint="auxiliary heads are small: drop the @checkpoint")
            self.c.regions += 1
            self.c.checkpoint = self.c.regions
        if "aux" in attrs:
            if in_aux or outer:
                raise ValidationError("an `@aux` head cannot sit inside another head or a checkpoint region",
                                      attrs["aux"].span, hint="put @aux on an item of the main path")
            self.c.in_aux = True
        try:
            out = self.item(it.item, cur, scope, env, own)
        finally:
            self.c.checkpoint, self.c.in_aux = outer, in_aux
        if "drop_path" in attrs:
            a = attrs["drop_path"]
            ev = self.ev(env, out)
            args = bind_op(OPS["drop_path"], [ev(x) for x in a.args], [(k, ev(v)) for k, v in a.kwargs], a.span, {})
            out = self.emit("drop_path", args, [out], _drop_path_id(scope, out), a.span)
        if "aux" in attrs:
            self._aux_output(attrs["aux"], out, env)
            return cur  # a side output: the main path goes on from the item's input
        return out

    def _aux_output(self, attr, out: str, env) -> None:
        """``ITEM @aux`` or ``@aux(position)``: the item's result is an extra output of the network."""
        position = None
        if attr.args or attr.kwargs:
            if attr.kwargs or len(attr.args) != 1:
                raise ValidationError("`@aux` takes one optional position", attr.span, expected="@aux or @aux(2)")
            position = self.ev(env, out)(attr.args[0])
            if type(position) is not int or position < 1:
                raise ValidationError("the position of an `@aux` output must be an int >= 1", attr.span,
                                      found=f"{type_name(position)} {show(position)}",
                                      hint="@aux(1) is returned right after the main output")
        node = self.emit("output", OPS["output"].Args(), [out], self.c.root.fresh("output"), attr.span)
        self.c.outputs.append((position, node, attr.span))

    def aux_outputs(self) -> tuple:
        """The ``@aux`` output nodes in returned order: as written, or by their positions when given."""
        given = [p for p, _, _ in self.c.outputs if p is not None]
        if not given:
            return tuple(n for _, n, _ in self.c.outputs)
        for p, _, span in self.c.outputs:
            if p is None or given.count(p) > 1 or p > len(self.c.outputs):
                raise ValidationError("`@aux` positions must number the auxiliary outputs 1, 2, ... once each",
                                      span, found=", ".join("-" if q is None else str(q) for q, _, _ in self.c.outputs),
                                      hint="give every @aux a position, or none")
        return tuple(n for _, n, _ in sorted(self.c.outputs, key=lambda o: o[0]))

    def _enabled(self, attr, env, cur) -> bool:
        """``@checkpoint`` or ``@checkpoint(cond)``; nested regions merge into the outermost."""
        if not attr.args and not attr.kwargs:
            return True
        if attr.kwargs or len(attr.args) != 1:
            raise ValidationError("`@checkpoint` takes one optional condition", attr.span,
                                  expected="@checkpoint or @checkpoint(efficient)")
        return self.ev(env, cur).truth(attr.args[0])

    def _Call(self, it, cur, scope, env, own):
        if it.name in self.c.blocks:
            return self.block(it, cur, scope, env, own)
        op = OPS.get(it.name)
        name_span = replace(it.span, end_col=it.span.col + len(it.name))
        if op is not None and op.merge:
            raise ValidationError(f"`{it.name}` is a merge, not an op", name_span,
                                  expected=f"`{it.name} {{`, one branch per line, then `}}`",
                                  hint=f"e.g. {it.name} {{ identity <newline> conv(64, 3, pad = 1) }}")
        if op is None or it.name in BUILTIN_IO:
            raise NameError_(f"unknown op or block `{it.name}`", name_span,
                             hint=suggest(it.name, [*callable_ops(), *self.c.blocks]) or "define it with `block`")
        ev = self.ev(env, cur)
        args = bind_op(op, [ev(a) for a in it.args], [(k, ev(v)) for k, v in it.kwargs], it.span,
                       {**{i: a.span for i, a in enumerate(it.args)}, **{k: v.span for k, v in it.kwargs}})
        node_id = scope.path if own else scope.join(scope.fresh(it.name))
        return self.emit(it.name, args, [cur], node_id, it.span)

    def block(self, it, cur, scope, env, own):
        bdef = self.c.blocks[it.name]
        if it.name in self.c.stack:
            chain = " -> ".join([*self.c.stack[self.c.stack.index(it.name):], it.name])
            raise ValidationError(f"block `{it.name}` uses itself ({chain})", it.span,
                                  hint="blocks cannot recurse; repeat with `* n` or `for` instead")
        ev = self.ev(env, cur)
        local = dict(self.c.globals)
        local.update(bind_block(bdef, [ev(a) for a in it.args], [(k, ev(v)) for k, v in it.kwargs],
                                it.span, Evaluator(self.c.globals, None, self.c.work)))
        if not own:  # an unlabeled instance's scope is named after the block
            check_name(it.name, replace(it.span, end_col=it.span.col + len(it.name)), "block name")
        home = scope if own else scope.child(scope.fresh(it.name))
        frame = BlockFrame(it.name, home.path, tuple((p.name, local[p.name]) for p in bdef.params), bdef.doc)
        saved = self.c.frames
        self.c.frames = (*saved, frame)
        self.c.stack.append(it.name)
        try:
            body = ast.Attributed(bdef.span, bdef.body, bdef.attrs) if bdef.attrs else bdef.body
            return self.item(body, cur, home, local, own=True)
        finally:
            self.c.stack.pop()
            self.c.frames = saved

    def _Let(self, it, cur, scope, env, own):  # a `let` outside a sequence: `block b = let x = 1`
        raise ValidationError("a `let` here binds nothing: it is not inside a sequence", it.span,
                              expected="an op, block, group or merge",
                              hint="put it in a group with the items that use it: `{ let x = 3; conv(x, 3) }`")

    def _Merge(self, it, cur, scope, env, own):
        op = OPS.get(it.kind)
        if op is None or not op.merge:
            is_op = it.kind in callable_ops()
            raise NameError_(f"`{it.kind}` is {'an op, not a merge' if is_op else 'not a merge'}", it.span,
                             expected=", ".join(merges()),
                             hint=f"merge the branches first (`add {{ ... }}`), then apply `{it.kind}`" if is_op
                             else suggest(it.kind, merges()) or "define a block, or register a merge")
        return op.expand(self, it, cur, scope, env)


def bind_block(bdef, args, kwargs, span, ev_defaults) -> dict:
    names = [p.name for p in bdef.params]
    if len(args) > len(names):
        raise ValidationError(f"block `{bdef.name}` takes {len(names)} arguments", span,
                              expected=f"{bdef.name}({', '.join(names)})", found=f"{len(args)} arguments")
    bound = dict(zip(names, args))
    for k, v in kwargs:
        if k in bound:
            raise ValidationError(f"argument `{k}` of block `{bdef.name}` is given twice", getattr(k, "span", None) or span,
                                  expected=f"{bdef.name}({', '.join(names)})",
                                  hint="pass it either by position or by name")
        if k not in names:
            near = difflib.get_close_matches(k, names, n=1)
            raise NameError_(f"block `{bdef.name}` has no parameter `{k}`", getattr(k, "span", None) or span,
                             expected=", ".join(names),
                             hint=f"did you mean `{near[0]}`?" if near else None)
        bound[k] = v
    for p in bdef.params:
        if p.name not in bound:
            if p.default is None:
                raise ValidationError(f"block `{bdef.name}` needs its `{p.name}` argument", span,
                                      expected=f"{bdef.name}({', '.join(names)})")
            bound[p.name] = ev_defaults(p.default)
    return bound


def _label_text(v, node) -> str:
    if type(v) not in (int, str):
        raise EvalError("a label can only interpolate ints and strings", node.span, found=type_name(v))
    return str(v)


def _drop_path_id(scope: Scope, out: str) -> str:
    """``blk.drop_path`` inside the item's scope; beside a labelled op (``c_drop_path``), whose
    scope is the op itself: a module cannot hold a DropPath child (``c.drop_path``)."""
    if out == scope.path and scope.parent is not None:
        return scope.parent.join(scope.parent.fresh(f"{scope.parts[-1]}_drop_path"))
    return scope.join(scope.fresh("drop_path"))


def _base_name(item) -> str:
    """The scope name of an unlabeled repetition: its block's or op's name."""
    while isinstance(item, (ast.Attributed, ast.Optional)):
        item = item.item
    if isinstance(item, ast.Call):
        return item.name
    return item.kind if isinstance(item, ast.Merge) else "group"
