"""Rebuild the bundled CIFAR-10 sample (``--data sample``) from a larger copy in the same format.

    python runtime/sample/make_sample.py ../shared/data/cifar10-subset/cifar-10-batches-py

Keeps the first 400 images of each of the 5 training batches (2,000, roughly balanced because
CIFAR batches are shuffled) and the first 500 test images, so the sample stays under 8 MB on disk
while still being real CIFAR-10 in the official pickle layout, read by the same loader.
"""
from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

TRAIN_PER_BATCH, TEST = 400, 500
HERE = Path(__file__).resolve().parent / "cifar-10-batches-py"


def _cut(src: Path, dst: Path, keep: int, label: str) -> None:
    with src.open("rb") as f:
        batch = pickle.load(f, encoding="latin1")  # trusted: the project's own shared data
    if len(batch["labels"]) < keep:
        sys.exit(f"{src}: has {len(batch['labels'])} images, the sample needs {keep}")
    out = {"batch_label": label, "labels": list(batch["labels"][:keep]), "data": batch["data"][:keep].copy()}
    with dst.open("wb") as f:
        pickle.dump(out, f, protocol=4)


def main(source: Path) -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "batches.meta", HERE / "batches.meta")
    for i in range(1, 6):
        _cut(source / f"data_batch_{i}", HERE / f"data_batch_{i}", TRAIN_PER_BATCH,
             f"training batch {i} of 5 (archc sample: first {TRAIN_PER_BATCH})")
    _cut(source / "test_batch", HERE / "test_batch", TEST, f"testing batch 1 of 1 (archc sample: first {TEST})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
