"""``--weights torchvision:NAME[:ENUM]``: load torchvision's pretrained weights by name.

The compiled model's module paths equal torchvision's for archs written with its names,
so the state dict loads with ``strict=True``. Downloads need a network; offline (or with
an unknown name) the user gets a located message and exit code 2.
"""
from __future__ import annotations

from archc.dsl.errors import CheckpointError, UsageError
from archc.runtime.checkpoint import mismatch


def load_weights(model, spec: str) -> None:
    name, weights = _weights_of(spec)
    import torch
    import torchvision
    with torch.device("meta"):  # names and shapes only: no memory, no init, no download yet
        layout = torchvision.models.get_model(name).state_dict()
    _check_layout(model.state_dict(), layout, weights)
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except OSError as e:  # URLError is an OSError: no network, DNS failure, refused
        raise CheckpointError(f"could not download {weights}: {e}", where="--weights",
                              hint="connect to the internet once (torch caches the file under ~/.cache/torch), "
                                   "or load a local state dict in Python") from None
    model.load_state_dict(state, strict=True)


def _weights_of(spec: str):
    """(model name, torchvision weights enum member) of ``torchvision:NAME[:ENUM]``."""
    source, _, rest = spec.partition(":")
    name, _, enum = rest.partition(":")
    if source != "torchvision" or not name:
        raise UsageError(f"`--weights {spec}` is not understood", where="--weights",
                         expected="torchvision:NAME[:WEIGHTS_ENUM], e.g. torchvision:resnet50:IMAGENET1K_V2")
    import torchvision
    try:
        return name, torchvision.models.get_model_weights(name)[enum or "DEFAULT"]
    except (ValueError, KeyError):
        raise UsageError(f"torchvision has no weights `{name}:{enum or 'DEFAULT'}`", where="--weights",
                         hint="see torchvision.models.list_models() and the model's weight enums") from None


def _check_layout(ours: dict, theirs: dict, weights) -> None:
    """Same state-dict names and shapes as torchvision's model, checked before anything is downloaded."""
    problem = mismatch(ours, theirs)
    if problem:
        raise CheckpointError(f"{weights} does not fit this architecture", where="--weights", found=problem,
                              hint="use an arch file written with torchvision's module names, compiled with the "
                                   "model's parameters (archs/resnet50.arch; classes = 1000)")
