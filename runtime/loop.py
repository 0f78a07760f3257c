"""The inner loops: one training epoch and the batched evaluation pass, both on device-resident data."""
from __future__ import annotations

import time
from typing import Protocol

import torch
from torch import nn

from archc.dsl.errors import DivergedError
from archc.runtime import distributed
from archc.runtime.augment import normalize
from archc.runtime.session import Session

CHECK_EVERY = 20  # steps between loss checks: each costs a device sync, and a NaN step cannot be undone anyway
EVAL_BATCH = 500  # images per evaluation forward pass


class Progress(Protocol):
    """Where the loop reports during an epoch (runtime.display): asked at every step, it says at which
    steps it shows something, so the loop syncs the device for it only then."""

    def wants(self, step: int) -> bool: ...

    def show(self, step: int, loss: float, acc: float) -> None: ...


def train_epoch(s: Session, epoch: int, progress: Progress) -> dict[str, float]:
    """One pass over a fresh permutation; each rank trains on its slice of every global batch.

    Loss and accuracy accumulate on the device; the host reads them only at a loss check or when
    ``progress`` shows them. Raises DivergedError at the first non-finite loss, naming the epoch and step.
    A net with auxiliary heads (``@aux``) returns (main, *aux) in training: its loss is the main loss
    plus ``aux_weight`` times each head's, and the accuracy is the main output's.
    """
    s.net.train()
    batch = s.cfg.batch_size
    local = batch // s.world
    keep = slice(s.rank * local, (s.rank + 1) * local)
    criterion = nn.CrossEntropyLoss(label_smoothing=s.cfg.label_smoothing)
    perm = torch.randperm(len(s.data.train_y), generator=s.generator, device=s.device)
    losses = torch.zeros(s.steps, device=s.device)
    correct = torch.zeros((), dtype=torch.int64, device=s.device)
    start, checked = time.perf_counter(), 0
    for step in range(s.steps):
        idx = perm[step * batch:(step + 1) * batch]
        x, y = s.augment(s.data.train_x, idx, s.generator, keep, epoch), s.data.train_y[idx[keep]]
        with s.autocast():
            out = s.net(x)
            if isinstance(out, tuple):
                out, *aux = out
                loss = criterion(out, y) + s.cfg.aux_weight * sum(criterion(a, y) for a in aux)
            else:
                loss = criterion(out, y)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        s.schedule.step()
        if s.lookahead:
            s.lookahead.step(s.schedule.last_epoch)  # the scheduler counts the run's steps
        losses[step] = loss.detach()
        correct += (out.argmax(1) == y).sum()
        done = step + 1
        if done % CHECK_EVERY == 0 or done == s.steps:  # at the same steps on every rank: a collective
            _check_finite(s, losses, checked, done, epoch)
            checked = done
        if progress.wants(done):  # rank 0's own figures, read in one sync
            loss_sum, hits = torch.stack([losses[:done].sum(), correct.float()]).tolist()
            progress.show(done, loss_sum / done, hits / (done * local))
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
def predict(model: nn.Module, images: torch.Tensor, bf16: bool, tta: str = "none") -> torch.Tensor:
    """The logits of every uint8 image (float32), in eval mode, EVAL_BATCH images per forward pass,
    averaged over the test-time views ``tta`` (see ``views``)."""
    model.eval()
    logits = []
    for i in range(0, len(images), EVAL_BATCH):
        x = normalize(images[i:i + EVAL_BATCH].contiguous(memory_format=torch.channels_last))
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits.append(views(model, x, tta))
    return torch.cat(logits) if logits else torch.zeros(0, 0, device=images.device)


def views(model: nn.Module, x: torch.Tensor, tta: str) -> torch.Tensor:
    """airbench94's test-time augmentation, as float32 logits: ``flip`` averages the image and its
    mirror; ``flip-translate`` gives that half the weight and the other half to the same pair shifted
    one pixel up-left and one down-right (reflect padding), 6 forward passes in all."""
    if tta == "none":
        return model(x).float()
    mirrored = (model(x).float() + model(x.flip(-1)).float()) / 2
    if tta == "flip":
        return mirrored
    h, w = x.shape[-2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [views(model, padded[..., d:d + h, d:d + w], "flip") for d in (0, 2)]
    return (mirrored + (shifted[0] + shifted[1]) / 2) / 2


def heldout(s: Session, images: torch.Tensor, labels: torch.Tensor, tta: str = "none") -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on held-out images, the logits averaged over the views ``tta``;
    each rank scores a contiguous share, and the sums are added up across ranks in one collective."""
    n = len(labels)
    lo, hi = n * s.rank // s.world, n * (s.rank + 1) // s.world
    logits, y = predict(s.fast, images[lo:hi], s.bf16, tta), labels[lo:hi]
    sums = torch.zeros(2, dtype=torch.float64, device=s.device)
    if len(y):
        sums += torch.stack([(logits.argmax(1) == y).sum().double(),
                             nn.functional.cross_entropy(logits, y, reduction="sum").double()])
    hits, loss = distributed.all_sum(sums).tolist()
    return hits / n, loss / n
