"""The hand-written reference models (test oracles) must themselves be right:
exact parameter counts for the UvA seed-table models, the published sizes for
He et al.'s CIFAR ResNets, and a 10-way output for a 32x32 batch."""
import sys
from pathlib import Path

import pytest
import torch

# Make `tests.reference` importable under plain `pytest` too (not only
# `python -m pytest`, which puts the working directory on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reference import cifar_resnet, uva_models  # noqa: E402

UVA_PARAMS = {
    "googlenet_uva": 260_650,
    "resnet_uva": 272_378,
    "preact_resnet_uva": 272_250,
    "densenet_uva": 239_146,
}
# Published sizes (He et al. 2016, Table 6), in millions.
CIFAR_RESNET_PARAMS_M = {"resnet20": 0.27, "resnet56": 0.85, "resnet110": 1.7}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def published_rounding(n: int) -> float:
    # zoo-targets.json rule: 2 decimals below 1M, 1 decimal above.
    m = n / 1e6
    return round(m, 2) if m < 1 else round(m, 1)


def test_uva_registry_is_complete():
    assert set(uva_models.MODELS) == set(UVA_PARAMS)


@pytest.mark.parametrize("name", sorted(UVA_PARAMS))
def test_uva_param_count_exact(name):
    assert n_params(uva_models.MODELS[name]()) == UVA_PARAMS[name]


@pytest.mark.parametrize("name", sorted(CIFAR_RESNET_PARAMS_M))
def test_cifar_resnet_param_count_published(name):
    n = n_params(cifar_resnet.MODELS[name]())
    assert published_rounding(n) == CIFAR_RESNET_PARAMS_M[name]


ALL = [(n, f) for n, f in uva_models.MODELS.items()] + [
    (n, f) for n, f in cifar_resnet.MODELS.items()]


@pytest.mark.parametrize("name,make", ALL, ids=[n for n, _ in ALL])
def test_forward_shape(name, make):
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_densenet_concat_order_new_features_first():
    # The tutorial's DenseLayer returns cat([new, x]); the passthrough input
    # must therefore occupy the LAST channels of the output.
    layer = uva_models.DenseLayer(c_in=8, bn_size=2, growth_rate=4).eval()
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        out = layer(x)
    assert out.shape[1] == 12
    assert torch.equal(out[:, 4:], x)


def test_option_a_shortcut_pads_channels_symmetrically():
    block = cifar_resnet.BasicBlock(16, 32, stride=2)
    x = torch.randn(1, 16, 8, 8)
    s = block.shortcut(x)
    assert s.shape == (1, 32, 4, 4)
    assert torch.equal(s[:, 8:24], x[:, :, ::2, ::2])
    assert not s[:, :8].any() and not s[:, 24:].any()
