"""Training faults through the real ``archc`` command line: SIGKILL at random points, Ctrl-C, a write that
fails (file-size limit, full disk, folder turned read-only), and checkpoints that are damaged or foreign.

Every run here is a subprocess on one CPU thread, so an interrupted-and-resumed run can be compared bit
for bit with the uninterrupted reference run (started once per module, in the background). Those runs
take minutes on a loaded machine, so they are in the slow target (``make test-slow``); the default suite
keeps a fast form of each guarantee: SIGKILL mid-write (a bare writer process, killed after a counted
number of writes), write failures by errno and a folder turning read-only (test_runtime_checkpoint.py),
Ctrl-C and resume (test_runtime_train.py), bad checkpoints through eval and --resume (in process, and
once through a real process for the exit status).
"""
from __future__ import annotations

import os
import random
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from archc.runtime import atomic, checkpoint
from archc.runtime.cli import main
from archc.runtime.train import build_model
from runtime_kit import TINY_ARCH, WIDE_ARCH, archc, epochs_done, make_state, temporaries, write_slice

EPOCHS = 16  # of 8 steps (256 images, batch 32): ~0.2-0.4 s each, most of it writing last.pt and curves.png
KILLS = 5
SEED = 7


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """tiny.arch, wide.arch and a 256/100-image CIFAR slice."""
    root = tmp_path_factory.mktemp("faults")
    (root / "tiny.arch").write_text(TINY_ARCH)
    (root / "wide.arch").write_text(WIDE_ARCH)
    return SimpleNamespace(arch=root / "tiny.arch", wide=root / "wide.arch", root=root,
                           data=write_slice(root / "data", 256, 100))


def train_args(tiny, out: Path, arch: Path | None = None, epochs: int = EPOCHS) -> list:
    return ["train", arch or tiny.arch, "--data", tiny.data, "--out", out, "--epochs", epochs, "--batch-size", 32,
            "--device", "cpu", "--quiet", "--seed", SEED]


def resume_args(arch: Path, out: Path) -> list:
    return ["train", arch, "--out", out, "--resume"]


class _Reference:
    """The uninterrupted run, started at once and awaited only when a test compares with it."""

    def __init__(self, tiny):
        self.out = tiny.root / "reference"
        self.proc = archc(train_args(tiny, self.out), wait=False)

    def result(self) -> Path:
        _, err = self.proc.communicate(timeout=900)
        assert self.proc.returncode == 0, err
        return self.out


@pytest.fixture(scope="module")
def reference(tiny):
    ref = _Reference(tiny)
    yield ref
    if ref.proc.poll() is None:
        ref.proc.kill()
        ref.proc.communicate()


def assert_same_run(ref: Path, run: Path, note: str = "") -> None:
    """Final weights, optimizer state and per-epoch metrics identical to the last bit."""
    a, b = checkpoint.load(ref / "last.pt"), checkpoint.load(run / "last.pt")
    assert a["epoch"] == b["epoch"] == EPOCHS, note
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), f"{name} differs; {note}"
    for i, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"]), note
    assert [(r["loss"], r["train_acc"], r["val_acc"]) for r in a["history"]] == \
           [(r["loss"], r["train_acc"], r["val_acc"]) for r in b["history"]], note
    assert (run / "summary.json").exists() and temporaries(run) == [], note


