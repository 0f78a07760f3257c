"""Drawing a checked graph with Graphviz: ``to_dot`` (DOT text) and ``render`` (SVG/PNG/PDF).

Scopes become nested clusters labelled with their name, block call, params and MACs.
``depth`` collapses every scope deeper than ``depth`` path segments into one box, exactly
like the rows of ``archc summary --depth``; by default the deepest view that still fits on
a page is chosen. Boxes read ``name: op args``; an edge carries its tensor's shape only where
an op changes it; passthrough ops (``identity``) are plain edges (a skip is an arrow).

Collapsing must not hide what makes an architecture what it is, so scopes state their fan-in:
a dense scope (every unit reads all earlier outputs, which a chain of concats never shows)
always, with a connectivity triangle; a residual one (how many skip connections) where its
adds are hidden inside collapsed boxes. A legend explains the colours and glyphs drawn. Every
user string is escaped for DOT, and the number of boxes handed to ``dot`` is bounded
(``--max-render-nodes``): Graphviz crashes on huge graphs.

Per-op knowledge comes only from ``op_style``; everything else here is op-agnostic.
No torch; the ``graphviz`` package is imported only when drawing.
"""
from __future__ import annotations

import html
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from archc.compiler.fanin import FanIn, Facts, prefixes
from archc.compiler.ir import Graph
from archc.compiler.ops import fmt
from archc.compiler.summary import human
from archc.dsl.errors import RenderError
from archc.dsl.text import printable


class OpStyle(NamedTuple):
    family: str  # what the op is for: picks its colour and legend entry
    label: str  # ``conv 3×3 /2 → 64``: the op and its key arguments
    glyph: str  # merges and ends of the graph: "+", "×", "concat", "input", "output"; "" for a box
    passthrough: bool  # the output is the input itself: drawn as an edge, not a box


def op_style(node) -> OpStyle:
    """How ``node`` is drawn. The only place that consults per-op knowledge (the op registry)."""
    spec = node.spec
    return OpStyle(spec.family, f"{node.op} {spec.label(node.args)}".strip(), spec.glyph, spec.passthrough)


FORMATS = ("svg", "png", "pdf")
RANKDIRS = ("TB", "LR", "BT", "RL")
DEFAULT_DPI = 200  # PNG only: vector formats keep their size
PAGE_RANKS = 48  # default depth: the deepest view whose longest path fits one page ...
PAGE_BOXES = 150  # ... and whose boxes stay few enough to read
MAX_BOXES = 2000  # --max-render-nodes: dot needs ~5 s for 3,000 boxes and crashes near 100,000
GLYPH_CELLS = 16  # the connectivity triangle shows at most 16×16 cells (units binned beyond)
GLYPH_PT = 32  # ... in about this many points square
LEGEND_COLUMNS = 4  # legend entries per line

_FONT = "DejaVu Sans,Helvetica,Arial,sans-serif"
_GRAPH = {"newrank": "true", "nodesep": "0.25", "ranksep": "0.3", "fontname": _FONT, "fontsize": "12",
          "labelloc": "t", "labeljust": "l", "pad": "0.2", "bgcolor": "white"}
_NODE = {"shape": "box", "style": "rounded,filled", "fontname": _FONT, "fontsize": "10", "height": "0.3",
         "margin": "0.1,0.03", "penwidth": "0.8"}
_EDGE = {"fontname": _FONT, "fontsize": "8", "fontcolor": "#555555", "color": "#666666", "arrowsize": "0.6",
         "penwidth": "0.8"}
_CLUSTER = {"style": "rounded,filled", "color": "#b8b8b8", "fontname": _FONT, "fontsize": "9", "labeljust": "l",
            "margin": "8", "penwidth": "0.8"}
_CLUSTER_FILL = ("#f7f7f7", "#eeeeee")  # alternates with nesting so siblings stay distinguishable

