"""Atomic checkpoint writes, and loads that refuse damaged, foreign and hostile files."""
from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from dsl.errors import CheckpointError
from runtime import checkpoint, rng
from runtime_kit import REPO, TinyNet


def test_roundtrip_leaves_no_temporary_files(tmp_path):
    model = TinyNet()
    checkpoint.save(tmp_path / "last.pt", {"epoch": 3, "model": model.state_dict(), "rng": rng.capture()})
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["epoch"] == 3
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert os.listdir(tmp_path) == ["last.pt"]


def test_file_size_limit_keeps_the_previous_checkpoint(tmp_path):
    """A write that hits RLIMIT_FSIZE (as a full disk would) fails cleanly; the old file survives."""
    script = textwrap.dedent(f"""
        import resource, signal, sys, torch
        sys.path.insert(0, {str(REPO)!r})
        from runtime import checkpoint
        from dsl.errors import CheckpointError
        checkpoint.save({str(tmp_path / 'last.pt')!r}, {{"epoch": 1, "w": torch.ones(10)}})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        try:
            checkpoint.save({str(tmp_path / 'last.pt')!r}, {{"epoch": 2, "w": torch.ones(1_000_000)}})
        except CheckpointError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "last.pt") in out.stdout and "File too large" in out.stdout
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(10))
    assert os.listdir(tmp_path) == ["last.pt"]


def test_unwritable_folder_is_a_checkpoint_error(tmp_path):
    if os.geteuid() == 0:  # root ignores directory permissions; use a folder that does not exist instead
        target = tmp_path / "missing" / "last.pt"
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        target = tmp_path / "ro" / "last.pt"
    with pytest.raises(CheckpointError) as e:
        checkpoint.save(target, {"epoch": 1})
    assert str(target) in str(e.value)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickled_payload_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 1, "model": _Evil(str(marker))}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value) and "refusing" in str(e.value)
    assert not marker.exists()


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"model": TinyNet().state_dict()})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value) and "damaged" in str(e.value)


@pytest.mark.parametrize("make", [
    lambda p: torch.save(TinyNet().state_dict(), p),  # a bare state_dict from elsewhere
    lambda p: p.write_bytes(b"not a checkpoint at all"),
    lambda p: p.write_bytes(pickle.dumps({"format": "archc-checkpoint"}, protocol=2)),  # plain pickle, no version
])
def test_foreign_files(tmp_path, make):
    path = tmp_path / "foreign.pt"
    make(path)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "nope.pt")


def test_state_of_another_architecture(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"model": TinyNet().state_dict()})
    with pytest.raises(CheckpointError, match="does not fit"):
        checkpoint.load_model_state(torch.nn.Linear(3, 4), checkpoint.load(path), path)


def test_rng_states_survive_a_weights_only_roundtrip(tmp_path):
    rng.seed_everything(11)
    random.random(), np.random.rand(), torch.rand(1)
    checkpoint.save(tmp_path / "s.pt", {"rng": rng.capture()})
    expected = (random.random(), np.random.rand(), torch.rand(1))
    rng.seed_everything(99)
    rng.restore(checkpoint.load(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