def wait_for_epochs(proc: subprocess.Popen, run: Path, n: int, ticks: list[float] | None = None, limit: float = 900) -> None:
    """Poll until RUN/metrics.jsonl lists ``n`` epochs; ``ticks`` collects when each new epoch showed up."""
    deadline, seen = time.monotonic() + limit, epochs_done(run)
    while (done := epochs_done(run)) < n:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before epoch {n}: {proc.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, f"no epoch {n} within {limit} s"
        if ticks is not None and done > seen:
            ticks.append(time.monotonic())
        seen = done
        time.sleep(0.002)


def run_printed_resume(stderr: str) -> subprocess.CompletedProcess:
    """Run the ``continue with: archc train ... --resume`` command a message printed, as printed."""
    line = re.search(r"with: archc (train .* --resume)", stderr)
    assert line, stderr
    return archc(shlex.split(line[1]))


def _kill_and_resume(tiny, reference, out: Path, kills: int) -> None:
    seed = int(os.environ.get("ARCHC_KILL_SEED") or random.SystemRandom().randrange(2**32))
    rnd = random.Random(seed)
    tag = f"kill seed {seed} (replay its kill points with ARCHC_KILL_SEED={seed})"
    print(tag)
    # Each run is killed once 1 or 2 new epochs are on disk plus a random 0-1.5 epochs more (cut short when
    # one more lands): anywhere in training, evaluation, or the checkpoint and plot writes. At most 3 epochs
    # per run, so 5 kills leave at least one of the 16 epochs to the last resume.
    gaps: list[float] = []  # seconds between epochs, as seen so far
    for i in range(kills):
        proc = archc(train_args(tiny, out) if i == 0 else resume_args(tiny.arch, out), wait=False)
        target = (checkpoint.load(out / "last.pt")["epoch"] if i else 0) + rnd.choice((1, 2))
        ticks: list[float] = []
        wait_for_epochs(proc, out, target, ticks)
        gaps += [b - a for a, b in zip(ticks, ticks[1:])]
        period = sorted(gaps)[len(gaps) // 2] if gaps else 0.3
        delay = rnd.uniform(0, 1.5) * period
        start = time.monotonic()
        while time.monotonic() - start < delay and epochs_done(out) < target + 1:
            time.sleep(0.002)
        delay = time.monotonic() - start
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, f"{tag}: run {i + 1} ended before its kill: {err[-2000:]}"
        print(f"kill {i + 1}: {delay:.2f} s after epoch {target} was on disk; last.pt holds epoch "
              f"{checkpoint.load(out / 'last.pt')['epoch']}; left behind: {temporaries(out) or 'nothing'}")
    done = archc(resume_args(tiny.arch, out))
    assert done.returncode == 0, f"{tag}: {done.stderr}"
    assert_same_run(reference.result(), out, tag)


@pytest.mark.slow
def test_killed_five_times_at_random_points_resumes_to_bit_identical_weights(tiny, reference, tmp_path):
    """SIGKILL, resume, five times over (kill points drawn from a printed seed), then compare with one straight run."""
    _kill_and_resume(tiny, reference, tmp_path / "run", KILLS)


@pytest.mark.slow
def test_ctrl_c_keeps_last_pt_says_how_to_resume_and_the_resume_matches(tiny, reference, tmp_path):
    out = tmp_path / "run"
    proc = archc(train_args(tiny, out), wait=False)
    wait_for_epochs(proc, out, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130 and "Traceback" not in err, err
    said = re.search(rf"interrupted: {re.escape(str(out / 'last.pt'))} holds epoch (\d+) of {EPOCHS}\.", err)
    assert said and checkpoint.load(out / "last.pt")["epoch"] == int(said[1]) >= 3, err
    assert f"continue with: archc train {tiny.arch} --out {out} --resume" in err
    (out / ".last.pt.k9x2ab.tmp").write_bytes(b"\0" * 4096)  # what a write killed by SIGKILL leaves behind
    resumed = run_printed_resume(err)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(reference.result(), out)  # includes: the stale temporary file is gone


WRITER = """
import sys
from archc.runtime.atomic import atomic_write
path, size = sys.argv[1], int(sys.argv[2])
for i in range(1, 10**6):
    atomic_write(path, lambda f: f.write(bytes([i % 251]) * size))
    print(i, flush=True)
"""


def test_sigkill_mid_write_leaves_a_whole_file_and_a_temporary_the_next_start_removes(tmp_path):
    """The default suite's form of the five-kill test: a process doing nothing but atomic writes of 4 MB
    (a checkpoint's worth), SIGKILLed after a random number of them (counted, not timed), 8 times:
    the file is always one whole version, and what the kill left is only ``.x.pt.*.tmp``."""
    rnd, path, size = random.Random(), tmp_path / "x.pt", 4 << 20
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(size)], stdout=subprocess.PIPE, text=True)
        for _ in range(rnd.randrange(1, 6)):
            assert proc.stdout.readline(), "the writer stopped"
        proc.kill()
        proc.wait()
        content = path.read_bytes()
        assert len(content) == size and content == content[:1] * size  # one write, whole
        atomic.remove_temporaries(tmp_path, ("x.pt",))
        assert os.listdir(tmp_path) == ["x.pt"]


def _no_traceback_exit_2(done: subprocess.CompletedProcess | subprocess.Popen, err: str) -> None:
    assert done.returncode == 2, err
    assert "Traceback" not in err and err.count("checkpoint error:") == 1, err


@pytest.mark.slow
def test_file_size_limit_stops_the_run_and_keeps_last_pt(tiny, tmp_path):
    """RLIMIT_FSIZE between the sizes of last.pt at epoch 0 (~0.35 MB) and epoch 1 (~0.7 MB, momentum buffers)."""
    out, limit = tmp_path / "run", 500_000

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = archc(train_args(tiny, out, tiny.wide, epochs=3), preexec_fn=limit_file_size)
    _no_traceback_exit_2(done, done.stderr)
    assert (f"{out / 'last.pt'}: checkpoint error: could not write last.pt: file too large for the file-size limit; "
            f"the previous last.pt is kept unchanged; training stopped after epoch 1") in done.stderr
    assert "EFBIG" in done.stderr and "ulimit -f" in done.stderr and "continue from epoch 0" in done.stderr
    kept = checkpoint.load(out / "last.pt")
    assert kept["epoch"] == 0 and (out / "last.pt").stat().st_size < limit and temporaries(out) == []
    initial = build_model(tiny.wide, {}, SEED).state_dict()
    assert all(torch.equal(kept["model"][k], v) for k, v in initial.items())  # the epoch-0 weights, intact
    # Resuming after a failed write (with the printed command) is shown by the read-only test below.


_MOUNTS: list[bool] = []


def private_mounts() -> bool:
    """Whether this process may mount in a private namespace (root in most CI containers; not in all)."""
    if not _MOUNTS:
        probe = Path(os.environ.get("TMPDIR", "/tmp"))
        ok = shutil.which("unshare") is not None and shutil.which("nsenter") is not None and subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=4k archc-probe {shlex.quote(str(probe))}"],
            capture_output=True, timeout=30).returncode == 0
        _MOUNTS.append(ok)
    return _MOUNTS[0]


