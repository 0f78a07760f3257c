"""The architecture zoo (``archs/*.arch``): every file compiles, carries a header comment
citing its source, and reproduces the published size in ``shared/zoo-targets.json``
(parameters exactly or after the published rounding, MACs within 0.5%).

Everything here runs on the torch-free front end, except the seed-model checks at the end,
which load the hand-written reference models' weights (tests/reference/uva_models.py) into
the built module; they import torch inside the test.
"""
from __future__ import annotations

import functools
import itertools
import json
import re
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from archc.compiler import registry
from archc.compiler.passes import compile_file

ROOT = Path(__file__).resolve().parents[1]
TARGETS_FILE = Path(__file__).resolve().parents[2] / "shared/zoo-targets.json"
NAMES = registry.names()
SEED_MODELS = ("googlenet_uva", "resnet_uva", "preact_resnet_uva", "densenet_uva")
MAC_TOLERANCE = 0.005


def _load_targets() -> dict:
    """name -> target entry; floats kept as Decimal so "0.8" and "0.80" stay distinct."""
    if not TARGETS_FILE.exists():
        return {}
    data = json.loads(TARGETS_FILE.read_text(), parse_float=Decimal)
    return {name: spec for group in data.values() if isinstance(group, dict)
            for name, spec in group.items() if isinstance(spec, dict) and "match" in spec}


TARGETS = _load_targets()
needs_targets = pytest.mark.skipif(not TARGETS, reason=f"{TARGETS_FILE} not found")


@functools.lru_cache(maxsize=None)
def graph(name: str, **overrides):
    return compile_file(registry.path(name), overrides=overrides).graph


def published_rounding(n: int, published: Decimal) -> Decimal:
    """The count in millions, rounded as zoo-targets.json says (2 decimals below 1M, 1 above),
    but never finer than the published figure itself: the DenseNet paper prints 769,162 as
    "0.8M" (1 decimal), which a 2-decimal rounding (0.77) could never match."""
    digits = min(2 if n < 1_000_000 else 1, -published.as_tuple().exponent)
    return (Decimal(n) / 10 ** 6).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


# ---- every file ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_compiles(name):
    g = graph(name)
    assert g.name == name, "the arch name must equal the file name"
    assert g.totals().params > 0
    assert len(g.shapes[g.output_id]) == 1, "the zoo's models end in a class vector"


@pytest.mark.parametrize("name", NAMES)
def test_header_comment_cites_a_source(name):
    lines = registry.path(name).read_text().splitlines()
    header = list(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert len(header) >= 2, "start the file with a comment naming the paper/table it follows"
    assert re.search(r"\b(19|20)\d\d\b", " ".join(header)), "the header should cite a paper (with its year)"


# ---- published sizes ----------------------------------------------------------------------------
@needs_targets
def test_every_target_has_an_arch():
    assert sorted(set(TARGETS) - set(NAMES)) == []


@needs_targets
@pytest.mark.parametrize("name", sorted(set(TARGETS) & set(NAMES)))
def test_params_match_target(name):
    target, params = TARGETS[name], graph(name).totals().params
    if target["match"] == "exact":
        assert params == target["params"]
    else:
        assert target["match"] == "rounded"
        assert published_rounding(params, target["params_m"]) == target["params_m"], f"{params:,} params"


@needs_targets
@pytest.mark.parametrize("name", sorted(n for n in set(TARGETS) & set(NAMES) if "gmacs" in TARGETS[n]))
def test_macs_match_target(name):
    macs, want = graph(name).totals().macs / 1e9, float(TARGETS[name]["gmacs"])
    assert abs(macs - want) <= MAC_TOLERANCE * want, f"{macs:.4f} GMACs vs {want}"


# ---- structure the counts alone do not pin down ------------------------------------------------
@pytest.mark.parametrize("depth", [18, 34])
def test_plain_twin_is_resnet_without_shortcuts(depth):
    plain = graph(f"plain{depth}")
    assert not [n for n in plain.topo() if plain.node(n).op == "add"]
    assert not [n for n in plain.topo() if "downsample" in n]
    unplugged = graph(f"resnet{depth}", shortcut=False)
    assert unplugged.totals().params == plain.totals().params
    assert unplugged.topo() == plain.topo()


def test_densenet_uva_concatenates_new_features_first():
    g = graph("densenet_uva")
    concats = [n for n in g.topo() if g.node(n).op == "concat"]
    assert len(concats) == 24
    for n in concats:
        layer = n.rsplit(".", 1)[0]  # blocks.<i>.block.<j>
        new, old = g.inputs(n)
        assert new == f"{layer}.net.5", (n, new)
        assert old == f"{layer}.identity", (n, old)  # the layer's input, passed through
        assert not g.inputs(old)[0].startswith(f"{layer}."), (n, old)


def test_stochastic_depth_rates_decay_linearly():
    g = graph("resnet110_sd")
    rates = [g.node(n).args.p for n in g.topo() if g.node(n).op == "drop_path"]
    assert len(rates) == 54
    assert rates == pytest.approx([0.5 * l / 54 for l in range(1, 55)])


@pytest.mark.parametrize("name,base", [("dsnet56_cifar", "resnet56"), ("dsnet18", "resnet18"),
                                       ("dsnet50", "resnet50")])
def test_dsnet_adds_only_weighted_normalized_shortcuts(name, base):
    """A DSNet stage with m units has sum_{k=1..m+1} k BN+scale pairs (3 params per channel)."""
    if name not in NAMES:
        pytest.skip(f"{name}.arch not in the zoo")
    g = graph(name)
    pairs = sum(g.shapes[n][0] for n in g.topo() if g.node(n).op == "scale")
    assert pairs > 0
    assert g.totals().params == graph(base).totals().params + 3 * pairs
    assert g.totals().macs == graph(base).totals().macs


# ---- seed models vs their hand-written twins (torch) --------------------------------------------
@pytest.mark.parametrize("name", SEED_MODELS)
def test_seed_model_loads_reference_weights_and_matches(name):
    torch = pytest.importorskip("torch")
    from archc.compiler.builder import build  # noqa: PLC0415 - torch only here
    sys.path.insert(0, str(ROOT))
    from tests.reference import uva_models  # noqa: PLC0415

    torch.manual_seed(0)
    ref = uva_models.MODELS[name]()
    with torch.no_grad():  # non-trivial BN statistics and affine terms, so they are compared too
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
    model = build(str(registry.path(name)))
    assert sum(p.numel() for p in model.parameters()) == graph(name).totals().params
    model.load_state_dict(ref.state_dict(), strict=True)
    ref.eval(), model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        want, got = ref(x), model(x)
    assert got.shape == want.shape == (4, 10)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