# Colour per family, muted and told apart by hue (fill, outline, legend text). Families sharing a
# colour share a legend entry.
_PALETTE = {
    "conv": ("#dbe6f4", "#5f7fa8", "conv / linear"), "linear": ("#dbe6f4", "#5f7fa8", "conv / linear"),
    "norm": ("#f5ecd4", "#a68c4f", "norm / scale"), "scale": ("#f5ecd4", "#a68c4f", "norm / scale"),
    "activation": ("#e2efdd", "#6f9562", "activation"),
    "pool": ("#efe1ea", "#9a6f88", "pooling"),
}
_OTHER = ("#efefef", "#8c8c8c", "other (shape, regularizer)")
_MERGE = {"shape": "circle", "style": "filled", "fillcolor": "white", "color": "#444444", "fontsize": "12",
          "width": "0.28", "fixedsize": "true", "penwidth": "1"}
_WIDE_MERGE = {"shape": "box", "style": "filled", "fillcolor": "#e7e2f0", "color": "#6f6296", "fontsize": "9",
               "height": "0.22", "margin": "0.06,0.02"}
_IO = {"style": "rounded,filled,bold", "fillcolor": "white", "color": "#333333", "penwidth": "1.2"}
_COLLAPSED = {"style": "filled", "fillcolor": "#f1f3f7", "color": "#5e6b7d", "peripheries": "2", "margin": "0.06,0.03"}
_GLYPH_INK = "#43597a"


@dataclass
class _View:
    """The graph as drawn: boxes (one op, or a collapsed scope) and deduplicated edges."""
    depth: int
    boxes: dict = field(default_factory=dict)  # box key -> node ids inside it, topological order
    edges: dict = field(default_factory=dict)  # (src key, dst key) -> tensor shape on it
    in_shape: dict = field(default_factory=dict)  # box key -> shape of the first tensor entering it
    box_of: dict = field(default_factory=dict)  # node id -> key of the box drawing it
    direct: set = field(default_factory=set)  # edges some op reads directly; the rest only via passthroughs (skips)


# ---- public entry points --------------------------------------------------------------------
def to_dot(graph: Graph, depth: int | None = None, *, rankdir: str = "TB", dpi: int | None = None,
           max_boxes: int = MAX_BOXES) -> str:
    """The DOT source of ``graph`` (``archc compile --emit dot``); ``dpi`` only matters for PNG."""
    return _dot(graph, depth, rankdir, dpi, max_boxes)[0]


def _dot(graph: Graph, depth: int | None, rankdir: str, dpi: int | None, max_boxes: int) -> tuple[str, int]:
    """The DOT source and the collapse depth it draws at (``depth``, or the default one)."""
    import graphviz
    if rankdir not in RANKDIRS:
        raise RenderError(f"unknown --rankdir `{printable(rankdir)}`", where="--rankdir", expected=", ".join(RANKDIRS))
    facts = Facts(graph, op_style)
    ctx = _Ctx(facts, _choose_view(facts, depth, max_boxes))
    attrs = {**_GRAPH, "rankdir": rankdir, **({"dpi": str(dpi)} if dpi else {})}
    dot = graphviz.Digraph(_ids(graph.name), graph_attr=attrs, node_attr=_NODE, edge_attr=_EDGE)
    _emit_scope(dot, ctx, _scope_tree(ctx.view), "", 0)
    _emit_edges(dot, ctx)
    dot.attr(label=_legend(ctx))  # last, so that clusters do not inherit it
    return dot.source, ctx.view.depth


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def render(graph: Graph, out_path: str | Path, fmt: str = "svg", depth: int | None = None, *,
           rankdir: str = "TB", dpi: int = DEFAULT_DPI, max_boxes: int = MAX_BOXES,
           write: Callable[[Path, bytes], None] = _write_file) -> Drawing:
    """Draw ``graph`` with Graphviz's ``dot`` into ``out_path``; returns the file written and the depth drawn.

    A suffix naming a known format (``.png``) wins over ``fmt``; without one, ``.fmt`` is
    appended. If ``dot`` is missing or fails, the DOT source is written next to the output
    so nothing is lost, and a ``RenderError`` says how to finish the job. ``write(path, bytes)``
    writes each file (the command line passes one that refuses FIFOs and devices).
    """
    import graphviz
    out = image_path(out_path, fmt)
    fmt = out.suffix[1:]
    if dpi < 1:
        raise RenderError(f"--dpi {dpi} is not a resolution", where="--dpi", expected="a positive number, e.g. 200")
    source, drawn = _dot(graph, depth, rankdir, dpi if fmt == "png" else None, max_boxes)
    try:
        image = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise _failed(out, fmt, source, "Graphviz's `dot` program is not on PATH",
                      "install Graphviz (`apt-get install graphviz`, `brew install graphviz`, or "
                      "https://graphviz.org/download) and run again", write) from None
    except subprocess.CalledProcessError as e:  # graphviz's own error type derives from it
        detail = " / ".join((e.stderr or b"").decode(errors="replace").split("\n"))
        raise _failed(out, fmt, source, "Graphviz's `dot` failed", printable(detail[-500:], None) or str(e),
                      write) from None
    write(out, image)
    return Drawing(out, drawn)


