"""``--weights torchvision:NAME[:ENUM]``: load torchvision's pretrained weights by name.

The compiled model's module paths equal torchvision's for archs written with its names, so the
state dict loads with ``strict=True``; names and shapes are compared before anything is downloaded.
The file is fetched into torch's cache ($TORCH_HOME/hub/checkpoints, hash-checked on download) and
read like a checkpoint (``runtime.torchfile``: regular files only, zip sizes bounded, weights_only),
never through torch.hub's loader, which unpickles without weights_only: a crafted file in the cache
would run code. Offline, an unknown name, or a damaged or hostile cached file: a located message, exit 2.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse


from archc.dsl.errors import CheckpointError, UsageError
from archc.dsl.text import printable
from archc.runtime import torchfile
from archc.runtime.checkpoint import mismatch
from archc.runtime.checkpoint_schema import StateDict, first_problem


def load_weights(model, spec: str) -> None:
    name, weights = _weights_of(spec)
    layout = meta_model(name).state_dict()  # names and shapes only: no memory, no init, no download yet
    _check_layout(model.state_dict(), layout, weights)
    path = _fetch(weights)
    fix = f"delete {printable(path)}; the next run downloads it again"
    state = torchfile.read(path, "cached weights file", fix)
    if bad := first_problem(StateDict.validate_python, state):
        key, expected, found = bad
        raise CheckpointError(f"cached weights file holds no state dict at {key}", where=str(path),
                              expected=f"parameter names -> tensors: {expected}", found=found, hint=fix) from None
    differences = mismatch(layout, state)
    if differences:
        raise CheckpointError(f"cached weights file does not hold {weights}", where=str(path), found=differences, hint=fix)
    model.load_state_dict(state, strict=True)


def meta_model(name: str, **kwargs):
    """torchvision's model ``name`` built on the meta device: parameters without memory or init.

    RegNet's builder computes its stage widths with torch tensors (``BlockParams.from_init_params``
    reads them back with ``.tolist()``), which the meta device would leave without values, so that
    one computation runs on the CPU."""
    import warnings
    from unittest import mock

    import torch
    import torchvision
    from torchvision.models.regnet import BlockParams

    plan = BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kw):
        with torch.device("cpu"):
            return plan(cls, *args, **kw)

    with mock.patch.object(BlockParams, "from_init_params", classmethod(on_cpu)), torch.device("meta"), \
            warnings.catch_warnings():
        # GoogLeNet warns that its default init will change: on the meta device nothing is initialised
        warnings.simplefilter("ignore", FutureWarning)
        return torchvision.models.get_model(name, **kwargs)


def _fetch(weights) -> Path:
    """The cached file of ``weights``, downloaded first (checked against the hash in its name) when absent."""
    import torch.hub

    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if os.path.lexists(path):  # whatever it is: torchfile.read says what is wrong with it
        return path
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, str(path), match.group(1) if match else None, progress=False)
    except OSError as e:  # URLError is an OSError: no network, DNS failure, refused; an unwritable cache
        raise CheckpointError(f"could not download {weights}: {printable(e)}", where="--weights",
                              hint=f"connect to the internet once (the file is cached as {printable(path)}), "
                                   "or load a local state dict in Python") from None
    except RuntimeError as e:  # download_url_to_file's hash check
        raise CheckpointError(f"the download of {weights} does not match its published hash", where=weights.url,
                              found=printable(e), hint="retry; if it persists, the mirror serves another file") from None
    return path


def _weights_of(spec: str):
    """(model name, torchvision weights enum member) of ``torchvision:NAME[:ENUM]``."""
    source, _, rest = spec.partition(":")
    name, _, enum = rest.partition(":")
    if source != "torchvision" or not name:
        raise UsageError(f"`--weights {printable(spec)}` is not understood", where="--weights",
                         expected="torchvision:NAME[:WEIGHTS_ENUM], e.g. torchvision:resnet50:IMAGENET1K_V2")
    import torchvision
    try:
        return name, torchvision.models.get_model_weights(name)[enum or "DEFAULT"]
    except (ValueError, KeyError):
        raise UsageError(f"torchvision has no weights `{printable(name)}:{printable(enum or 'DEFAULT')}`", where="--weights",
                         hint="see torchvision.models.list_models() and the model's weight enums") from None


def _check_layout(ours: dict, theirs: dict, weights) -> None:
    """Same state-dict names and shapes as torchvision's model, checked before anything is downloaded."""
    differences = mismatch(ours, theirs)
    if differences:
        raise CheckpointError(f"{weights} does not fit this architecture", where="--weights", found=differences,
                              hint="use an arch file written with torchvision's module names, compiled with the "
                                   "model's parameters (archs/resnet50.arch; classes = 1000)")
