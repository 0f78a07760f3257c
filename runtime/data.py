"""CIFAR-10 in the official ``cifar-10-batches-py`` pickle layout, loaded whole onto the training device.

Every batch file is a pickled dict with ``data`` (uint8, N x 3072, channel-major: 1024 red, 1024
green, 1024 blue values per image) and ``labels`` (N ints in 0..9). The images stay uint8 on the
device (150 MB for the full set), so augmentation and normalisation run batched there, no workers.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from archc.dsl.errors import DataError

FOLDER = "cifar-10-batches-py"
SAMPLE = Path(__file__).resolve().parent / "sample" / FOLDER
CACHE = Path.home() / ".cache" / "archc" / "cifar10"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# The batch files are pickles; only what an ndarray needs may be unpickled, so a hostile file
# cannot run code. ``_reconstruct`` lives in numpy.core (numpy 1, official files) or numpy._core (numpy 2).
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


@dataclass(frozen=True)
class Cifar10:
    """Images as uint8 (N, 3, 32, 32) and labels as int64 (N,), all on one device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    root: Path
    classes: tuple[str, ...] = CLASSES


def _bad(path: Path, found: str, hint: str = "re-download CIFAR-10 (python version) or pass --data sample") -> DataError:
    expected = "a CIFAR-10 python batch: pickled dict with 'data' (uint8, N x 3072) and 'labels' (N ints 0-9)"
    return DataError("unreadable CIFAR-10 batch file", where=str(path), expected=expected, found=found, hint=hint)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (uint8 N x 3 x 32 x 32, int64 N)."""
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError("CIFAR-10 batch file missing", where=str(path), hint="re-download CIFAR-10 or pass --data sample") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, OSError) as e:
        ended = isinstance(e, EOFError) or "truncated" in str(e)
        found = "the file ends early (truncated download?)" if ended else f"{type(e).__name__}: {e}"
        raise _bad(path, found) from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise _bad(path, f"{keys}")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _bad(path, f"data {getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if labels.shape != (len(data),) or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise _bad(path, f"{labels.size} labels of type {labels.dtype} for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise _bad(path, f"labels from {labels.min()} to {labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _download(cache: Path) -> None:
    import torchvision  # only needed for the one-time download

    try:
        torchvision.datasets.CIFAR10(root=str(cache), download=True)
    except Exception as e:  # network errors come as URLError, OSError, RuntimeError, ... depending on where it failed
        raise DataError("could not download CIFAR-10", where=str(cache), found=f"{type(e).__name__}: {e}",
                        hint=f"connect to the internet, or extract cifar-10-python.tar.gz into {cache}, "
                             "or pass --data sample for the bundled 2,000-image sample") from None


def resolve(spec: str | Path) -> Path:
    """The ``cifar-10-batches-py`` folder meant by ``--data``: cifar10, sample, or a folder path."""
    if str(spec) == "sample":
        return SAMPLE
    if str(spec) == "cifar10":
        if not (CACHE / FOLDER / "test_batch").is_file():
            _download(CACHE)
        return CACHE / FOLDER
    path = Path(spec).expanduser()
    if (path / FOLDER).is_dir():
        return path / FOLDER
    if (path / "test_batch").is_file():
        return path
    if not path.exists():
        raise DataError("data folder not found", where=f"--data {spec}", hint="pass cifar10 (download), sample, or an existing folder")
    names = sorted(p.name for p in path.iterdir())
    found = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
    raise DataError(f"no CIFAR-10 data in {path}", where=f"--data {spec}", expected=f"a folder holding {FOLDER}/ or its test_batch and data_batch_* files",
                    found=found or "an empty folder", hint="extract cifar-10-python.tar.gz there, or pass --data cifar10 to download it")


def load_cifar10(spec: str | Path, device: torch.device | str = "cpu", *, train: bool = True) -> Cifar10:
    """Every ``data_batch_*`` present (when ``train``) plus ``test_batch``, as tensors on ``device``."""
    root = resolve(spec)
    parts = sorted((p for p in root.iterdir() if re.fullmatch(r"data_batch_\d+", p.name)),
                   key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if train and not parts:
        raise DataError("no training batches", where=str(root), expected="data_batch_1 ... data_batch_5",
                        found="only " + ", ".join(sorted(p.name for p in root.iterdir())), hint="re-download CIFAR-10")
    train_parts = [read_batch(p) for p in parts] if train else []
    test_x, test_y = read_batch(root / "test_batch")
    train_x = np.concatenate([x for x, _ in train_parts] or [np.zeros((0, 3, 32, 32), np.uint8)])
    train_y = np.concatenate([y for _, y in train_parts] or [np.zeros(0, np.int64)])
    arrays = (train_x, train_y, test_x, test_y)
    return Cifar10(*(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays), root)