class Drawing(NamedTuple):
    path: Path  # the image written
    depth: int  # the collapse depth it shows: the one asked for, or the default (default_depth)


def image_path(out_path: str | Path, fmt: str = "svg") -> Path:
    """Where ``render`` writes: ``out_path`` when its suffix names a format, else ``out_path.fmt``."""
    out = Path(out_path)
    if out.suffix[1:] in FORMATS:
        return out
    if fmt in FORMATS:
        return out.with_name(f"{out.name}.{fmt}")
    raise RenderError(f"unknown image format `{printable(fmt)}`", where=str(out_path), expected=" or ".join(FORMATS))


def _failed(out: Path, fmt: str, source: str, what: str, hint: str, write) -> RenderError:
    dot_path = out.with_suffix(".dot")
    write(dot_path, source.encode())
    return RenderError(f"{what}; wrote the graph source to {dot_path} instead", where=str(out),
                       hint=f"{hint}; or convert it later with `dot -T{fmt} {dot_path} -o {out}`")


def default_depth(graph: Graph) -> int:
    """The deepest collapse level whose drawing still fits one page (see PAGE_RANKS/PAGE_BOXES)."""
    return _default_view(Facts(graph, op_style)).depth


def fan_in(graph: Graph, scope: str) -> FanIn | None:
    """The fan-in of ``scope`` ("" for the whole graph), counting every skip merge in it."""
    facts = Facts(graph, op_style)
    return facts.fan_in(scope, facts.skip_merges())


# ---- choosing the depth -----------------------------------------------------------------------
def _default_view(facts: Facts) -> _View:
    for depth in range(_deepest(facts.graph), 0, -1):
        view = _collapse(facts, depth)
        if len(view.boxes) <= PAGE_BOXES and _ranks(view) <= PAGE_RANKS:
            return view
    return view


def _choose_view(facts: Facts, depth: int | None, max_boxes: int) -> _View:
    """The view at ``depth`` (or the default), refused when it would hand ``dot`` more than
    ``max_boxes`` boxes: Graphviz slows down sharply with size and crashes on huge graphs."""
    view = _default_view(facts) if depth is None else _collapse(facts, depth)
    if len(view.boxes) <= max_boxes:
        return view
    below = min(view.depth, _deepest(facts.graph)) - 1  # deeper than the deepest scope draws the same
    fits = next((d for d in range(below, -1, -1) if len(_collapse(facts, d).boxes) <= max_boxes), None)
    flag = "--depth" if depth is not None else "the default --depth"
    hint = (f"draw less with --depth {fits}" if fits else "group the top-level ops of the spec into named "
            "scopes (`name: { ... }`) so that they collapse (--depth 0 draws the whole net as one box)")
    raise RenderError(f"{flag} {view.depth} would hand Graphviz {len(view.boxes):,} boxes, more than "
                      f"--max-render-nodes {max_boxes:,}", where="--max-render-nodes",
                      expected=f"at most {max_boxes:,} boxes",
                      hint=f"{hint}, or raise --max-render-nodes (dot slows down sharply and may crash "
                           "beyond a few thousand boxes)")


def _deepest(graph: Graph) -> int:
    return max(n.count(".") + 1 for n in graph.topo())


def _ranks(view: _View) -> int:
    """Length of the longest path of boxes: the drawing's height in rows."""
    longest = dict.fromkeys(view.boxes, 1)
    for (src, dst) in view.edges:  # added while walking the graph in topological order
        longest[dst] = max(longest[dst], longest[src] + 1)
    return max(longest.values())


