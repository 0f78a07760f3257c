"""`archc diff` / compiler.diff against independent references: the residual parts ResNet-18 has
and its plain twin lacks (counted by hand from He et al.'s layout), and torchvision's DenseNet
built at two growth rates (per-scope parameter counts of its own module tree)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from archc.compiler.diff import _merged, diff
from archc.compiler.passes import compile_file
from archc.runtime.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _graph(name, **sets):
    return compile_file(ROOT / "archs" / f"{name}.arch", overrides=sets).graph


def test_resnet18_against_plain18():
    a, b = _graph("resnet18"), _graph("plain18")
    d = diff(a, b, depth=2)
    removed = {c.a for c in d.nodes if c.status == "removed"}
    residual = {n for n in a.topo() if n.endswith((".identity", ".add")) or ".downsample." in n}
    assert removed == residual and d.count("added") == 0 and d.count("renamed") == 0
    # each block's final relu now reads bn2 instead of the add: rewired, nothing else
    changed = {c.a: c.what for c in d.nodes if c.status == "changed"}
    assert changed == {f"layer{i}.{j}.relu_1": ("inputs",) for i in range(1, 5) for j in range(2)}
    # per block, each change once: identity (or the 2-node projection), add, relu_1
    assert {s.name: s.changes for s in d.scopes if s.changes} == {
        f"layer{i}.{j}": 4 if i > 1 and j == 0 else 3 for i in range(1, 5) for j in range(2)}
    # the 1x1 projections of stages 2-4 (conv + BN weight and bias) are the only parameters lost
    by_scope = {s.name: (s.b.params - s.a.params) for s in d.scopes if s.a and s.b}
    for stage, (c_in, c_out) in {"layer2.0": (64, 128), "layer3.0": (128, 256), "layer4.0": (256, 512)}.items():
        assert by_scope[stage] == -(c_in * c_out + 2 * c_out)
    assert sum(by_scope.values()) == 11_515_688 - 11_689_512
    assert not d.same_architecture and {s.status for s in d.scopes} == {"changed", "same"}


def test_densenet121_growth_32_against_12_matches_torchvision():
    tv = pytest.importorskip("torchvision.models")
    a, b = _graph("densenet121"), _graph("densenet121", growth=12)
    d = diff(a, b, depth=2)
    assert d.count("added") == d.count("removed") == d.count("renamed") == 0 and d.count("changed") > 400
    refs = [tv.DenseNet(growth_rate=k, block_config=(6, 12, 24, 16), num_init_features=64) for k in (32, 12)]
    for scope in ("denseblock1", "transition1", "denseblock4", "norm5"):
        want = [sum(p.numel() for p in getattr(m.features, scope).parameters()) for m in refs]
        row = next(s for s in d.scopes if s.name == f"features.{scope}")
        assert (row.a.params, row.b.params) == tuple(want), scope
    assert [s.name for s in d.scopes if s.status == "same"] == [f"features.{m}" for m in ("conv0", "norm0", "relu0", "pool0")]


def test_a_relabelled_copy_is_renames_only(tmp_path):
    shutil.copytree(ROOT / "archs" / "lib", tmp_path / "lib")
    text = (ROOT / "archs" / "resnet20.arch").read_text().replace("conv1:", "stem:").replace('"layer{', '"stage{')
    (tmp_path / "mine.arch").write_text(text)
    a, b = _graph("resnet20"), compile_file(tmp_path / "mine.arch").graph
    d = diff(a, b, depth=1)
    assert d.same_architecture and d.edges_added == d.edges_removed == 0
    assert {c.status for c in d.nodes} == {"renamed"}
    assert ("conv1", "stem") in {(c.a, c.b) for c in d.nodes} and ("layer3.2.add", "stage3.2.add") in {
        (c.a, c.b) for c in d.nodes}
    assert {s.status for s in d.scopes if s.name in ("conv1", "stem", "layer1", "stage1")} == {"renamed"}


def test_scope_order_puts_removed_before_added():
    assert _merged(["s", "a1", "m", "a2", "e"], ["s", "b1", "m", "e", "b2"]) == ["s", "a1", "b1", "m", "a2", "e", "b2"]
    assert _merged(["x", "y"], ["y", "x"]) == ["y", "x"]  # reordered: each shared key once


def test_cli_set_a_set_b_and_json(capsys):
    code = main(["diff", "densenet121", "densenet121", "--set", "growth=12", "--set-b", "growth=24", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert (data["a"]["params"], data["b"]["params"]) == (
        _graph("densenet121", growth=12).totals().params, _graph("densenet121", growth=24).totals().params)
    assert not data["same_architecture"] and data["nodes"][0]["status"] == "changed"


def test_cli_table_and_nodes(capsys):
    assert main(["diff", "resnet18", "plain18", "--nodes"]) == 0
    out = capsys.readouterr().out
    assert "different architectures; nodes: 0 added, 19 removed, 8 changed" in out
    assert "layer4.0  changed" in out and "-132,096" in out  # 256*512 + 2*512
    assert "- layer1.0.identity = identity()(maxpool) : 64×56×56" in out
    assert "~ layer1.0.relu_1  (inputs)" in out


def test_cli_bad_set_b_is_a_usage_error(capsys):
    assert main(["diff", "resnet18", "plain18", "--set-b", "widht=3"]) == 2
    assert "has no parameter `widht`" in capsys.readouterr().err


def test_checkpointing_is_the_same_architecture_with_changed_nodes_and_less_memory():
    """efficient=true recomputes each dense layer's norm1-relu1-conv1 in backward (torchvision's
    memory_efficient): 3 nodes in each of DenseNet-121's 58 layers; nothing else moves."""
    a, b = _graph("densenet121"), _graph("densenet121", efficient=True)
    d = diff(a, b, depth=2)
    assert d.same_architecture and d.count("added") == d.count("removed") == d.count("renamed") == 0
    changed = [c for c in d.nodes if c.status == "changed"]
    assert len(changed) == 3 * (6 + 12 + 24 + 16) and {c.what for c in changed} == {("checkpoint",)}
    blocks = {s.name: s for s in d.scopes if s.status == "changed"}
    assert sorted(blocks) == [f"features.denseblock{i}" for i in range(1, 5)]
    assert all(s.b.act_fp32_bytes < s.a.act_fp32_bytes and s.b.params == s.a.params for s in blocks.values())
