"""`archc train` against a plain hand-written loop: same model, data and recipe, one run (issue 5).

Trains archs/resnet_uva.arch with `archc train` and the hand-written twin of the same network
(tests/reference/uva_models.py) with bench/handwritten_loop.py, each in a fresh process, on the
real CIFAR-10 subset (5,170 train / 500 test images): 15 epochs, batch 128, SGD Nesterov, one-cycle
peak lr 0.2, label smoothing 0.1, reflect-pad-4 crop + flip, seed 0, CPU. Prints both test
accuracies and the epoch-time ratio.

Targets: archc test accuracy >= 70%; epoch time <= 1.05x the hand-written loop. The ratio is taken
on the training phase of each epoch (archc's `images_per_s`; the hand-written loop times only its
training steps) per image, because archc drops the last partial batch (40 steps of 128) where the
hand-written loop keeps it (41 steps). archc's whole epoch, with its per-epoch test pass and
checkpoint writes, is printed beside it.

Run: .venv/bin/python bench/train_cpu.py [--data DIR] [--epochs 15]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT.parent / "shared/data/cifar10-subset"


def handwritten(data: Path, epochs: int) -> dict:
    code = ("import json, sys, torch; sys.path.insert(0, '.'); "
            "from bench.handwritten_loop import train_handwritten; from tests.reference.uva_models import resnet; "
            f"torch.manual_seed(0); r = train_handwritten(resnet(), {str(data)!r}, epochs={epochs}); "
            "print(json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"test_acc": r["test_acc"], "images_per_s": r["images_per_s"],
            "epoch_s": sum(r["epoch_seconds"]) / epochs}


def archc(data: Path, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "archc", "train", "archs/resnet_uva.arch", "--data", str(data),
                        "--out", str(run), "--epochs", str(epochs), "--batch-size", "128", "--lr", "0.2",
                        "--optimizer", "sgd", "--schedule", "onecycle", "--label-smoothing", "0.1",
                        "--augment", "standard", "--seed", "0", "--device", "cpu", "--quiet",
                        "--val-split", "0"],  # train on all 5,170 images, as the hand-written loop does
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        summary = json.loads((run / "summary.json").read_text())
    return {"test_acc": summary["test_acc"], "images_per_s": summary["images_per_s"],  # of best.pt: the last epoch
            "epoch_s": sum(r["seconds"] for r in history) / len(history)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SUBSET)
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    if not (args.data / "cifar-10-batches-py").is_dir() and not (args.data / "test_batch").is_file():
        sys.exit(f"error: no CIFAR-10 batches under {args.data}; pass --data DIR (the subset lives in ../shared)")
    import torch
    print(f"resnet_uva, {args.epochs} epochs, batch 128, {args.data}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU")
    hand = handwritten(args.data, args.epochs)
    ours = archc(args.data, args.epochs)
    ratio = hand["images_per_s"] / ours["images_per_s"]  # time per image, archc / hand-written
    print("| loop | test accuracy | train images/s | seconds/epoch |")
    print("|---|---|---|---|")
    print(f"| hand-written | {100 * hand['test_acc']:.1f}% | {hand['images_per_s']:.0f} | {hand['epoch_s']:.2f} (train only) |")
    print(f"| archc train | {100 * ours['test_acc']:.1f}% | {ours['images_per_s']:.0f} | "
          f"{ours['epoch_s']:.2f} (with test pass + checkpoints) |")
    print(f"archc accuracy {100 * ours['test_acc']:.1f}% (target ≥ 70%: {'met' if ours['test_acc'] >= 0.70 else 'MISSED'})")
    print(f"epoch-time ratio per image {ratio:.3f}× (target ≤ 1.05×: {'met' if ratio <= 1.05 else 'MISSED'}); "
          f"whole archc epoch / hand-written epoch {ours['epoch_s'] / hand['epoch_s']:.3f}×")


if __name__ == "__main__":
    main()