def _collapse(facts: Facts, depth: int) -> _View:
    graph, view = facts.graph, _View(depth)
    key = view.box_of
    for n in graph.topo():
        style = facts.style[n]
        if style.passthrough:
            continue
        k = n if style.family == "io" or n.count(".") < depth else ".".join(n.split(".")[:depth]) or graph.name
        key[n] = k
        view.boxes.setdefault(k, []).append(n)
        for src in graph.inputs(n):
            origin = facts.origin[src]
            if key[origin] != k:
                view.edges.setdefault((key[origin], k), graph.shapes[src])
                if origin == src:
                    view.direct.add((key[origin], k))
                view.in_shape.setdefault(k, graph.shapes[src])
    return view


# ---- emitting DOT ---------------------------------------------------------------------------
class _Ctx:
    """What every emitter needs: the facts, the view, scope costs and block frames, and what
    the legend must explain (filled in while emitting)."""

    def __init__(self, facts: Facts, view: _View):
        self.facts, self.graph, self.view = facts, facts.graph, view
        self.costs, self.frames = _scope_costs(facts.graph), _frames(facts.graph)
        # skip merges inside a collapsed box: its caption must tell (drawn ones show themselves)
        self.hidden_skips = {n: g for n, g in facts.skip_merges().items() if _collapsed(view, view.box_of[n])}
        self.ids = _DotIds()
        self.families, self.merges = set(), {}
        self.collapsed = self.glyph = self.checkpoint = False


class _DotIds:
    """DOT identifiers: a plain node id stays readable; anything else (quotes, control
    characters, unicode) gets a serial id, so no user text can break the DOT syntax."""

    def __init__(self):
        self.ids = {}

    def __call__(self, key: str) -> str:
        if key not in self.ids:
            self.ids[key] = key if re.fullmatch(r"[A-Za-z0-9_.]+", key) else f"#{len(self.ids)}"
        return self.ids[key]


def _ids(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_]+", name) else "graph"


def _esc(text: object, limit: int | None = 120) -> str:
    """User text inside an HTML-like label: no markup, no control characters, and backslashes
    doubled (dot reads ``\\N`` in label text as the node's name, ``\\\\`` as one backslash)."""
    return html.escape(printable(text, limit).replace("\\", "\\\\"), quote=True)


def _tip(text: object) -> str:
    """User text inside a quoted attribute (tooltip): backslashes are escapes to dot."""
    return printable(text, 300).replace("\\", "\\\\")


def _emit_scope(dot, ctx: _Ctx, tree: dict, scope: str, level: int):
    scopes, boxes = tree[scope]
    for key in boxes:
        dot.node(ctx.ids(key), **_box(ctx, key))
    for child in scopes:
        with dot.subgraph(name=f"cluster_{ctx.ids(child)}") as sub:
            sub.attr(**_CLUSTER, fillcolor=_CLUSTER_FILL[level % 2], tooltip=_tip(child),
                     label=_scope_label(ctx, child))
            _emit_scope(sub, ctx, tree, child, level + 1)


def _emit_edges(dot, ctx: _Ctx):
    """Edges; a shape label only where the source box changed its input's shape, once per tensor."""
    view, labelled = ctx.view, set()
    for (src, dst), shape in view.edges.items():
        changed = src in view.in_shape and view.in_shape[src] != shape and (src, shape) not in labelled
        weight = "4" if (src, dst) in view.direct else "1"  # keep the main path straight, skips bend
        dot.edge(ctx.ids(src), ctx.ids(dst), label=fmt(shape) if changed else "", weight=weight)
        labelled.add((src, shape))


