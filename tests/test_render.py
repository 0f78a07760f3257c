"""Seeing one architecture: the Graphviz drawing (`compile --render`, `--emit dot`) and the
`summary` table, including the partial table printed when a shape check fails.

Drawings are tested by structure, not pixels: Graphviz itself parses the DOT (`dot -Tjson0`)
and the tests read its nodes, labels, clusters and edges back against the IR."""
import html
import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archc.compiler.passes import compile_file
from archc.compiler.render import DEFAULT_DPI, MAX_BOXES, default_depth, fan_in, render, to_dot
from archc.dsl.errors import RenderError
from archc.runtime.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")

# A residual stage (identity and projection shortcuts), a concat block and plain scopes.
TINY = """
arch tiny(width = 8, classes = 10)
input [3, 16, 16]

block res(c, stride = 1) = {
    add {
        { conv1: conv(c, 3, stride = stride, pad = 1, bias = false); bn1: bn; relu: relu
          conv2: conv(c, 3, pad = 1, bias = false); bn2: bn }
        identity if stride == 1 and in.c == c
        { proj: { conv(c, 1, stride = stride, bias = false); bn } } if stride != 1 or in.c != c
    }
    relu
}
block mix(c) = concat {
    a: conv(c, 1)
    b: { conv(c, 3, pad = 1); relu }
}

stem: { conv(width, 3, pad = 1); bn; relu }
stage1: res(width) * 2
stage2: res(2 * width, stride = 2)
mixer: mix(width)
head: { gap; flatten; linear(classes) }
"""


@pytest.fixture(scope="module")
def tiny():
    return compile_file(text=TINY).graph


def _drawn(source: str) -> dict:
    """The drawing as Graphviz parses it: {"graph": attrs, "nodes": id -> attrs, "clusters": id ->
    attrs, "edges": [(tail id, head id, label)]}."""
    out = subprocess.run(["dot", "-Tjson0"], input=source.encode(), capture_output=True, check=True).stdout
    d = json.loads(out)
    objects = d.get("objects", [])
    names = {o["_gvid"]: o["name"] for o in objects}
    return {"graph": d, "nodes": {o["name"]: o for o in objects if "nodes" not in o},
            "clusters": {o["name"]: o for o in objects if "nodes" in o},
            "edges": [(names[e["tail"]], names[e["head"]], e.get("label", "")) for e in d.get("edges", [])]}


