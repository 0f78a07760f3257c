"""The inner loops: one training epoch and the batched evaluation pass, both on device-resident data."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from archc.dsl.errors import DivergedError
from archc.runtime import distributed
from archc.runtime.augment import AUGMENTS, normalize
from archc.runtime.session import Session

CHECK_EVERY = 20  # steps between loss checks: each costs a device sync, and a NaN step cannot be undone anyway
EVAL_BATCH = 500  # images per evaluation forward pass


def train_epoch(s: Session, epoch: int, show: Callable[[int, float, float], None]) -> dict[str, float]:
    """One pass over a fresh permutation; each rank trains on its slice of every global batch.

    ``show(step, mean_loss, train_acc)`` is called at every loss check. Raises DivergedError at the
    first non-finite loss, naming the epoch and step.
    """
    s.net.train()
    batch = s.cfg.batch_size
    local = batch // s.world
    keep = slice(s.rank * local, (s.rank + 1) * local)
    augment = AUGMENTS[s.cfg.augment]
    criterion = nn.CrossEntropyLoss(label_smoothing=s.cfg.label_smoothing)
    perm = torch.randperm(len(s.data.train_y), generator=s.generator, device=s.device)
    losses = torch.zeros(s.steps, device=s.device)
    correct = torch.zeros((), dtype=torch.int64, device=s.device)
    start, checked = time.perf_counter(), 0
    for step in range(s.steps):
        idx = perm[step * batch:(step + 1) * batch]
        x, y = augment(s.data.train_x, idx, s.generator, keep), s.data.train_y[idx[keep]]
        with s.autocast():
            out = s.net(x)
            loss = criterion(out, y)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        s.schedule.step()
        losses[step] = loss.detach()
        correct += (out.argmax(1) == y).sum()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == s.steps:
            _check_finite(s, losses, checked, step + 1, epoch)
            checked = step + 1
            show(checked, losses[:checked].mean().item(), correct.item() / (checked * local))
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
    seconds = time.perf_counter() - start
    totals = distributed.all_sum(torch.stack([losses.sum().double(), correct.double()]))
    return {"loss": totals[0].item() / (s.steps * s.world), "train_acc": totals[1].item() / (s.steps * batch),
            "images_per_s": s.steps * batch / seconds}


def _check_finite(s: Session, losses: torch.Tensor, lo: int, hi: int, epoch: int) -> None:
    """Find the first non-finite loss in steps [lo, hi) on any rank, and stop every rank there."""
    window = losses[lo:hi]
    steps = torch.arange(lo, hi, device=s.device)
    first = torch.where(torch.isfinite(window), s.steps, steps).min()
    first = int(distributed.all_min(first).item())
    if first < s.steps:
        value = losses[first].item()
        raise DivergedError(
            f"loss became {value} at epoch {epoch}, step {first + 1} of {s.steps}",
            where=str(s.cfg.out), found=f"lr {s.cfg.lr}, optimizer {s.cfg.optimizer}, precision {'bf16' if s.bf16 else 'fp32'}",
            hint=f"lower --lr, or check the architecture's normalisation; {s.cfg.out / 'last.pt'} "
                 f"holds the last good epoch ({epoch - 1})")


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Predicted class of every uint8 image, in eval mode, EVAL_BATCH images per forward pass."""
    model.eval()
    preds = [torch.zeros(0, dtype=torch.int64, device=images.device)]
    for i in range(0, len(images), EVAL_BATCH):
        x = normalize(images[i:i + EVAL_BATCH].contiguous(memory_format=torch.channels_last))
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            preds.append(model(x).argmax(1))
    return torch.cat(preds)


def heldout_accuracy(s: Session) -> float:
    """Test-set accuracy (fraction); each rank scores a contiguous share and the counts are summed."""
    n = len(s.data.test_y)
    lo, hi = n * s.rank // s.world, n * (s.rank + 1) // s.world
    hits = (predict(s.fast, s.data.test_x[lo:hi], s.bf16) == s.data.test_y[lo:hi]).sum()
    return distributed.all_sum(hits).item() / n