def _box(ctx: _Ctx, key: str) -> dict:
    nodes = ctx.view.boxes[key]
    if _collapsed(ctx.view, key):
        ctx.collapsed = True
        return {**_COLLAPSED, "tooltip": _tip(f"{key}: {len(nodes)} ops"), "label": _scope_label(ctx, key)}
    node, style = ctx.graph.node(key), ctx.facts.style[key]
    attrs = {"tooltip": _tip(f"{key} = {style.label}")}
    if style.family == "io":
        attrs.update(_IO, label=f"<{_esc(style.glyph or style.label)}<BR/>{_esc(fmt(ctx.graph.shapes[key]))}>")
    elif style.family == "merge":
        ctx.merges[style.glyph or style.label] = node.op
        attrs.update(_MERGE if len(style.glyph) == 1 else _WIDE_MERGE, label=f"<{_esc(style.glyph or style.label)}>")
    else:
        fill, line, _ = _PALETTE.get(style.family, _OTHER)
        ctx.families.add(style.family)
        attrs.update(fillcolor=fill, color=line, label=f"<{_op_text(key, node.op, style.label)}>")
    if node.checkpoint:  # recomputed in backward: dashed outline
        ctx.checkpoint = True
        attrs["style"] = attrs.get("style", _NODE["style"]) + ",dashed"
    return attrs


def _collapsed(view: _View, key: str) -> bool:
    nodes = view.boxes[key]
    return len(nodes) > 1 or key != nodes[0]


def _op_text(key: str, op: str, label: str) -> str:
    """``norm0: bn``; the name is left out where it only repeats the op (``relu``, ``relu_2``)."""
    name = key.rpartition(".")[2]
    if name == op or re.fullmatch(re.escape(op) + r"_\d+", name):
        return _esc(label)
    return f'<FONT COLOR="#555555">{_esc(name)}:</FONT> {_esc(label)}'


def _scope_label(ctx: _Ctx, scope: str) -> str:
    """HTML label of a cluster or a collapsed box: name and call, costs, and its fan-in: a dense
    scope's caption and triangle always (its concat chain does not show it even when drawn),
    a residual scope's skip count when those merges are hidden inside collapsed boxes."""
    name = scope.rsplit(".", 1)[-1]
    call = f": {_call(ctx.frames[scope])}" if scope in ctx.frames else _repeated(scope, ctx.costs, ctx.frames)
    params, macs, _ = ctx.costs[scope]
    rows = [f"<B>{_esc(name)}</B>{_esc(call)}", f"{human(params)} params · {human(macs)} MACs"]
    whole = ctx.view.depth == 0  # the one box of --depth 0 is the graph itself
    fan = ctx.facts.fan_in("" if whole else scope, ctx.hidden_skips)
    glyph = ""
    if fan and fan.caption():
        rows.append(f'<FONT COLOR="{_GLYPH_INK}">{_esc(fan.caption())}</FONT>')
        if fan.dense or fan.widest_shortcut_fan_in:
            ctx.glyph = True
            glyph = f'<TD ROWSPAN="{len(rows)}" VALIGN="MIDDLE">{_triangle(fan.reads)}</TD>'
    cells = [f'<TR><TD ALIGN="LEFT">{r}</TD>{glyph if i == 0 else ""}</TR>' for i, r in enumerate(rows)]
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="1">{"".join(cells)}</TABLE>>'


