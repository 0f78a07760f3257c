"""``archc train`` and ``archc eval`` through the real CLI and compiler, on a small CIFAR-10 slice."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from archc.runtime.cli import main
from runtime_kit import REPO, write_slice

ARCH = str(REPO / "archs" / "resnet20.arch")


def test_train_then_eval(tmp_path, capsys):
    data = write_slice(tmp_path / "data", 128, 50)
    out = tmp_path / "run"
    assert main(["train", ARCH, "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "64",
                 "--device", "cpu", "--quiet", "--set", "depth=8"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arch"] == "resnet20" and summary["macs"] > 0 and summary["params"] > 50_000
    capsys.readouterr()
    assert main(["eval", ARCH, "--checkpoint", str(out / "best.pt"), "--data", str(data), "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(summary["test_acc"])


def test_resume_with_another_lr_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"out": str(out), "lr": 0.2}))
    assert main(["train", ARCH, "--out", str(out), "--resume", "--lr", "0.5"]) == 2
    assert "cannot change 'lr'" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    data = write_slice(tmp_path / "data", 256, 50)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "archc.runtime.train",
           ARCH, "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "64", "--device", "cpu"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "summary.json").read_text())["nproc"] == 2