@pytest.mark.slow
@pytest.mark.skipif(not private_mounts(), reason="needs `unshare -m` and mount rights for a small tmpfs")
def test_full_disk_stops_the_run_keeps_last_pt(tiny, tmp_path):
    """A real ENOSPC: --out is an 800 kB tmpfs, room for last.pt of epoch 0 but not for it plus epoch 1's."""
    out, saved = tmp_path / "run", tmp_path / "saved"
    out.mkdir()
    saved.mkdir()
    script = ('out=$0 saved=$1; shift; mount -t tmpfs -o size=800k archc-full "$out" || exit 99; '
              '"$@"; rc=$?; cp -a "$out/." "$saved"; exit $rc')  # the tmpfs goes with the namespace: copy it out
    done = archc(train_args(tiny, out, tiny.wide, epochs=3), prefix=["unshare", "-m", "sh", "-c", script, out, saved])
    _no_traceback_exit_2(done, done.stderr)
    assert f"{out / 'last.pt'}: checkpoint error: could not write last.pt: no space left on the device" in done.stderr
    assert "ENOSPC" in done.stderr and "free space on that disk" in done.stderr and "continue from epoch 0" in done.stderr
    assert checkpoint.load(saved / "last.pt")["epoch"] == 0 and temporaries(saved) == []