def _triangle(reads: tuple) -> str:
    """The connectivity matrix as a tiny table: row = unit, column = what it reads (the scope's
    input first), filled = read. Units are binned to at most GLYPH_CELLS rows and columns."""
    n = len(reads)
    bins = min(n, GLYPH_CELLS)
    filled = {(i * bins // n, j * bins // n) for i, r in enumerate(reads) for j in r if j < n}
    side = max(2, GLYPH_PT // bins - 1)
    rows = "".join("<TR>" + "".join(
        f'<TD WIDTH="{side}" HEIGHT="{side}" FIXEDSIZE="TRUE" BGCOLOR="{_GLYPH_INK if (r, c) in filled else "white"}">'
        "</TD>" for c in range(bins)) + "</TR>" for r in range(bins))
    return f'<TABLE BORDER="0" BGCOLOR="#c5ccd6" CELLBORDER="0" CELLSPACING="1" CELLPADDING="0">{rows}</TABLE>'


def _legend(ctx: _Ctx) -> str:
    """The graph's title and a legend of what this drawing uses (HTML label). Each row is one
    left-aligned text cell: Graphviz stretches table columns to the widest row, which would
    pull swatches away from their words."""
    g, t = ctx.graph, ctx.graph.totals()
    title = (f"<B>{_esc(g.name)}</B>   input {_esc(fmt(g.input_shape))}   {human(t.params)} params   "
             f"{human(t.macs)} MACs")
    order = list(_PALETTE)
    families = sorted(ctx.families, key=lambda f: (order.index(f) if f in order else len(order), f))
    items = [_key("■", line, text) for _, line, text in dict.fromkeys(_PALETTE.get(f, _OTHER) for f in families)]
    items += [_key(glyph if len(glyph) == 1 else "▭", _MERGE["color"] if len(glyph) == 1 else _WIDE_MERGE["color"],
                   _esc(op)) for glyph, op in sorted(ctx.merges.items(), key=lambda kv: kv[1])]
    if ctx.collapsed:
        items.append(_key("▣", _COLLAPSED["color"], "collapsed scope (see --depth)"))
    lines = ["   ".join(items[i:i + LEGEND_COLUMNS]) for i in range(0, len(items), LEGEND_COLUMNS)]
    lines.append("edge label: the tensor shape (C×H×W) where an op changes it")
    if ctx.glyph:
        lines.append(_key("◣", _GLYPH_INK, "fan-in: row = unit, filled column = an earlier output it reads "
                                             "(input first)"))
    if ctx.checkpoint:
        lines.append("dashed outline: recomputed in backward (@checkpoint)")
    rows = [f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="14">{title}</FONT></TD></TR>']
    rows += [f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9">{line}</FONT></TD></TR>' for line in lines]
    return f'<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="1">{"".join(rows)}</TABLE>>'


def _key(mark: str, colour: str, text: str) -> str:
    """One legend entry: a coloured mark and its meaning."""
    return f'<FONT COLOR="{colour}">{mark}</FONT> {text}'


# ---- clusters and scope texts ------------------------------------------------------------------
def _scope_tree(view: _View) -> dict:
    """Nested clusters: scope path -> (child scope paths, box keys); single-member scopes dissolve."""
    members = defaultdict(lambda: ([], []))
    for key in view.boxes:
        parts = key.split(".")
        parent = ""
        for i in range(1, len(parts)):
            scope = ".".join(parts[:i])
            if scope not in members[parent][0]:
                members[parent][0].append(scope)
            parent = scope
        members[parent][1].append(key)
    _dissolve(members, "")
    return members


def _dissolve(members, scope: str):
    """Hoist the content of a cluster that would frame a single box or a single cluster."""
    scopes, boxes = members[scope]
    for child in list(scopes):
        _dissolve(members, child)
        sub_scopes, sub_boxes = members[child]
        if len(sub_scopes) + len(sub_boxes) == 1:
            i = scopes.index(child)
            scopes[i:i + 1] = sub_scopes
            boxes.extend(sub_boxes)


def _call(frame) -> str:
    args = ", ".join(f"{k}={_value(v)}" for k, v in frame.args)
    return f"{frame.name}({args})" if args else frame.name


def _repeated(scope: str, costs: dict, frames: dict) -> str:
    """``  6 × dense_layer(k=32)`` when a plain scope holds nothing but instances of one block."""
    children = [f for path, f in frames.items() if path.rpartition(".")[0] == scope]
    if len(children) < 2 or len({f.name for f in children}) > 1 or \
            sum(costs[f.path][2] for f in children) != costs[scope][2]:
        return ""
    calls = {_call(f) for f in children}
    return f"  {len(children)} × {calls.pop() if len(calls) == 1 else children[0].name}"


def _value(v) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(map(_value, v)) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return f'"{v}"' if isinstance(v, str) else str(v)


def _scope_costs(graph: Graph) -> dict:
    """[params, MACs, nodes] of every scope prefix, and of the whole graph under its name."""
    out = defaultdict(lambda: [0, 0, 0])
    for n, cost in graph.costs.items():
        for scope in (graph.name, *prefixes(n), n):
            entry = out[scope]
            entry[0] += cost.params
            entry[1] += cost.macs
            entry[2] += 1
    return out


def _frames(graph: Graph) -> dict:
    """Scope path -> the BlockFrame of the block instance that owns it."""
    return {f.path: f for node in graph.nodes() for f in node.blocks}
