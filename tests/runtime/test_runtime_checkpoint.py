"""Atomic checkpoint writes, and loads that refuse damaged, foreign and hostile files."""
from __future__ import annotations

import errno
import os
import pickle
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from archc.dsl.errors import CheckpointError
from archc.runtime import atomic, checkpoint, rng
from runtime_kit import REPO, TinyNet, make_state


def test_roundtrip_leaves_no_temporary_files(tmp_path):
    model = TinyNet()
    checkpoint.save(tmp_path / "last.pt", make_state(tmp_path, 3, model))
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["epoch"] == 3 and [r["epoch"] for r in state["history"]] == [1, 2, 3]
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert os.listdir(tmp_path) == ["last.pt"]


def test_file_size_limit_keeps_the_previous_checkpoint(tmp_path):
    """A write that hits RLIMIT_FSIZE (as a full disk would) fails cleanly; the old file survives."""
    script = textwrap.dedent(f"""
        import resource, signal, sys, torch
        sys.path.insert(0, {str(REPO / 'tests' / 'runtime')!r})
        from archc.runtime import checkpoint
        from archc.dsl.errors import CheckpointError
        from runtime_kit import TinyNet, make_state
        checkpoint.save({str(tmp_path / 'last.pt')!r}, make_state({str(tmp_path)!r}, 1))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        big = TinyNet()
        big.head = torch.nn.Linear(16, 100_000)
        try:
            checkpoint.save({str(tmp_path / 'last.pt')!r}, make_state({str(tmp_path)!r}, 2, big))
        except CheckpointError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "last.pt") in out.stdout and "file too large" in out.stdout and "EFBIG" in out.stdout
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["epoch"] == 1 and state["model"]["head.weight"].shape == (10, 16)
    assert os.listdir(tmp_path) == ["last.pt"]


def test_unwritable_folder_is_a_checkpoint_error(tmp_path):
    if os.geteuid() == 0:  # root ignores directory permissions; use a folder that does not exist instead
        target = tmp_path / "missing" / "last.pt"
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        target = tmp_path / "ro" / "last.pt"
    with pytest.raises(CheckpointError) as e:
        checkpoint.save(target, make_state(tmp_path))
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
    checkpoint.save(path, make_state(tmp_path))
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
    checkpoint.save(path, make_state(tmp_path))
    with pytest.raises(CheckpointError, match="does not fit"):
        checkpoint.load_model_state(torch.nn.Linear(3, 4), checkpoint.load(path), path)


def test_rng_states_survive_a_weights_only_roundtrip(tmp_path):
    state = make_state(tmp_path)
    rng.seed_everything(11)
    random.random(), np.random.rand(), torch.rand(1)
    checkpoint.save(tmp_path / "s.pt", state | {"rng": rng.capture()})
    expected = (random.random(), np.random.rand(), torch.rand(1))
    rng.seed_everything(99)
    rng.restore(checkpoint.load(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


@pytest.mark.parametrize("code, why, fix", [
    (errno.ENOSPC, "no space left on the device", "free space"),
    (errno.EDQUOT, "disk quota exceeded", "quota"),
    (errno.EFBIG, "file too large", "ulimit -f"),
    (errno.EACCES, "permission denied", "chmod"),
    (errno.EROFS, "read-only file system", "remount"),
    (errno.EIO, "Input/output error", "check the folder"),
])
def test_failed_write_says_why_and_how_to_fix_and_keeps_the_old_file(tmp_path, monkeypatch, code, why, fix):
    """The OSError surfaces at fsync here (as ENOSPC does on some file systems); the real ones: test_runtime_faults."""
    path = tmp_path / "last.pt"
    checkpoint.save(path, make_state(tmp_path, 1))
    before = path.read_bytes()

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(CheckpointError) as e:
        checkpoint.save(path, make_state(tmp_path, 2))
    message = str(e.value)
    assert message.startswith(f"{path}: checkpoint error: could not write last.pt: {why}")
    assert "; the previous last.pt is kept unchanged" in message.splitlines()[0]
    assert errno.errorcode[code] in message and fix in e.value.hint
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.pt"]


def test_folder_turning_read_only_during_a_write_is_still_a_checkpoint_error(tmp_path, monkeypatch):
    """Neither the rename nor removing the temporary file is possible then; the error must stay the write's."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    state = make_state(tmp_path)
    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(CheckpointError, match="read-only file system"):
        checkpoint.save(tmp_path / "last.pt", state)


def test_remove_temporaries_takes_only_what_atomic_write_left_for_the_named_files(tmp_path):
    names = [".last.pt.k2j3.tmp", ".curves.png.x.tmp", ".other.tmp", "last.pt", ".last.pt", "notes.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    atomic.remove_temporaries(tmp_path, ("last.pt", "curves.png"))
    assert sorted(os.listdir(tmp_path)) == sorted([".other.tmp", "last.pt", ".last.pt", "notes.tmp"])


def test_random_bytes_are_damaged_files_not_code(tmp_path):
    """Torch reads most random bytes as a broken pickle; that is a damaged file, not a hostile one."""
    path = tmp_path / "noise.pt"
    for seed in range(100):
        r = random.Random(seed)
        path.write_bytes(r.randbytes(r.randrange(1, 4096)))
        with pytest.raises(CheckpointError) as e:
            checkpoint.load(path)
        assert str(e.value).startswith(f"{path}: checkpoint error: "), seed
        assert "refusing" not in str(e.value) or "GLOBAL" in str(e.value), (seed, str(e.value))


def test_load_model_state_names_the_first_difference(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(path, make_state(tmp_path, arch="tiny.arch", params={"width": 4}))
    wider = TinyNet()
    wider.head = torch.nn.Linear(16, 100)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_model_state(wider, checkpoint.load(path), path)
    assert "2 shape mismatches (first: head.weight: 10×16 in the checkpoint, 100×16 here)" in str(e.value)
    assert "trained from tiny.arch --set width=4" in str(e.value)
