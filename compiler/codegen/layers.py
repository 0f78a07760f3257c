"""The few modules torch.nn lacks, plus torchvision's initialisation.

This file imports torch only: ``emit_python`` copies these definitions verbatim into the
standalone source it writes, so a built model and its emitted twin run the same code.
"""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


class Block(nn.Module):
    """A scope container (``features``, ``layer1.0``) that cannot run alone: its nodes read or
    hand on several values (``why``). Scopes that can run alone are callable modules instead.

    It prints under its block's name (``DenseLayer``), so the tree reads like torchvision's.
    """

    def __init__(self, kind: str = "Block", why: str = ""):
        super().__init__()
        self.kind, self.why = kind, why

    def _get_name(self) -> str:
        return self.kind

    def __getitem__(self, name) -> nn.Module:  # model.layer1[0], as with torchvision's Sequential
        return self._modules[str(name)]

    def forward(self, *args):
        raise NotImplementedError(f"this {self.kind} scope cannot be called on its own"
                                  f"{': ' + self.why if self.why else ''}; call the model, or a scope around it")


class Scale(nn.Module):
    """A learned per-channel multiplier, initialised to 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # view(1, C, 1, 1) for feature maps, (1, F) after flatten
        return x * self.weight.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return str(self.weight.numel())


class Affine(nn.Module):
    """A fixed per-channel ``x * scale + shift`` (torchvision's ``transform_input``); no parameters.

    The constants are non-persistent buffers: they follow ``.to(device)`` but stay out of the
    state dict, so torchvision's weights load strictly."""

    def __init__(self, scale: tuple, shift: tuple):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(shape) + self.shift.view(shape)

    def extra_repr(self) -> str:
        return f"scale={self.scale.flatten().tolist()}, shift={self.shift.flatten().tolist()}"


class ShortcutA(nn.Module):
    """He et al. option A: subsample by ``stride``, zero-pad channels up to ``out``."""

    def __init__(self, out: int, stride: int = 1):
        super().__init__()
        self.out, self.stride = out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        x = x[:, :, ::s, ::s]
        extra = self.out - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"out={self.out}, stride={self.stride}"


class DropPath(nn.Module):
    """Stochastic depth: in training, zero whole samples with probability p, scale the rest by 1/(1-p)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        mask.bernoulli_(keep)
        if keep > 0.0:  # p == 1 drops everything; there is nothing to rescale
            mask.div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class CheckpointRegion(nn.Module):
    """Runs ``fn`` (the region's ops) under activation checkpointing when training with grad.

    ``fn`` and ``norms`` are stored unregistered: the ops' modules live at their own paths
    in the model, so the state-dict keys stay the node ids. During the backward-pass
    recompute the region's BatchNorms leave their running stats alone, so each step
    updates them once, exactly as without checkpointing (the recompute still normalises
    with the same batch statistics).
    """

    def __init__(self, fn, norms: list, recomputes: str = ""):
        super().__init__()
        self.__dict__["fn"] = fn
        self.__dict__["norms"] = list(norms)
        self.recomputes = recomputes

    def forward(self, *xs):
        if not (self.training and torch.is_grad_enabled()):
            return self.fn(*xs)
        if torch.compiler.is_compiling():
            # Traced as one graph: the compiler recomputes only what gradients need, and BatchNorm's
            # running-stat updates stay in the forward, so no context is needed (and a custom one
            # would break the graph at every region).
            return checkpoint(self.fn, *xs, use_reentrant=False)
        extra = {"context_fn": functools.partial(checkpoint_contexts, self.norms)} if self.norms else {}
        return checkpoint(self.fn, *xs, use_reentrant=False, **extra)

    def extra_repr(self) -> str:
        return f"recomputes {self.recomputes}" if self.recomputes else ""


class AuxHeads(nn.Module):
    """The auxiliary heads (``@aux``): run only in training, as torchvision's GoogLeNet and
    Inception v3 do; in eval mode they cost nothing and the model returns its main output alone.

    ``fn`` is stored unregistered, as in ``CheckpointRegion``: the heads' modules live at their
    own paths, so the state-dict keys stay the node ids."""

    def __init__(self, fn):
        super().__init__()
        self.__dict__["fn"] = fn

    def forward(self, *xs):
        return self.fn(*xs) if self.training else None


def with_aux(main: torch.Tensor, packs: list, order: tuple):
    """The model's result: ``(main, *aux)`` while training with auxiliary heads (each head's pack
    of outputs, put in ``order``), else ``main`` (the heads gave None)."""
    if any(p is None for p in packs):
        return main
    flat = [t for p in packs for t in p]
    return (main, *(flat[i] for i in order))


def checkpoint_contexts(norms: list):
    """checkpoint's context_fn: plain forward; the recompute freezes running stats.

    A partial of a function, not a bound method: torch.compile drops the ``self`` of the latter.
    """
    return contextlib.nullcontext(), frozen_stats(norms)


@contextlib.contextmanager
def frozen_stats(norms: list):
    """Within the block, BatchNorms leave running stats as they are (momentum 0, count restored).

    Not ``track_running_stats = False``: that changes what batch_norm saves for backward,
    which checkpoint's recompute must reproduce exactly.
    """
    saved = [(n.momentum, None if n.num_batches_tracked is None else n.num_batches_tracked.clone())
             for n in norms]
    for n in norms:
        n.momentum = 0.0
    try:
        yield
    finally:
        for n, (momentum, count) in zip(norms, saved):
            n.momentum = momentum
            if count is not None:
                n.num_batches_tracked.copy_(count)
