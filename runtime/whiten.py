"""airbench's whitening layer: the net's first conv, set from the training images and then fixed.

Its ``2 * d`` filters (``d = C * k * k``, the size of a k×k patch) are the eigenvectors of the
uncentred covariance of every k×k patch of the first WHITEN_IMAGES normalised training images, each
divided by sqrt(eigenvalue + WHITEN_EPS), then the same negated: the layer's output is the patches
in decorrelated, unit-variance coordinates, and a GELU after it keeps both signs. archc's .arch
language declares the layer (archs/airbench94.arch); its weights come from data, so the runtime sets
them here (``--recipe airbench``, config key ``whiten``) and they never train.
"""
from __future__ import annotations

import torch
from torch import nn

from archc.dsl.errors import UsageError
from archc.runtime.augment import normalize

WHITEN_IMAGES = 5000  # airbench94 estimates the covariance on the first 5,000 training images
WHITEN_EPS = 5e-4  # added to each eigenvalue, so near-constant directions are not blown up
# images unfolded at once: all 5,000 CIFAR images' 2x2 patches would take 460 MB (two copies), 500 take 46 MB,
# well under what training a batch needs, so the run's memory estimate covers this step
WHITEN_CHUNK = 500


def whitening_layer(model: nn.Module) -> nn.Conv2d:
    """The model's first conv, when it can whiten its input: 2 × C × k × k filters of C × k × k, no groups."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.groups != 1 or conv.out_channels != 2 * conv.weight[0].numel():
        found = "no conv" if conv is None else \
            f"a conv of {conv.out_channels} filters of {'×'.join(map(str, conv.weight.shape[1:]))}, groups {conv.groups}"
        raise UsageError("whiten = true needs a whitening layer first in the net", where="whiten (--recipe airbench)",
                         expected="a first conv with 2 × C × k × k outputs, e.g. conv(24, 2) on RGB input "
                                  "(archs/airbench94.arch)", found=found,
                         hint="set whiten = false in a --config file to train this net with the recipe")
    return conv


@torch.no_grad()
def whiten(conv: nn.Conv2d, images: torch.Tensor) -> None:
    """Set ``conv``'s weights from ``images`` (uint8, N × C × H × W) and freeze them."""
    d = conv.weight[0].numel()
    covariance, count = torch.zeros(d, d, device=images.device), 0
    for chunk in images[:WHITEN_IMAGES].split(WHITEN_CHUNK):
        x = normalize(chunk).contiguous()
        patches = nn.functional.unfold(x, conv.kernel_size).transpose(1, 2).reshape(-1, d)  # (C, kh, kw) order
        covariance += patches.T @ patches
        count += len(patches)
    values, vectors = torch.linalg.eigh(covariance / count)  # ascending
    filters = (vectors / (values + WHITEN_EPS).sqrt()).T.flip(0)  # strongest direction first
    conv.weight.copy_(torch.cat([filters, -filters]).view_as(conv.weight))
    conv.weight.requires_grad_(False)
