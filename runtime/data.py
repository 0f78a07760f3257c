"""CIFAR-10 in the official ``cifar-10-batches-py`` pickle layout, loaded whole onto the training device.

Every batch file is a pickled dict with ``data`` (uint8, N x 3072, channel-major: 1024 red, 1024
green, 1024 blue values per image) and ``labels`` (N ints in 0..9). The images stay uint8 on the
device (150 MB for the full set), so augmentation and normalisation run batched there, no workers.
A batch file is read whole (regular files of at most MAX_BATCH_BYTES only) and unpickled through
``runtime.batchpickle``, which refuses code, sizes the file does not hold, and deep nesting; its layout
is then checked value by value. Every refusal is a DataError naming the file.
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from archc.dsl.errors import DataError
from archc.dsl.files import FileRefused, read_regular
from archc.dsl.text import printable
from archc.runtime import batchpickle
from archc.runtime.values import describe

FOLDER = "cifar-10-batches-py"
SAMPLE = Path(__file__).resolve().parent / "sample" / FOLDER
CACHE = Path.home() / ".cache" / "archc" / "cifar10"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

MAX_BATCH_BYTES = 256 << 20  # one batch file: the official ones are 31 MB (10,000 images); this holds 87,000


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
    expected = "a CIFAR-10 python batch: pickled dict with 'data' (uint8, N x 3072, N >= 1) and 'labels' (N ints 0-9)"
    return DataError("unreadable CIFAR-10 batch file", where=str(path), expected=expected, found=found, hint=hint)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (uint8 N x 3 x 32 x 32, int64 N); a DataError naming the file for anything else."""
    batch = _unpickle(path)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = printable(", ".join(map(repr, list(batch)[:6]))) if isinstance(batch, dict) else ""
        raise _bad(path, f"a dict with keys {keys}" if isinstance(batch, dict) else describe(batch))
    return _images(path, batch["data"]), _labels(path, batch["labels"], len(batch["data"]))


def _unpickle(path: Path) -> object:
    """What the file holds, read through batchpickle's checks (see there)."""
    try:
        return batchpickle.load(read_regular(path, MAX_BATCH_BYTES))
    except FileNotFoundError:
        raise DataError("CIFAR-10 batch file missing", where=str(path),
                        hint="re-download CIFAR-10 or pass --data sample") from None
    except FileRefused as e:
        hint = "split it into data_batch_N files of 10,000 images" if e.too_large else "replace it with the batch file"
        raise DataError(f"CIFAR-10 batch file {e.what}", where=str(path), expected=e.expected, hint=hint) from None
    except OSError as e:
        raise DataError("cannot read the CIFAR-10 batch file", where=str(path), found=printable(e.strerror or e)) from None
    except batchpickle.Refused as e:
        raise _bad(path, printable(e, 300)) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError) as e:  # whatever else a damaged pickle makes the unpickler raise
        if isinstance(e, EOFError) or "truncated" in str(e):
            raise _bad(path, "the file ends early (truncated download?)") from None
        raise _bad(path, printable(f"{type(e).__name__}: {e}", 300)) from None


def _images(path: Path, data: object) -> np.ndarray:
    data = np.asarray(data) if isinstance(data, np.ndarray) else data  # batchpickle's checked subclass -> ndarray
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _bad(path, f"data: {describe(data)}")
    if len(data) == 0:
        raise _bad(path, "no images (data is 0 x 3072)", hint="remove the empty batch file, or re-download CIFAR-10")
    return data.reshape(-1, 3, 32, 32)


def _labels(path: Path, labels: object, n: int) -> np.ndarray:
    """The labels as int64, checked one by one without walking into nested values."""
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        labels = labels.tolist()
    if not isinstance(labels, (list, tuple)):
        raise _bad(path, f"labels: {describe(labels)}")
    if len(labels) != n:
        raise _bad(path, f"{len(labels):,} labels for {n:,} images")
    for i, label in enumerate(labels):
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) or not 0 <= label <= 9:
            raise _bad(path, f"label of image {i:,}: {describe(label)}")
    return np.array(labels, dtype=np.int64)


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
        if not os.path.lexists(CACHE / FOLDER / "test_batch"):
            _download(CACHE)
        return CACHE / FOLDER
    path, where = Path(spec).expanduser(), f"--data {printable(spec)}"
    try:
        return _data_folder(path, where)
    except OSError as e:  # a name too long, a loop of links, a folder that cannot be listed
        raise DataError("cannot use the data folder", where=where, found=printable(e.strerror or e),
                        hint="pass an existing folder holding cifar-10-batches-py/, or cifar10 / sample") from None


def _data_folder(path: Path, where: str) -> Path:
    if (path / FOLDER).is_dir():
        return path / FOLDER
    if os.path.lexists(path / "test_batch"):  # even a FIFO or a folder: read_batch says what is wrong with it
        return path
    if not path.exists():
        raise DataError("data folder not found", where=where, hint="pass cifar10 (download), sample, or an existing folder")
    if not path.is_dir():
        raise DataError("--data names a file, not a folder", where=where, expected=f"a folder holding {FOLDER}/",
                        hint="pass the folder that holds the batch files, or cifar10 / sample")
    raise DataError(f"no CIFAR-10 data in {printable(path)}", where=where,
                    expected=f"a folder holding {FOLDER}/ or its test_batch and data_batch_* files",
                    found=_listing(path) or "an empty folder",
                    hint="extract cifar-10-python.tar.gz there, or pass --data cifar10 to download it")


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return printable(", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else ""), 300)


def load_cifar10(spec: str | Path, device: torch.device | str = "cpu", *, train: bool = True) -> Cifar10:
    """Every ``data_batch_*`` present (when ``train``) plus ``test_batch``, as tensors on ``device``."""
    root = resolve(spec)
    parts = sorted((p for p in root.iterdir() if re.fullmatch(r"data_batch_[0-9]+", p.name)),
                   key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if train and not parts:
        raise DataError("no training batches", where=str(root), expected="data_batch_1 ... data_batch_5",
                        found=f"only {_listing(root)}", hint="re-download CIFAR-10")
    train_parts = [read_batch(p) for p in parts] if train else []
    test_x, test_y = read_batch(root / "test_batch")
    train_x = np.concatenate([x for x, _ in train_parts] or [np.zeros((0, 3, 32, 32), np.uint8)])
    train_y = np.concatenate([y for _, y in train_parts] or [np.zeros(0, np.int64)])
    arrays = (train_x, train_y, test_x, test_y)
    return Cifar10(*(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays), root)
