"""``archc compile FILE --weights torchvision:NAME[:ENUM]``, with the download replaced.

The network is never used: torchvision's ``WeightsEnum.get_state_dict`` is patched either to
hand back a randomly initialised torchvision model's state dict (standing in for the
pretrained file), or to fail as it does offline. The reference is torchvision itself: after
loading, the compiled model's outputs equal torchvision's model with the same weights.
"""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models._api import WeightsEnum

from archc.compiler.builder import build
from archc.dsl.errors import CheckpointError, UsageError
from archc.runtime.cli import main
from archc.runtime.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
RESNET18 = str(ROOT / "archs/resnet18.arch")


@pytest.fixture
def served(monkeypatch):
    """get_state_dict returns this torchvision model's weights; records the calls."""
    reference = torchvision.models.resnet18().eval()
    calls = []

    def fake(self, *args, **kwargs):
        calls.append(str(self))
        return reference.state_dict()
    monkeypatch.setattr(WeightsEnum, "get_state_dict", fake)
    return reference, calls


def test_loaded_weights_give_torchvision_outputs(served):
    reference, calls = served
    model = build(RESNET18).eval()
    load_weights(model, "torchvision:resnet18:IMAGENET1K_V1")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5
    assert calls == ["ResNet18_Weights.IMAGENET1K_V1"]


@pytest.mark.parametrize("arch, sets, message", [
    ("densenet_uva.arch", {}, "missing (first: input_net.0.weight)"),
    ("resnet18.arch", {"classes": 10}, "2 shape mismatches (first: fc.weight: 1000×512 in the checkpoint, 10×512 here)"),
])
def test_mismatch_is_refused_before_downloading(served, arch, sets, message):
    _, calls = served
    with pytest.raises(CheckpointError) as err:
        load_weights(build(str(ROOT / "archs" / arch), **sets), "torchvision:resnet18")
    assert message in str(err.value) and calls == []


@pytest.mark.parametrize("spec, message", [
    ("resnet18", "is not understood"),
    ("hub:resnet18", "is not understood"),
    ("torchvision:resnet18:NOPE", "torchvision has no weights `resnet18:NOPE`"),
    ("torchvision:nonet", "torchvision has no weights `nonet:DEFAULT`"),
])
def test_bad_spec_is_a_usage_error(served, spec, message):
    with pytest.raises(UsageError) as err:
        load_weights(build(RESNET18), spec)
    assert message in str(err.value)


def test_offline_cli_says_how_to_fix(monkeypatch, capsys):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    code = main(["compile", RESNET18, "--weights", "torchvision:resnet18"])
    err = capsys.readouterr().err
    assert code == 2 and "could not download ResNet18_Weights.IMAGENET1K_V1" in err
    assert "connect to the internet once" in err and "Traceback" not in err