@pytest.mark.slow
def test_folder_turning_read_only_mid_run_keeps_last_pt_and_loses_nothing(tiny, reference, tmp_path):
    """Stopped (SIGSTOP) after epoch 2, --out is made read-only, then continued: whatever write comes next fails.

    As root, directory permissions do not apply, so the folder is bind-mounted in a private mount
    namespace and remounted read-only (EROFS); otherwise it is chmod 555 (EACCES).
    """
    out = tmp_path / "run"
    out.mkdir()
    if os.geteuid() != 0:
        prefix = None

        def make_read_only(pid: int) -> bool:
            out.chmod(0o555)
            return True
    elif private_mounts():
        prefix = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$0" || exit 99; exec "$@"', out]

        def make_read_only(pid: int) -> bool:  # refused (EBUSY) while a file on it is open for writing
            return subprocess.run(["nsenter", "-t", str(pid), "-m", "mount", "-o", "remount,bind,ro", str(out)],
                                  capture_output=True, timeout=30).returncode == 0
    else:
        pytest.skip("as root a read-only folder needs `unshare -m` and mount rights")
    proc = archc(train_args(tiny, out), wait=False, prefix=prefix)
    try:
        wait_for_epochs(proc, out, 2)
        os.kill(proc.pid, signal.SIGSTOP)
        for _ in range(200):
            if make_read_only(proc.pid):
                break
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.005)
            os.kill(proc.pid, signal.SIGSTOP)
        else:
            pytest.fail("could not make the folder read-only")
        before = (out / "last.pt").read_bytes()
        at = checkpoint.load(out / "last.pt")["epoch"]
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=600)
    out.chmod(0o755)
    _no_traceback_exit_2(proc, err)
    assert re.search(r": checkpoint error: could not write (last\.pt|best\.pt|metrics\.jsonl|curves\.png): "
                     r"(read-only file system|permission denied)", err), err
    assert f"continue from epoch {at} (what last.pt holds)" in err
    assert (out / "last.pt").read_bytes() == before  # not a byte changed
    resumed = run_printed_resume(err)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(reference.result(), out)  # nothing lost, and what a failed write left is cleaned up


# --- damaged and foreign checkpoints, for `archc eval --checkpoint` and `archc train --resume` ------------

class _Code:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _torchvision_weights(path: Path) -> None:
    tv = pytest.importorskip("torchvision")
    torch.save(tv.models.squeezenet1_1().state_dict(), path)


BAD_FILES = {  # name: (make(path, good last.pt, last.pt of the width=16 run), what the message must say)
    "truncated": (lambda p, good, _: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
                  "checkpoint is damaged or not a PyTorch file", "cut off or corrupt"),
    "empty": (lambda p, good, _: p.write_bytes(b""), "checkpoint is damaged or not a PyTorch file", "empty file (0 bytes)"),
    "random bytes": (lambda p, good, _: p.write_bytes(random.Random(3).randbytes(4096)),
                     "checkpoint is damaged or not a PyTorch file", "not a PyTorch file"),
    "plain torch dict": (lambda p, good, _: torch.save({"a": 1}, p), "not an archc checkpoint", "keys ['a']"),
    "torchvision state_dict": (lambda p, good, _: _torchvision_weights(p), "not an archc checkpoint", "features.0.weight"),
    "pickled code": (lambda p, good, _: torch.save({"format": checkpoint.FORMAT, "version": 1, "model": _Code()}, p),
                     "refusing to load a checkpoint that contains code", "GLOBAL posix.system"),
    "tagged, no weights": (lambda p, good, _: torch.save({"format": checkpoint.FORMAT, "version": 1}, p),
                           "checkpoint field epoch is not what archc train writes", "found:    no such key"),
    "nested list for a tensor": (lambda p, good, _: _edited(good, p, lambda s: s["model"].update({"conv.weight": [[0.5] * 3] * 8})),
                                 "checkpoint field model['conv.weight'] is not what archc train writes",
                                 "found:    a list of 8 items"),
    "history entry without its loss": (lambda p, good, _: _edited(good, p, lambda s: s["history"][0].pop("loss")),
                                       "checkpoint field history[0].loss is not what archc train writes",
                                       "found:    no such key"),
    "best as a string": (lambda p, good, _: _edited(good, p, lambda s: s.update(best="epoch 1")),
                         "checkpoint field best is not what archc train writes", "found:    a str 'epoch 1'"),
    "another architecture": (lambda p, good, other: shutil.copy(other, p),
                             "checkpoint does not fit this architecture",
                             "shape mismatches (first: conv.weight: 16×3×3×3 in the checkpoint, 8×3×3×3 here)"),
}


