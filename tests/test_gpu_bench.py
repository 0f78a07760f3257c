"""bench/gpu.py runs every section (on the CPU, at toy sizes), and archs/airbench94.arch with
`--recipe airbench` is airbench94: checked against bench/airbench_loop.py, written from the original."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import archc
from archc.runtime.data import load_cifar10

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import airbench_loop  # noqa: E402
import gpu  # noqa: E402


def test_smoke_run_goes_through_every_section(tmp_path):
    report = gpu.main(["--smoke", "--profile", "--out", str(tmp_path)])
    assert report.errors == []
    sizes = gpu.SMOKE
    eager = [t for t in report.throughput if not t.compiled]
    assert [t.model for t in eager] == [*sizes.cifar_models, "resnet50"] and all(t.ratio for t in eager)
    assert [t.model for t in report.throughput if t.compiled and t.ratio] == list(sizes.compiled)
    assert len(report.memory) == 4
    run = report.train_run
    assert len(run.host_reads) == run.epochs and max(run.host_reads) <= run.allowed_reads  # no reads per step
    assert run.test_acc is not None and report.airbench.ratio
    assert report.ddp["in_sync"] is True
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["throughput"][0]["ratio"] == eager[0].ratio and saved["targets"]
    assert "## Targets" in (tmp_path / "gpu.md").read_text()
    assert (tmp_path / "profile.txt").stat().st_size and json.loads((tmp_path / "profile-trace.json").read_text())


def test_airbench94_arch_is_airbenchs_network():
    """Same state-dict names and shapes as airbench94's nn.Sequential, and the same function once loaded
    with its weights: BN eps and momentum, GELU, pools, the 1/9 output scaling."""
    ours, theirs = archc.build(ROOT / "archs" / "airbench94.arch"), airbench_loop.make_net()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert sum(p.numel() for p in theirs.parameters()) == 1_972_792  # the count the .arch header states
    assert torch.equal(ours.get_parameter("0.bias"), torch.zeros(24))  # airbench zeroes conv biases
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(6, 3, 32, 32)
    for training in (True, False):
        ours.train(training), theirs.train(training)
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    assert torch.equal(ours.get_buffer("3.norm2.running_var"), theirs.get_buffer("3.norm2.running_var"))


def test_whitening_layer_decorrelates_patches_as_airbench_sets_it(monkeypatch):
    from archc.runtime import whiten as module
    from archc.runtime.augment import normalize
    from archc.runtime.whiten import WHITEN_EPS, whiten

    monkeypatch.setattr(module, "WHITEN_CHUNK", 30)  # 100 images in 4 chunks, summed as one covariance
    images = load_cifar10("sample", train=False).test_x[:100]
    conv = torch.nn.Conv2d(3, 24, 2)
    whiten(conv, images)
    reference = airbench_loop.whitening_filters(normalize(images))
    signs = torch.sign((conv.weight * reference).flatten(1).sum(1))  # an eigenvector's sign is arbitrary
    assert not conv.weight.requires_grad
    scale = reference.abs().amax(dim=(1, 2, 3), keepdim=True)  # filters span 0.1 to 10: compare each to its size
    # float32 sums in another order (chunks) move the weakest directions by ~3e-4 of their size; a wrong
    # patch order, eps or sign is off by the whole filter
    assert torch.allclose(conv.weight / scale, signs.view(-1, 1, 1, 1) * reference / scale, atol=2e-3)
    patches = torch.nn.functional.unfold(normalize(images), 2).transpose(1, 2).reshape(-1, 12).double()
    w = conv.weight[:12].flatten(1).double()
    covariance = w @ (patches.T @ patches / len(patches)) @ w.T  # of the first 12 outputs: λ / (λ + eps) on the diagonal
    eigen = torch.linalg.eigvalsh(patches.T @ patches / len(patches)).flip(0)
    assert torch.allclose(covariance, torch.diag(eigen / (eigen + WHITEN_EPS)), atol=1e-3)  # float32 filters


def test_test_time_views_and_lookahead_match_the_airbench_loop():
    from archc.runtime.lookahead import Lookahead
    from archc.runtime.loop import views

    torch.manual_seed(0)
    net = airbench_loop.make_net().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(views(net, x, "flip-translate"), airbench_loop.tta_logits(net, x), atol=1e-6)
        assert torch.allclose(views(net, x, "flip"), (net(x) + net(x.flip(-1))) / 2, atol=1e-6)
    ours = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(4, 2))
    theirs.load_state_dict(ours.state_dict())
    total = 12
    lookahead, reference = Lookahead(ours, 5, lambda s: (s, total)), airbench_loop.Lookahead(theirs)
    for step in range(1, total + 1):
        with torch.no_grad():
            for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):  # BN statistics too
                noise = torch.randn_like(a) if a.is_floating_point() else torch.ones_like(a)
                a.add_(noise), b.add_(noise)  # the same "optimizer step" on both
        lookahead.step(step)
        if step % 5 == 0:
            reference.update(theirs, 0.95 ** 5 * (step / total) ** 3)
        if step == total:
            reference.update(theirs, 1.0)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))


@pytest.mark.slow
def test_airbench_recipe_learns_on_the_sample(tmp_path):
    """10 epochs of --recipe airbench on the bundled 2,000 images: well above chance (a CPU, a few minutes)."""
    from archc.runtime.commands import run
    from archc.runtime.config import resolve_config

    summary = run(resolve_config({"arch": ROOT / "archs" / "airbench94.arch", "recipe": "airbench", "data": "sample",
                                  "out": tmp_path / "run", "batch_size": 256, "device": "cpu", "quiet": True}))
    assert summary["test_acc"] > 0.35
