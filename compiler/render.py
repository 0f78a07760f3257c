"""Drawing a checked graph with Graphviz: ``to_dot`` (DOT text) and ``render`` (SVG/PNG/PDF).

Scopes become nested clusters labelled with their name, block call, params and MACs.
``depth`` collapses every scope deeper than ``depth`` path segments into one box, exactly
like the rows of ``archc summary --depth``; by default the deepest view that still fits on
a page is chosen. ``identity`` nodes are drawn as plain edges (a skip connection is an
arrow, not a box). No torch; the ``graphviz`` package is imported only when drawing.
"""
from __future__ import annotations

import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from archc.compiler.ir import Graph
from archc.compiler.ops import fmt
from archc.compiler.summary import human
from archc.dsl.errors import RenderError

FORMATS = ("svg", "png", "pdf")
PAGE_RANKS = 48  # default depth: the deepest view whose longest path fits one page ...
PAGE_BOXES = 150  # ... and whose boxes stay few enough to read

_GRAPH = {"rankdir": "TB", "newrank": "true", "nodesep": "0.2", "ranksep": "0.25", "fontname": "Helvetica",
          "fontsize": "12", "labelloc": "t", "labeljust": "l"}
_NODE = {"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10",
         "height": "0.3", "margin": "0.1,0.03", "color": "gray45", "fillcolor": "white"}
_EDGE = {"fontname": "Helvetica", "fontsize": "8", "fontcolor": "gray30", "color": "gray45", "arrowsize": "0.6"}
_CLUSTER = {"style": "rounded,filled", "color": "gray60", "fontsize": "9", "labeljust": "l", "margin": "6"}
_CLUSTER_FILL = ("#f6f6f6", "#ececec")  # alternates with nesting so siblings stay distinguishable

# Fill colour per op family; merges and the ends of the graph also get their own shapes.
_FILL = {"conv": "#cfe2f3", "linear": "#cfe2f3", "bn": "#fff2cc", "scale": "#fff2cc",
         "maxpool": "#fce5cd", "avgpool": "#fce5cd", "adaptive_avgpool": "#fce5cd", "gap": "#fce5cd"}
_ACTIVATION_FILL = "#d9ead3"
_ACTIVATIONS = ("relu", "relu6", "silu", "sigmoid", "tanh", "gelu", "leaky_relu")
_SPECIAL = {
    "add": {"shape": "circle", "label": "+", "fillcolor": "#f6b26b", "fontsize": "14", "width": "0.3",
            "fixedsize": "true", "style": "filled"},
    "concat": {"shape": "invtrapezium", "label": "concat", "fillcolor": "#b4a7d6", "style": "filled"},
    "input": {"shape": "invhouse", "fillcolor": "#93c47d", "style": "filled,bold"},
    "output": {"shape": "house", "fillcolor": "#e06666", "style": "filled,bold"},
}
_COLLAPSED = {"shape": "box3d", "style": "filled", "fillcolor": "#e4dcf5"}


@dataclass
class _View:
    """The graph as drawn: boxes (one op, or a collapsed scope) and deduplicated edges."""
    boxes: dict = field(default_factory=dict)  # box key -> node ids inside it, topological order
    edges: dict = field(default_factory=dict)  # (src key, dst key) -> tensor shape on it


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """The DOT source of ``graph`` (``archc compile --emit dot``)."""
    import graphviz
    if depth is None:
        depth = default_depth(graph)
    view = _collapse(graph, depth)
    totals = graph.totals()
    title = (f"{graph.name}   input {fmt(graph.input_shape)}   {human(totals.params)} params   "
             f"{human(totals.macs)} MACs")
    dot = graphviz.Digraph(graph.name, graph_attr={**_GRAPH, "label": title}, node_attr=_NODE, edge_attr=_EDGE)
    _emit_scope(dot, _scope_tree(view), "", graph, view, _scope_costs(graph), _frames(graph), 0)
    labelled = set()  # a tensor feeding several consumers is labelled on its first edge only
    for (src, dst), shape in view.edges.items():
        dot.edge(src, dst, label="" if (src, shape) in labelled else fmt(shape))
        labelled.add((src, shape))
    return dot.source