def _text(label: str) -> str:
    """What an HTML-like label reads, tags dropped."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", label)).split())


def _svg(path: Path):
    root = ET.parse(path).getroot()
    groups = {cls: [g for g in root.iter(f"{SVG}g") if g.get("class") == cls] for cls in ("cluster", "node", "edge")}
    titles = {cls: [g.find(f"{SVG}title").text for g in gs] for cls, gs in groups.items()}
    labels = [t.text for g in groups["edge"] for t in g.iter(f"{SVG}text")]
    return titles, labels


@needs_dot
def test_svg_has_one_cluster_per_scope_one_node_per_op_and_shaped_edges(tiny, tmp_path):
    out = render(tiny, tmp_path / "tiny.svg").path
    titles, labels = _svg(out)
    assert sorted(titles["cluster"]) == sorted(f"cluster_{s}" for s in (
        "stem", "stage1", "stage1.0", "stage1.1", "stage2", "stage2.proj", "mixer", "mixer.b", "head"))
    ops = [n for n in tiny.topo() if tiny.node(n).op != "identity"]  # identities are drawn as edges
    assert sorted(titles["node"]) == sorted(ops)
    # shapes where an op changes them: stage2's stride, the concat, gap, flatten, linear
    assert {"16×8×8", "16×1×1", "16", "10"} <= set(labels)
    # A skip connection is an edge from the block input straight to the add.
    assert "stem.relu->stage1.0.add" in titles["edge"]


# The label of every op box of TINY, written out by hand: `name: op args`, the name left out
# where it only repeats the op (`relu`, `relu_1`, `conv` of an unnamed conv).
TINY_LABELS = {
    "stem.conv": "conv 3×3 → 8", "stem.bn": "bn", "stem.relu": "relu",
    "stage1.0.conv1": "conv1: conv 3×3 → 8", "stage1.0.bn1": "bn1: bn", "stage1.0.relu": "relu",
    "stage1.0.conv2": "conv2: conv 3×3 → 8", "stage1.0.bn2": "bn2: bn", "stage1.0.relu_1": "relu",
    "stage2.conv1": "conv1: conv 3×3 /2 → 16", "stage2.proj.conv": "conv 1×1 /2 → 16", "stage2.proj.bn": "bn",
    "mixer.a": "a: conv 1×1 → 8", "mixer.b.conv": "conv 3×3 → 8", "mixer.b.relu": "relu",
    "head.gap": "gap", "head.flatten": "flatten", "head.linear": "linear → 10",
}


@needs_dot
def test_every_op_box_reads_name_colon_op(tiny):
    nodes = _drawn(to_dot(tiny))["nodes"]
    for node_id, want in TINY_LABELS.items():
        assert _text(nodes[node_id]["label"]) == want, node_id
    merges = {n: _text(nodes[n]["label"]) for n in ("stage1.0.add", "stage2.add", "mixer.concat")}
    assert merges == {"stage1.0.add": "+", "stage2.add": "+", "mixer.concat": "concat"}
    assert nodes["stage1.0.add"]["shape"] == "circle" and nodes["mixer.concat"]["shape"] == "box"
    assert _text(nodes["input"]["label"]) == "input 3×16×16" and _text(nodes["output"]["label"]) == "output 10"


@needs_dot
def test_a_gate_is_drawn_as_a_product_glyph():
    g = compile_file(text="arch se\ninput [4, 8, 8]\n"
                          "gate: mul {\n identity\n { gap; conv(4, 1); sigmoid }\n}\ngap; flatten; linear(2)").graph
    drawn = _drawn(to_dot(g))
    node = drawn["nodes"]["gate.mul"]
    assert (_text(node["label"]), node["shape"]) == ("×", "circle")  # a × in a circle: ⊗
    assert "× mul" in _text(drawn["graph"]["label"])


@needs_dot
def test_edges_carry_a_shape_only_where_an_op_changed_it(tiny):
    """Against the IR: an edge is labelled iff its source's output shape differs from the shape
    the source read, and a tensor read by several ops is labelled once."""
    drawn = _drawn(to_dot(tiny))
    labelled = set()
    for tail, head, label in drawn["edges"]:
        changed = tail != "input" and tiny.shapes[tail] != tiny.shapes[tiny.inputs(tail)[0]]
        first = tail not in labelled
        assert bool(label) == (changed and first), (tail, head, label)
        assert not label or label == "×".join(map(str, tiny.shapes[tail]))
        if label:
            labelled.add(tail)
    # stem.conv, stage2.conv1, stage2.proj.conv, mixer.a, mixer.b.conv, mixer.concat, gap, flatten, linear
    assert len(labelled) == 9


@needs_dot
def test_legend_explains_what_is_drawn_in_neutral_colours(tiny):
    drawn = _drawn(to_dot(tiny))
    legend = _text(drawn["graph"]["label"])
    for entry in ("conv / linear", "norm / scale", "activation", "pooling", "add", "concat",
                  "edge label: the tensor shape"):
        assert entry in legend
    assert "collapsed" not in legend and "fan-in" not in legend  # nothing collapsed at full depth
    assert drawn["nodes"]["output"]["fillcolor"] == "white" == drawn["nodes"]["input"]["fillcolor"]
    # pooling is only listed when the drawing has a pool
    plain = compile_file(text="arch p\ninput [3, 8, 8]\nconv(4, 3); relu; flatten; linear(2)").graph
    assert "pooling" not in _text(_drawn(to_dot(plain))["graph"]["label"])


def test_dot_source_matches_golden(tiny):
    text = to_dot(tiny)
    golden = GOLDEN / "tiny.dot"
    if os.environ.get("ARCHC_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), "re-run with ARCHC_UPDATE_GOLDEN=1 if the change is intended"


def test_depth_collapses_scopes_into_boxes_with_block_calls(tiny):
    text = to_dot(tiny, depth=1)
    assert "subgraph" not in text  # depth 1: every top-level scope is one box
    assert "<B>stage1</B>  2 × res(c=8, stride=1)" in text
    assert "stage1 -> stage2" in text


@needs_dot
def test_png_is_drawn_at_the_default_dpi(tiny, tmp_path):
    """200 dpi or more: the PNG is the SVG's size in points times dpi / 72."""
    assert DEFAULT_DPI >= 200
    drawn = render(tiny, tmp_path / "t.svg")
    assert drawn.depth == default_depth(tiny)  # the depth it reports is the one it drew at
    svg = ET.parse(drawn.path).getroot()
    width_pt = float(svg.get("width").removesuffix("pt"))
    png = render(tiny, tmp_path / "t.png").path.read_bytes()
    width_px = struct.unpack(">I", png[16:20])[0]
    assert width_px == pytest.approx(width_pt * DEFAULT_DPI / 72, rel=0.02)
    assert 'dpi=200' in to_dot(tiny, dpi=DEFAULT_DPI) and "dpi" not in to_dot(tiny)  # SVG keeps its size


