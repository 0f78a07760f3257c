"""Seeing one architecture: the Graphviz drawing (`compile --render`, `--emit dot`) and the
`summary` table, including the partial table printed when a shape check fails."""
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archc.compiler.passes import compile_file
from archc.compiler.render import default_depth, render, to_dot
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


def _svg(path: Path):
    root = ET.parse(path).getroot()
    groups = {cls: [g for g in root.iter(f"{SVG}g") if g.get("class") == cls] for cls in ("cluster", "node", "edge")}
    titles = {cls: [g.find(f"{SVG}title").text for g in gs] for cls, gs in groups.items()}
    labels = [t.text for g in groups["edge"] for t in g.iter(f"{SVG}text")]
    return titles, labels


@needs_dot
def test_svg_has_one_cluster_per_scope_one_node_per_op_and_shaped_edges(tiny, tmp_path):
    out = render(tiny, tmp_path / "tiny.svg")
    titles, labels = _svg(out)
    assert sorted(titles["cluster"]) == sorted(f"cluster_{s}" for s in (
        "stem", "stage1", "stage1.0", "stage1.1", "stage2", "stage2.proj", "mixer", "mixer.b", "head"))
    ops = [n for n in tiny.topo() if tiny.node(n).op != "identity"]  # identities are drawn as edges
    assert sorted(titles["node"]) == sorted(ops)
    assert {"3×16×16", "8×16×16", "16×8×8", "8×8×8", "16×1×1", "16", "10"} <= set(labels)
    # A skip connection is an edge from the block input straight to the add.
    assert "stem.relu->stage1.0.add" in titles["edge"]


def test_dot_source_matches_golden(tiny):
    text = to_dot(tiny)
    golden = GOLDEN / "tiny.dot"
    if os.environ.get("ARCHC_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), "re-run with ARCHC_UPDATE_GOLDEN=1 if the change is intended"


def test_merges_inputs_and_outputs_are_visibly_distinct(tiny):
    text = to_dot(tiny)
    assert 'label="+"' in text and "shape=circle" in text  # add
    assert "shape=invtrapezium" in text  # concat
    assert 'input [label="input\\n3×16×16"' in text and "shape=invhouse" in text
    assert 'output [label="output\\n10"' in text and "shape=house" in text
    assert 'label="conv 3×3 /2 → 16"' in text


def test_depth_collapses_scopes_into_boxes_with_block_calls(tiny):
    text = to_dot(tiny, depth=1)
    assert "subgraph" not in text  # depth 1: every top-level scope is one box
    assert 'stage1 [label="stage1  2 × res(c=8, stride=1)\\l2.37K params' in text
    assert "stage1 -> stage2" in text


def test_default_depth_collapses_dense_layers_of_densenet264():
    g = compile_file(ROOT / "archs/densenet121.arch", overrides={"blocks": (6, 12, 64, 48)}).graph
    assert default_depth(g) == 2
    assert "denseblock3  64 × dense_layer(k=32)" in to_dot(g)


@needs_dot
def test_densenet264_renders_through_the_cli(tmp_path):
    out = tmp_path / "d264.svg"
    rc = main(["compile", str(ROOT / "archs/densenet121.arch"), "--set", "blocks=[6,12,64,48]",
               "--render", "-o", str(out)])
    assert rc == 0 and ET.parse(out).getroot().tag == f"{SVG}svg"


@needs_dot
def test_output_suffix_chooses_the_format(tiny, tmp_path):
    assert render(tiny, tmp_path / "t.png", fmt="svg").read_bytes()[:4] == b"\x89PNG"
    assert render(tiny, tmp_path / "t", fmt="pdf").name == "t.pdf"


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
