"""Batched augmentation against straightforward per-image references."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from archc.runtime import augment
from archc.runtime.data import load_cifar10

IMAGES = load_cifar10("sample", train=False).test_x[:64]


def _reference_crop(img: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """torchvision's RandomCrop(32, padding=4, padding_mode="reflect") + flip, for one image and known offsets."""
    padded = F.pad(img[None].float(), (4, 4, 4, 4), mode="reflect")[0]
    out = padded[:, dy:dy + 32, dx:dx + 32]
    return out.flip(-1) if flip else out


def test_crop_flip_matches_pad_then_slice():
    g = torch.Generator().manual_seed(5)
    idx = torch.randperm(64, generator=g)[:16]
    shift = torch.randint(0, 9, (2, 16), generator=g)
    flip = torch.randint(0, 2, (16,), generator=g).bool()
    out = augment.crop_flip(IMAGES, idx, shift, flip)
    assert out.dtype == torch.uint8 and out.is_contiguous(memory_format=torch.channels_last)
    for k in range(16):
        ref = _reference_crop(IMAGES[idx[k]], int(shift[0, k]), int(shift[1, k]), bool(flip[k]))
        assert torch.equal(out[k].float(), ref)


def test_standard_outputs_are_normalised_crops_and_deterministic():
    idx = torch.arange(32)
    a = augment.standard(IMAGES, idx, torch.Generator().manual_seed(1))
    b = augment.standard(IMAGES, idx, torch.Generator().manual_seed(1))
    c = augment.standard(IMAGES, idx, torch.Generator().manual_seed(2))
    assert a.shape == (32, 3, 32, 32) and a.dtype == torch.float32 and a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b) and not torch.equal(a, c)
    for k in range(4):  # each output is one of the 81 x 2 crops of its own image
        candidates = [augment.normalize(_reference_crop(IMAGES[k], dy, dx, f)[None])[0]
                      for dy in range(9) for dx in range(9) for f in (False, True)]
        assert any(torch.allclose(a[k], cand) for cand in candidates)


def test_normalize_matches_torchvision_convention():
    x = IMAGES[:4]
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    assert torch.allclose(augment.normalize(x), (x.float() / 255 - mean) / std, atol=1e-5)


def test_shards_equal_the_whole_batch_and_consume_the_generator_alike():
    """What DDP relies on: rank r's slice of a global batch is the same as in a single process."""
    idx = torch.arange(40)
    for fn in augment.AUGMENTS.values():
        whole_g = torch.Generator().manual_seed(3)
        whole = fn(IMAGES, idx, whole_g)
        parts, gens = [], []
        for keep in (slice(0, 20), slice(20, 40)):
            g = torch.Generator().manual_seed(3)
            parts.append(fn(IMAGES, idx, g, keep))
            gens.append(torch.rand(1, generator=g))
        assert torch.equal(torch.cat(parts), whole)
        assert gens[0] == gens[1] == torch.rand(1, generator=whole_g)


def test_seed_table_crop_keeps_most_of_the_image():
    """scale 0.8-1 and ratio 0.9-1.1: a left-to-right ramp stays a monotone ramp spanning >= ~80% of its range."""
    ramp = torch.arange(32, dtype=torch.float32).mul(8).expand(64, 3, 32, 32).to(torch.uint8)
    out = augment.seed_table(ramp, torch.arange(64), torch.Generator().manual_seed(0))
    raw = out * (torch.tensor(augment.STD).view(1, 3, 1, 1) * 255) + torch.tensor(augment.MEAN).view(1, 3, 1, 1) * 255
    rows = raw[:, 0, 16]  # the middle row of the red channel of each image
    steps = rows.diff(dim=1)
    rising, falling = (steps >= -1e-3).all(1), (steps <= 1e-3).all(1)
    assert (rising | falling).all() and rising.any() and falling.any()  # flipped and unflipped both occur
    span = rows.amax(1) - rows.amin(1)
    assert (span >= 0.75 * 248).all() and (span <= 248 + 1e-3).all()
    constant = torch.full((8, 3, 32, 32), 100, dtype=torch.uint8)
    flat = augment.seed_table(constant, torch.arange(8), torch.Generator().manual_seed(0))
    assert torch.allclose(flat, augment.normalize(constant), atol=1e-4)