def _edited(good: Path, path: Path, edit) -> None:
    """``good`` with ``edit`` applied to its contents, saved as ``path`` (torch.save: no schema check)."""
    state = torch.load(good, weights_only=True)
    edit(state)
    torch.save(state, path)


@pytest.fixture(scope="module")
def runs(tiny):
    """A finished 1-epoch run of tiny.arch, trained in-process ("w8", width 8, the default), and "w16" holding
    the last.pt a run with --set width=16 writes (its state built directly: no second training run)."""
    out = tiny.root / "w8"
    assert main(["train", str(tiny.arch), "--data", str(tiny.data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "64", "--device", "cpu", "--quiet"]) == 0
    other = tiny.root / "w16"
    other.mkdir()
    model = build_model(tiny.arch, {"width": 16})
    checkpoint.save(other / "last.pt", make_state(other, 1, model, arch=tiny.arch, params={"width": 16}))
    shutil.copy(other / "last.pt", other / "best.pt")
    return {"w8": out, "w16": other}


def _make_bad(kind: str, path: Path, runs) -> tuple[str, str]:
    make, what, detail = BAD_FILES[kind]
    make(path, runs["w8"] / "last.pt", runs["w16"] / "last.pt")
    return what, detail


def _refused(code: int, err: str, path: Path, what: str, detail: str) -> None:
    assert code == 2, err
    assert err.startswith(f"{path}: checkpoint error: {what}"), err
    assert detail in err and "hint:" in err and "Traceback" not in err, err


@pytest.mark.parametrize("kind", BAD_FILES)
def test_eval_refuses_a_bad_checkpoint_naming_it(kind, tiny, runs, tmp_path, capsys):
    path = tmp_path / "given.pt"
    what, detail = _make_bad(kind, path, runs)
    if kind == "another architecture":  # eval builds the net with the run's own --set values: use another file
        path, what, detail = runs["w8"] / "last.pt", "checkpoint does not fit this architecture", "1 shape mismatch (first:"
        code = main(["eval", str(tiny.wide), "--checkpoint", str(path), "--data", str(tiny.data), "--device", "cpu"])
    else:
        code = main(["eval", str(tiny.arch), "--checkpoint", str(path), "--data", str(tiny.data), "--device", "cpu"])
    out, err = capsys.readouterr()
    _refused(code, err, path, what, detail)
    assert out == ""


@pytest.mark.parametrize("kind", BAD_FILES)
def test_resume_refuses_a_bad_last_pt_naming_it(kind, tiny, runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["w8"], run)
    what, detail = _make_bad(kind, run / "last.pt", runs)
    code = main(["train", str(tiny.arch), "--out", str(run), "--resume"])
    err = capsys.readouterr().err
    _refused(code, err, run / "last.pt", what, detail)
    if kind == "another architecture":
        assert f"trained from {tiny.arch} --set width=16" in err and "resume with the .arch file and --set values" in err


def test_eval_of_a_checkpoint_whose_run_set_parameters_this_file_lacks(tiny, runs, capsys):
    """The w16 run's --set width=16 means nothing to nowidth.arch: a checkpoint error, not a --set usage error."""
    other = tiny.root / "nowidth.arch"
    other.write_text(WIDE_ARCH.replace("width = 8, ", "").replace("conv(width,", "conv(8,"))
    path = runs["w16"] / "best.pt"
    code = main(["eval", str(other), "--checkpoint", str(path), "--data", str(tiny.data), "--device", "cpu"])
    err = capsys.readouterr().err
    _refused(code, err, path, "checkpoint does not fit nowidth.arch", f"trained from {tiny.arch} --set width=16")


def test_bad_checkpoint_through_a_real_process(tiny, runs, tmp_path):
    """The same refusal from `python -m archc`: exit status 2 and the message, nothing else."""
    path = tmp_path / "cut.pt"
    what, detail = _make_bad("truncated", path, runs)
    done = archc(["eval", tiny.arch, "--checkpoint", path, "--data", tiny.data, "--device", "cpu"])
    _refused(done.returncode, done.stderr, path, what, detail)
    assert done.stdout == ""