def render(graph: Graph, out_path: str | Path, fmt: str = "svg", depth: int | None = None) -> Path:
    """Draw ``graph`` with Graphviz's ``dot`` into ``out_path``; returns the file written.

    A suffix naming a known format (``.png``) wins over ``fmt``; without one, ``.fmt`` is
    appended. If ``dot`` is missing or fails, the DOT source is written next to the output
    so nothing is lost, and a ``RenderError`` says how to finish the job.
    """
    import graphviz
    out = Path(out_path)
    if out.suffix[1:] in FORMATS:
        fmt = out.suffix[1:]
    elif fmt in FORMATS:
        out = out.with_name(out.name + f".{fmt}")
    else:
        raise RenderError(f"unknown image format `{fmt}`", where=str(out_path), expected=" or ".join(FORMATS))
    source = to_dot(graph, depth)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.write_bytes(graphviz.Source(source).pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        raise _failed(out, fmt, source, "Graphviz's `dot` program is not on PATH",
                      "install Graphviz (`apt-get install graphviz`, `brew install graphviz`, or "
                      "https://graphviz.org/download) and run again") from None
    except subprocess.CalledProcessError as e:  # graphviz's own error type derives from it
        detail = (e.stderr or b"").decode(errors="replace").strip()[-500:]
        raise _failed(out, fmt, source, "Graphviz's `dot` failed", detail or str(e)) from None
    return out


def _failed(out: Path, fmt: str, source: str, what: str, hint: str) -> RenderError:
    dot_path = out.with_suffix(".dot")
    dot_path.write_text(source)
    return RenderError(f"{what}; wrote the graph source to {dot_path} instead", where=str(out),
                       hint=f"{hint}; or convert it later with `dot -T{fmt} {dot_path} -o {out}`")


def default_depth(graph: Graph) -> int:
    """The deepest collapse level whose drawing still fits one page (see PAGE_RANKS/PAGE_BOXES)."""
    deepest = max(n.count(".") + 1 for n in graph.topo())
    for depth in range(deepest, 0, -1):
        view = _collapse(graph, depth)
        if len(view.boxes) <= PAGE_BOXES and _ranks(view) <= PAGE_RANKS:
            return depth
    return 1


def _ranks(view: _View) -> int:
    """Length of the longest path of boxes: the drawing's height in rows."""
    longest = dict.fromkeys(view.boxes, 1)
    for (src, dst) in view.edges:  # added while walking the graph in topological order
        longest[dst] = max(longest[dst], longest[src] + 1)
    return max(longest.values())


def _collapse(graph: Graph, depth: int) -> _View:
    view = _View()
    key = {}
    for n in graph.topo():
        node = graph.node(n)
        if node.op == "identity":
            continue
        parts = n.split(".")
        k = n if node.op in ("input", "output") or len(parts) <= depth else ".".join(parts[:depth]) or graph.name
        key[n] = k
        view.boxes.setdefault(k, []).append(n)
        for src in graph.inputs(n):
            origin = _through_identities(graph, src)
            if key[origin] != k:
                view.edges.setdefault((key[origin], k), graph.shapes[src])
    return view


def _through_identities(graph: Graph, n: str) -> str:
    while graph.node(n).op == "identity":
        n = graph.inputs(n)[0]
    return n


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


def _emit_scope(dot, tree, scope, graph, view, costs, frames, level):
    scopes, boxes = tree[scope]
    for key in boxes:
        dot.node(key, **_box(graph, key, view.boxes[key], costs, frames))
    for child in scopes:
        fill = _CLUSTER_FILL[level % 2]
        with dot.subgraph(name=f"cluster_{child}") as sub:
            sub.attr(**_CLUSTER, fillcolor=fill, label=_scope_label(child, costs, frames), tooltip=child)
            _emit_scope(sub, tree, child, graph, view, costs, frames, level + 1)


def _box(graph: Graph, key: str, nodes: list, costs: dict, frames: dict) -> dict:
    if len(nodes) > 1 or key != nodes[0]:
        return {**_COLLAPSED, "label": _scope_label(key, costs, frames), "tooltip": f"{key}: {len(nodes)} ops"}
    node = graph.node(key)
    attrs = {"label": op_label(node), "tooltip": key, "fillcolor": _fill(node.op)}
    if node.op in ("input", "output"):
        attrs["label"] = f"{node.op}\\n{fmt(graph.shapes[key])}"
    attrs.update(_SPECIAL.get(node.op, {}))
    if node.checkpoint:  # recomputed in backward: dashed outline
        attrs["style"] = attrs.get("style", _NODE["style"]) + ",dashed"
    return attrs


def _fill(op: str) -> str:
    return _FILL.get(op, _ACTIVATION_FILL if op in _ACTIVATIONS else "#eeeeee")


def _scope_label(scope: str, costs: dict, frames: dict) -> str:
    name = scope.rsplit(".", 1)[-1]
    if scope in frames:
        name += f": {_call(frames[scope])}"
    else:
        name += _repeated(scope, costs, frames)
    params, macs, _ = costs[scope]
    return f"{name}\\l{human(params)} params · {human(macs)} MACs\\l"


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
        parts = n.split(".")
        for scope in [graph.name, *(".".join(parts[:i]) for i in range(1, len(parts) + 1))]:
            out[scope][0] += cost.params
            out[scope][1] += cost.macs
            out[scope][2] += 1
    return out


def _frames(graph: Graph) -> dict:
    """Scope path -> the BlockFrame of the block instance that owns it."""
    return {f.path: f for node in graph.nodes() for f in node.blocks}


def op_label(node) -> str:
    """The op and its key arguments: ``conv 3×3 /2 → 64``, ``maxpool 3×3 /2``, ``linear → 10``."""
    a, op = node.args, node.op
    if op == "conv":
        extra = "".join(f" {tag}{_pair(v)}" for tag, v in (("d", a.dilation), ("g", (a.groups,) * 2))
                        if v != (1, 1))
        return f"conv {'×'.join(map(str, a.kernel))}{_stride(a.stride)}{extra} → {a.out}"
    if op in ("maxpool", "avgpool"):
        stride = a.stride if a.stride is not None else a.kernel
        return f"{op} {'×'.join(map(str, a.kernel))}{_stride(stride)}"
    if op == "adaptive_avgpool":
        return f"{op} → {'×'.join(map(str, a.size))}"
    if op == "linear":
        return f"linear → {a.out}"
    if op == "shortcut_a":
        return f"shortcut_a{_stride((a.stride, a.stride))} → {a.out}"
    if op in ("dropout", "drop_path"):
        return f"{op} {a.p:g}"
    return op


def _stride(stride) -> str:
    return "" if tuple(stride) == (1, 1) else f" /{_pair(stride)}"


def _pair(v) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"