@needs_dot
def test_rankdir(tiny):
    assert _drawn(to_dot(tiny, rankdir="LR"))["graph"]["rankdir"] == "LR"
    with pytest.raises(RenderError, match="--rankdir"):
        to_dot(tiny, rankdir="XY")


# ---- fan-in: what collapsing must not hide ------------------------------------------------
def test_dense_block_fan_in_is_densenets_definition():
    """Huang et al. 2017, eq. 2: layer l reads [x0, x1, ..., x(l-1)]; for torchvision's layout
    (concat(input, new)) and for the UvA tutorial's (concat(new, input))."""
    for path, scope, n in (("densenet121.arch", "features.denseblock2", 12), ("densenet_uva.arch", "blocks.0.block", 6)):
        g = compile_file(ROOT / "archs" / path).graph
        fan = fan_in(g, scope)
        assert fan.reads == tuple(frozenset(range(layer)) for layer in range(1, n + 1)), path
        assert fan.dense and fan.skips == ()


def test_residual_stage_fan_in_is_a_chain_with_one_skip_per_block():
    g = compile_file(ROOT / "archs/resnet50.arch").graph
    fan = fan_in(g, "layer2")  # 4 bottlenecks, the first with a projection shortcut
    assert fan.reads == tuple(frozenset({i}) for i in range(4)) and not fan.dense
    assert fan.skips == ("+",) * 4


def test_dense_sums_are_dense_and_parallel_branches_are_not():
    """DSNet (Zhang et al. 2020): a stage of n = 9 blocks keeps a residual block, then a dense_sum of
    its 8 units whose output sums o0 .. o8, 9 earlier outputs. An Inception module's concat reads
    4 branches, but no branch reads another: nothing dense there."""
    ds = fan_in(compile_file(ROOT / "archs/dsnet56_cifar.arch").graph, "layer1")
    assert ds.widest_shortcut_fan_in == 9 and not ds.dense
    assert ds.caption() == "dense connections: up to 9 earlier outputs feed one unit"
    g = compile_file(ROOT / "archs/googlenet_uva.arch").graph
    for scope in ("inception_blocks", "inception_blocks.0"):
        assert fan_in(g, scope).caption() == ""


@needs_dot
def test_collapsed_dense_blocks_carry_their_fan_in_at_the_default_depth():
    g = compile_file(ROOT / "archs/densenet121.arch").graph
    assert default_depth(g) == 2
    nodes = _drawn(to_dot(g))["nodes"]
    for i, n in enumerate((6, 12, 24, 16), 1):
        label = nodes[f"features.denseblock{i}"]["label"]
        assert f"{n} × dense_layer(k=32)" in _text(label)
        assert "dense: each unit reads all earlier outputs" in _text(label)
        cells = min(n, 16)  # the triangle: row r (a layer) filled up to column r (input first)
        assert label.count('BGCOLOR="#43597a"') == cells * (cells + 1) // 2
    transition = nodes["features.transition1"]["label"]
    assert "dense" not in _text(transition) and "residual" not in _text(transition)


