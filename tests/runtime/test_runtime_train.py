"""Training runs end to end: files, evaluation, divergence, interruption, two processes.

Kills, Ctrl-C from outside, failed writes and bad checkpoints: test_runtime_faults.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archc.dsl.errors import DivergedError, UsageError
from archc.runtime import checkpoint
from archc.runtime.augment import MEAN, STD
from archc.runtime.config import TrainConfig
from archc.runtime.data import load_cifar10
from archc.runtime.evaluate import evaluate
from archc.runtime.rng import seed_everything
from archc.runtime.train import train
from runtime_kit import TinyNet

RUN_FILES = {"config.json", "run.json", "metrics.jsonl", "last.pt", "best.pt", "curves.png", "summary.json"}


def _run_files(out) -> set[str]:
    """The run folder's files, TensorBoard's event files (one per process that trained) as 'events'."""
    return {"events" if p.name.startswith("events.out.tfevents.") else p.name for p in out.iterdir()}


def _cfg(data, out, **kw) -> TrainConfig:
    return TrainConfig(**{"data": str(data), "out": out, "epochs": 2, "batch_size": 64, "quiet": True, "device": "cpu", **kw})


def _fresh_net(**kw) -> TinyNet:
    seed_everything(0)
    return TinyNet(**kw)


def test_run_writes_its_files_and_evaluate_agrees_with_a_plain_forward(tiny_data, tmp_path):
    out = tmp_path / "run"
    summary = train(_cfg(tiny_data, out, epochs=3), _fresh_net())
    assert _run_files(out) == RUN_FILES | {"events"}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"epoch", "loss", "train_acc", "val_acc", "val_loss", "lr", "images_per_s", "seconds"}
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["arch"] is None and summary["params"] == sum(p.numel() for p in TinyNet().parameters())
    assert summary["images"] == {"train": 230, "val": 26, "test": 100}  # 10% of 256 held out, rounded
    best = max(rows, key=lambda r: r["val_acc"])  # the first of equals, as the run keeps the first
    assert (summary["best_val_acc"], summary["best_epoch"]) == (best["val_acc"], best["epoch"])
    assert checkpoint.load(out / "best.pt")["epoch"] == best["epoch"]

    result = evaluate(TinyNet(), out / "best.pt", tiny_data, device="cpu", plot=tmp_path / "cm.png")
    truth, preds = _plain_predictions(out / "best.pt", tiny_data)
    assert result["accuracy"] == pytest.approx((preds == truth).float().mean().item()) == pytest.approx(summary["test_acc"])
    confusion = [[int(((truth == t) & (preds == p)).sum()) for p in range(10)] for t in range(10)]
    assert result["confusion"] == confusion and result["n"] == 100 and result["epoch"] == best["epoch"]
    assert result["per_class"]["cat"] == (confusion[3][3] / sum(confusion[3]) if sum(confusion[3]) else None)
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def _plain_predictions(path, data_dir) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and predictions computed the textbook way: fresh net, NCHW float input, no runtime helpers."""
    net = TinyNet()
    net.load_state_dict(torch.load(path, weights_only=True)["model"])
    net.eval()
    d = load_cifar10(data_dir, train=False)
    x = (d.test_x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return d.test_y, net(x).argmax(1)


class _Sabotaged(TinyNet):
    """Raises or returns NaN from the ``at``-th training forward pass on."""

    def __init__(self, at: int, fault: str):
        super().__init__()
        self.calls, self.at, self.fault = 0, at, fault

    def forward(self, x):
        self.calls += self.training
        if self.training and self.calls >= self.at:
            if self.fault == "interrupt":
                raise KeyboardInterrupt
            return super().forward(x) * float("nan")
        return super().forward(x)


def test_nan_loss_stops_with_exit_code_3_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "run"
    seed_everything(0)
    with pytest.raises(DivergedError) as e:  # 3 steps per epoch (230 images): call 5 is epoch 2, step 2
        train(_cfg(tiny_data, out, epochs=3), _Sabotaged(at=5, fault="nan"))
    assert e.value.exit_code == 3
    assert "epoch 2, step 2 of 3" in str(e.value) and str(out / "last.pt") in str(e.value)
    state = checkpoint.load(out / "last.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_interrupt_says_how_to_resume_and_resume_finishes(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_data, out, epochs=3), _Sabotaged(at=6, fault="interrupt"))
    assert "--resume" in capsys.readouterr().err
    assert checkpoint.load(out / "last.pt")["epoch"] == 1
    summary = train(_cfg(tiny_data, out, epochs=3, resume=True), TinyNet())
    assert summary["epochs"] == 3 and len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_run_folder_whose_old_files_cannot_be_removed_is_a_usage_error(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"from an earlier run")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)  # what a read-only folder does (root ignores chmod)
    with pytest.raises(UsageError) as e:
        train(_cfg(tiny_data, out, force=True), _fresh_net())
    assert f"--out {out}" in str(e.value) and f"{out / 'best.pt'}: Permission denied" in str(e.value)


def test_two_gloo_processes_match_one_process(tiny_data, tmp_path):
    """Same global batch, no batch norm or dropout: only float summation order may differ."""
    tolerance = 1e-3  # on the final epoch's mean loss; a wrong shard or doubled gradient is off by > 1e-2
    one = train(_cfg(tiny_data, tmp_path / "one"), _fresh_net(bn=False, dropout=0))
    # not quiet: rank 0 prints progress lines (stdout is no terminal here) while rank 1 prints nothing, which
    # must not change which collectives each rank makes
    two = train(_cfg(tiny_data, tmp_path / "two", nproc=2, quiet=False), _fresh_net(bn=False, dropout=0))
    assert two["nproc"] == 2 and _run_files(tmp_path / "two") == RUN_FILES | {"events"}
    assert abs(_last_loss(tmp_path / "one") - _last_loss(tmp_path / "two")) < tolerance
    assert one["test_acc"] == pytest.approx(two["test_acc"], abs=0.02)


def _last_loss(run) -> float:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["loss"]


@pytest.mark.slow
def test_divergence_in_worker_processes_reaches_the_caller(tiny_data, tmp_path):
    """The workers' DivergedError comes back intact (type, message, exit code), not as a generic failure."""
    seed_everything(0)
    with pytest.raises(DivergedError) as e:  # each worker's copy counts its own calls: step 3 of epoch 1
        train(_cfg(tiny_data, tmp_path / "run", nproc=2), _Sabotaged(at=3, fault="nan"))
    assert e.value.exit_code == 3 and "epoch 1, step 3 of 3" in str(e.value)
    assert checkpoint.load(tmp_path / "run" / "last.pt")["epoch"] == 0