@needs_dot
def test_residual_fan_in_is_stated_where_the_adds_are_hidden():
    g = compile_file(ROOT / "archs/resnet50.arch").graph
    collapsed = _drawn(to_dot(g, depth=1))["nodes"]
    for layer, blocks in (("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)):
        assert f"residual: {blocks} skip connections (+)" in _text(collapsed[layer]["label"])
    full = _drawn(to_dot(g, depth=9))
    assert sum(_text(n["label"]) == "+" for n in full["nodes"].values()) == 16  # every add drawn ...
    assert not any("residual" in _text(c["label"]) for c in full["clusters"].values())  # ... so not restated


def test_dense_blocks_of_densenet264_collapse_by_default():
    g = compile_file(ROOT / "archs/densenet121.arch", overrides={"blocks": (6, 12, 64, 48)}).graph
    assert default_depth(g) == 2
    assert "denseblock3</B>  64 × dense_layer(k=32)" in to_dot(g)


# ---- hostile input and huge graphs ------------------------------------------------------------
HOSTILE = ('arch hostile(width = 8)\ninput [3, 16, 16]\nblock b(c, tag = "x") = { conv(c, 3, pad = 1); relu }\n'
           '"st<&>\u00fc": b(width, tag = "a\x00\x01b\x1b[31m\\\\N\\G ]<B>")\n'
           '"q&lt;": { gap; flatten; linear(10) }\n')


@needs_dot
@pytest.mark.parametrize("depth", [1, 9])
def test_control_characters_markup_and_backslashes_in_labels_render_verbatim(tmp_path, depth):
    spec = tmp_path / "hostile.arch"
    spec.write_text(HOSTILE)
    out = tmp_path / "h.svg"
    assert main(["compile", str(spec), "--render", "--depth", str(depth), "-o", str(out)]) == 0
    texts = [t.text or "" for t in ET.parse(out).getroot().iter(f"{SVG}text")]
    assert not any(ch in t for t in texts for ch in "\x00\x01\x1b")
    if depth == 1:  # the block call is drawn with its argument, control characters as "?", "\\N" as written
        assert "st<&>\u00fc" in texts and "q&lt;" in texts
        assert any('tag="a??b?[31m\\\\N\\G ]<B>"' in t for t in texts)


@pytest.mark.parametrize("depth", [None, 1])
def test_more_boxes_than_max_render_nodes_are_refused_before_dot_runs(tmp_path, monkeypatch, depth):
    import graphviz
    monkeypatch.setattr(graphviz.Source, "pipe", lambda *a, **k: pytest.fail("dot must not run"))
    g = compile_file(text=f"arch flat\ninput [3, 8, 8]\nfor i in range({MAX_BOXES + 5}) {{ relu }}\n"
                          "gap; flatten; linear(10)").graph
    with pytest.raises(RenderError) as err:
        render(g, tmp_path / "flat.svg", depth=depth)
    assert "--max-render-nodes" in str(err.value) and f"{MAX_BOXES + 10:,} boxes" in str(err.value)
    assert "scopes" in str(err.value)  # no depth fits a flat graph: the hint says how to make one
    big = compile_file(ROOT / "archs/densenet121.arch").graph
    with pytest.raises(RenderError, match=r"(?s)--depth 99 would hand Graphviz 429 boxes.*draw less with --depth 3"):
        to_dot(big, 99, max_boxes=100)


def test_render_refusals_exit_2_naming_the_flag(tmp_path, capsys):
    rc = main(["compile", str(ROOT / "archs/densenet121.arch"), "--render", "--depth", "9",
               "--max-render-nodes", "50", "-o", str(tmp_path / "d.svg")])
    assert rc == 2 and "--max-render-nodes" in capsys.readouterr().err


@needs_dot
def test_output_suffix_chooses_the_format(tiny, tmp_path):
    assert render(tiny, tmp_path / "t.png", fmt="svg").path.read_bytes()[:4] == b"\x89PNG"
    assert render(tiny, tmp_path / "t", fmt="pdf").path.name == "t.pdf"


@needs_dot
def test_densenet264_renders_through_the_cli(tmp_path, capsys):
    out = tmp_path / "d264.svg"
    rc = main(["compile", str(ROOT / "archs/densenet121.arch"), "--set", "blocks=[6,12,64,48]",
               "--render", "-o", str(out)])
    assert rc == 0 and ET.parse(out).getroot().tag == f"{SVG}svg"
    assert capsys.readouterr().out.strip() == f"rendered {out} at --depth 2"  # the default depth, dense blocks collapsed


def test_missing_dot_raises_and_keeps_the_dot_source(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RenderError) as err:
        render(tiny, tmp_path / "out" / "tiny.svg")
    message = str(err.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert str(tmp_path / "out" / "tiny.dot") in message
    assert (tmp_path / "out" / "tiny.dot").read_text() == to_dot(tiny)


# ---- summary ----------------------------------------------------------------------------
def test_summary_of_a_failing_spec_shows_the_table_up_to_the_error(tmp_path, capsys):
    spec = tmp_path / "bad.arch"
    # Unconditional identity shortcuts: stage2 (stride 2, 8 -> 16 channels) cannot add up.
    spec.write_text(TINY.replace("identity if stride == 1 and in.c == c", "identity")
                    .replace("{ proj: { conv(c, 1, stride = stride, bias = false); bn } } if stride != 1 or in.c != c", ""))
    assert main(["summary", str(spec)]) == 2
    out, err = capsys.readouterr()
    assert "stage1.1" in out and "stage2" in out and "✗ shape error" in out
    assert "mixer" not in out and "head" not in out  # nothing after the failing node
    assert "`add` branches have different shapes (at `stage2.add`)" in err
    assert "conv(16, 1, stride = 2, bias = false)" in err


def test_summary_json_keys(tmp_path, capsys):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    assert main(["summary", str(spec), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"params", "macs", "output_shape", "nodes", "rows"} <= set(data)
