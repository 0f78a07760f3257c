"""Issue 14's IO classes against their defences, called directly: many generated cases per class, with
what a command-line run cannot measure (peak memory, whether torch.load was reached, the exact key path).

Peak memory is read from /proc/self/status after resetting it (``/proc/self/clear_refs``); where that is
not possible the memory checks skip themselves. Each bound below has at least 10x headroom.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
import signal
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

import payloads as pl
from archc.dsl.errors import ArchError, CheckpointError, DataError
from archc.runtime import atomic, checkpoint, data, torchfile
from kit import SAMPLE, good_checkpoint

MB = 1 << 20


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def _release_freed_memory() -> None:
    """Hand memory freed by earlier tests back to the OS: left resident, an allocation would reuse it
    without raising the RSS, and a real inflation would look free."""
    import ctypes
    import gc
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@pytest.fixture
def peak():
    """``peak(fn)``: bytes the process's resident memory rose to above where it was, while ``fn`` ran."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("peak memory cannot be reset here (/proc/self/clear_refs)")

    def measure(fn) -> int:
        _release_freed_memory()
        Path("/proc/self/clear_refs").write_text("5")
        before = _status("VmRSS:")
        fn()
        return _status("VmHWM:") - before
    return measure


@pytest.fixture
def no_hang():
    """Fail, instead of blocking forever, when a call takes over 60 s (a FIFO opened for reading)."""
    def alarm(signum, frame):
        raise AssertionError("blocked for 60 s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _refused(fn, cls=ArchError) -> str:
    with pytest.raises(cls) as err:
        fn()
    return str(err.value)


# ---- 2. data batches -----------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    """A batches folder with the sample's first and test batches."""
    out = tmp_path / "cifar-10-batches-py"
    out.mkdir()
    for name in ("data_batch_1", "test_batch"):
        (out / name).write_bytes((SAMPLE / name).read_bytes())
    return out


def _hostile_batches() -> dict[str, bytes]:
    out = {f"{n:,} images declared ({how})": pl.batch_bytes(pl.DeclaredArray((n, 3072), b"", how), [0] * 3, 5)
           for n in (1_000, 1_000_000, 2_000_000, 3_000_000) for how in ("state", "placeholder", "frombuffer")}
    out["labels declared as 3,000,000 int64"] = pl.batch_bytes(pl.images(1), pl.DeclaredArray((3_000_000,), b""), 5)
    out |= {f"{op} declaring {n:,} bytes{' in a batch' if inside else ''}": pl.giant_length(op, n, inside)
            for op in pl.COUNTED for n in (2**31 - 1, 2**40, 2**62) for inside in (False, True)}
    out |= {f"memo slot {n:,} ({op})": pl.memo_slot(n, op) for n in (2**20, 2**27, 2**31) for op in ("LONG_BINPUT", "PUT")}
    out |= {f"{n:,} opcodes": pl.many_opcodes(n) for n in (100_000, 1_000_000)}
    out |= {f"a list nested {d:,} deep": pl.nested_list(d) for d in (3_000, 100_000)}
    out |= {name: pickle.dumps(batch, protocol=2) for name, batch in pl.self_containing().items()}
    out |= {f"labels {name}": pl.batch_bytes(pl.images(2), labels)
            for name, labels in (("as a dict", {0: 1}), ("of floats", [0.5, 1.0]), ("out of range", [0, 10]),
                                 ("negative", [-1, 0]), ("a 2**100 int", [2**100, 0]), ("as bools", [True, False]),
                                 ("as a string", "01"), ("too few", [0]), ("an int array 2-D", np.zeros((2, 1), int)))}
    out |= {f"data {name}": pl.batch_bytes(value, [0]) for name, value in
            (("float32", np.zeros((1, 3072), np.float32)), ("1-D", np.zeros(3072, np.uint8)),
             ("3,071 wide", np.zeros((1, 3071), np.uint8)), ("a list", [0] * 3072), ("0 images", np.zeros((0, 3072), np.uint8)))}
    out |= {f"protocol {p}, {name}": pl.batch_bytes(value, [0], p) for p in range(6) for name, value in
            (("object array", np.array([None] * 3072, dtype=object).reshape(1, 3072)),
             ("structured dtype", np.zeros((1, 3072), dtype=[("a", "u1")])))}
    return out


@pytest.mark.parametrize("name", _hostile_batches())
def test_hostile_batch_is_a_data_error_naming_it_before_any_allocation(name, folder, peak, no_hang):
    """The 163-byte batch declaring a million images took 4 GB and trained on blank images; the memo slot
    2**27 took 2 GB from 9 bytes. Now each is refused, naming the file, within 64 MB of peak memory."""
    path = folder / "test_batch"
    path.write_bytes(_hostile_batches()[name])
    messages = []
    grew = peak(lambda: messages.append(_refused(lambda: data.read_batch(path), DataError)))
    assert messages[0].startswith(f"{path}: data error: ") and len(messages[0]) < 2_000, messages[0]
    assert grew < 64 * MB, f"{name}: peak memory rose by {grew / MB:.0f} MB"


@pytest.mark.parametrize("proto", range(6))
def test_real_batches_still_load_in_every_protocol(folder, proto):
    """The defences refuse nothing a pickler writes: every protocol, labels as a list, an int array, numpy ints."""
    images = pl.images(5)
    for labels in ([1, 2, 3, 4, 5], np.arange(1, 6), [np.int64(i) for i in range(1, 6)]):
        (folder / "test_batch").write_bytes(pl.batch_bytes(images, labels, proto, filenames=[b"a.png"] * 5))
        x, y = data.read_batch(folder / "test_batch")
        assert np.array_equal(x.reshape(5, 3072), images) and y.tolist() == [1, 2, 3, 4, 5] and y.dtype == np.int64


@pytest.mark.parametrize("call", pl.calls(""))
@pytest.mark.parametrize("proto", range(6))
def test_code_in_a_batch_never_runs(folder, tmp_path, call, proto):
    marker = tmp_path / "PWNED"
    for batch in ({"data": pl.calls(str(marker))[call], "labels": [0]},
                  {"data": pl.images(1), "labels": pl.calls(str(marker))[call]}):
        (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=proto))
        assert "refusing" in _refused(lambda: data.read_batch(folder / "data_batch_1"), DataError)
    for raw in pl.opcode_calls(str(marker)).values():
        (folder / "data_batch_1").write_bytes(raw)
        _refused(lambda: data.read_batch(folder / "data_batch_1"), DataError)
    assert not marker.exists()


SPECIAL = {"a FIFO": os.mkfifo, "a folder": os.mkdir, "/dev/zero": lambda p: os.symlink("/dev/zero", p),
           "/dev/urandom": lambda p: os.symlink("/dev/urandom", p), "a socket": lambda p: socket.socket(socket.AF_UNIX).bind(str(p))}


@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("name", ["data_batch_1", "test_batch", "../test_batch"])
def test_special_files_as_batches_are_refused_without_blocking(tmp_path, folder, kind, name, no_hang):
    root = folder
    if name.startswith(".."):  # the batches straight in --data, no cifar-10-batches-py folder
        for batch in folder.iterdir():
            batch.rename(tmp_path / batch.name)
        folder.rmdir()
        root, name = tmp_path, name[3:]
    (root / name).unlink(missing_ok=True)
    SPECIAL[kind](root / name)
    message = _refused(lambda: data.load_cifar10(tmp_path), DataError)
    assert message.startswith(f"{root / name}: data error: CIFAR-10 batch file is "), message


@pytest.mark.parametrize("kind", ["a file", "a FIFO", "/dev/null"])
def test_data_flag_naming_a_file_is_refused(tmp_path, kind, no_hang):
    path = tmp_path / "d"
    {"a file": lambda: path.write_bytes(b"x"), "a FIFO": lambda: os.mkfifo(path),
     "/dev/null": lambda: path.symlink_to("/dev/null")}[kind]()
    assert f"--data {path}: data error: --data names a file, not a folder" in _refused(lambda: data.load_cifar10(path))


def test_an_oversized_batch_is_refused_by_its_size(folder, monkeypatch):
    monkeypatch.setattr(data, "MAX_BATCH_BYTES", 1 << 20)
    message = _refused(lambda: data.read_batch(folder / "test_batch"), DataError)
    assert "is 1,537,251 bytes" in message and "at most 1,048,576 bytes" in message and "data_batch_N" in message


# ---- 3. checkpoints: sizes and special files -----------------------------------------------------------

@pytest.mark.parametrize("declared", [5 * 1024, 10**6, 2**31, 2**32 - 2])
@pytest.mark.parametrize("entry", ["data/0", "data.pkl", "byteorder"])
def test_zip_bomb_is_refused_before_torch_reads_it(tmp_path, monkeypatch, declared, entry):
    path = tmp_path / "bomb.pt"
    pl.zip_bomb(path, declared, entry)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached"))
    message = _refused(lambda: checkpoint.load(path), CheckpointError)
    assert "would unpack to far more than it holds" in message and "declaring" in message


def test_a_real_zip_bomb_inflates_without_the_check_and_not_with_it(tmp_path, peak, monkeypatch):
    """128 MiB of deflated zeros in ~130 kB: the control run (check off) shows torch inflating it whole."""
    path = tmp_path / "bomb.pt"
    pl.zip_bomb(path, 128 * MB, real=True)
    assert path.stat().st_size < MB
    assert peak(lambda: _refused(lambda: checkpoint.load(path), CheckpointError)) < 32 * MB
    monkeypatch.setattr(torchfile, "MAX_EXPANSION", 10**6)
    assert peak(lambda: _refused(lambda: checkpoint.load(path), CheckpointError)) > 100 * MB


def test_a_recompressed_checkpoint_still_loads(tmp_path):
    """The bound is on the ratio, not on compression: a real checkpoint re-zipped with deflate loads."""
    import zipfile
    good, path = good_checkpoint(), tmp_path / "deflated.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info.filename))
    assert checkpoint.load(path)["epoch"] == checkpoint.load(good)["epoch"]


@pytest.mark.parametrize("kind", SPECIAL)
def test_special_files_as_checkpoints_are_refused_without_blocking(tmp_path, kind, no_hang):
    path = tmp_path / "last.pt"
    SPECIAL[kind](path)
    assert _refused(lambda: checkpoint.load(path), CheckpointError).startswith(f"{path}: checkpoint error: checkpoint ")


# ---- 4. checkpoint schema: every key of a real checkpoint, replaced ---------------------------------------

def _paths(value, path=()):
    """Every (key path, value) under a loaded checkpoint, not descending into tensors."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, child in items:
        yield (*path, key), child
        yield from _paths(child, (*path, key))


def _spelt(path: tuple) -> str:
    """``history[0].loss``, ``model['conv.weight']``: how messages spell a key path (README section 7)."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else f".{key}" if key.isidentifier() else f"[{key!r}]"
    return out.lstrip(".")


def _deep(n: int) -> list:
    value: list = [0.5]
    for _ in range(n):
        value = [value]
    return value


def _loop() -> list:
    value: list = [0.5]
    value.append(value)
    return value


NEVER_VALID = {"a list nested 150 deep": lambda: _deep(150), "a list containing itself": _loop,
               "a complex number": lambda: 1 + 2j}
# Dicts of a checkpoint whose keys archc train always writes (config's keys have defaults; rng.cuda is optional).
RECORDS = [(), ("history", 0), ("best",), ("rng",), ("rng", "python"), ("rng", "numpy"), ("optimizer",)]


def _state() -> dict:
    return torch.load(good_checkpoint(), weights_only=True)


def _at(state: dict, path: tuple):
    for key in path:
        state = state[key]
    return state


def _message(tmp_path: Path, state: dict) -> str:
    torch.save(state, tmp_path / "c.pt")
    message = _refused(lambda: checkpoint.load(tmp_path / "c.pt"), CheckpointError)
    assert len(message) < 1_500 and "Traceback" not in message, message
    return message


def test_any_key_holding_what_no_checkpoint_holds_is_named(tmp_path):
    """Every key path of a real checkpoint (about 100), each replaced by each of NEVER_VALID: refused,
    naming that path (or the record holding it)."""
    wrong = []
    for path, _ in _paths(_state()):
        for what, make in NEVER_VALID.items():
            state = _state()
            _at(state, path[:-1])[path[-1]] = make()
            message = _message(tmp_path, state)
            if path in (("format",), ("version",)):
                ok = "not an archc checkpoint" in message or "unsupported checkpoint version" in message
            else:
                located = message.split(": checkpoint error: checkpoint field ")[1].split(" is not what")[0]
                ok = _spelt(path).startswith(located) or located.startswith(_spelt(path))
            if not ok:
                wrong.append((_spelt(path), what, message.splitlines()[0]))
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: _spelt(r) or "top level")
def test_a_missing_or_unknown_key_of_a_record_is_named(tmp_path, record):
    for key in [k for k in _at(_state(), record) if record or k not in ("format", "version")]:
        state = _state()
        _at(state, record).pop(key)
        message = _message(tmp_path, state)
        assert f"field {_spelt((*record, key))} is not" in message and "no such key" in message, message
    state = _state()
    _at(state, record)["zz\x1b[2J"] = 0  # an unknown key, with a terminal escape in its name
    message = _message(tmp_path, state)
    assert "an unknown key" in message and "\x1b" not in message and r"['zz\x1b[2J']" in message, message


def test_a_huge_list_prints_one_line(tmp_path):
    """A 3,000,000-element list printed 25.9 MB of stderr (in params, through the --set message); the 3M
    cases themselves take torch's unpickler seconds and run in the slow target (cases_io.HEAVY)."""
    state = _state()
    state["model"]["conv.weight"] = [0] * 300_000
    message = _message(tmp_path, state)
    assert "found:    a list of 300,000 items" in message and len(message) < 1_000


# ---- 5. output paths -------------------------------------------------------------------------------------

def _socket(p: Path) -> None:
    socket.socket(socket.AF_UNIX).bind(str(p))


TARGETS = {  # name: (make the target under tmp (or name a system path), what the message says)
    "/dev/full": (lambda tmp: Path("/dev/full"), "it is a character device"),
    "/dev/null": (lambda tmp: Path("/dev/null"), "it is a character device"),
    "a link to /dev/full": (lambda tmp: (tmp / "l.png").symlink_to("/dev/full") or tmp / "l.png", "character device"),
    "a FIFO": (lambda tmp: os.mkfifo(tmp / "f") or tmp / "f", "it is a FIFO"),
    "a socket": (lambda tmp: _socket(tmp / "s") or tmp / "s", "it is a socket"),
    "a folder": (lambda tmp: tmp, "it is a folder"),
    "under /proc": (lambda tmp: Path("/proc/archc-test.png"), "could not write archc-test.png"),
    "under /proc/self": (lambda tmp: Path("/proc/self/archc-test.png"), "could not write archc-test.png"),
    "under /sys": (lambda tmp: Path("/sys/archc-test.png"), "could not write archc-test.png"),
    "under a file": (lambda tmp: (tmp / "file").write_bytes(b"x") and tmp / "file" / "x.png", "not a folder"),
    "in a missing folder": (lambda tmp: tmp / "missing" / "x.png", "the folder does not exist"),
    "a 300-character name": (lambda tmp: tmp / ("x" * 300), "the name is too long"),
    "a symlink loop": (lambda tmp: (tmp / "a").symlink_to(tmp / "b") or (tmp / "b").symlink_to(tmp / "a") or tmp / "a" / "x",
                       "could not write x"),
}


@pytest.mark.parametrize("kind", TARGETS)
def test_an_unwritable_target_names_the_path_and_loses_nothing(tmp_path, kind, no_hang):
    make, says = TARGETS[kind]
    target = make(tmp_path)
    kinds = {p: stat.S_IFMT(p.lstat().st_mode) for p in (Path("/dev/full"), Path("/dev/null"), tmp_path)}
    message = _refused(lambda: atomic.atomic_write(target, lambda f: f.write(b"x" * 100)), CheckpointError)
    assert message.startswith(f"{target}: checkpoint error: ") and says in message, message
    assert {p: stat.S_IFMT(p.lstat().st_mode) for p in kinds} == kinds  # /dev/full is still a device
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_symlink_is_followed_and_kept(tmp_path):
    (tmp_path / "real.png").write_bytes(b"old")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    atomic.atomic_write(tmp_path / "link.png", lambda f: f.write(b"new"))
    assert (tmp_path / "link.png").is_symlink() and (tmp_path / "real.png").read_bytes() == b"new"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_a_write_failing_mid_file_keeps_the_old_one(tmp_path, code):
    """What /dev/full does to a write, on a regular file: ENOSPC (and EIO, EROFS) from the write itself."""
    path = tmp_path / "x.png"
    path.write_bytes(b"old")

    def write(f: io.BufferedWriter) -> None:
        f.write(b"partial")
        raise OSError(code, os.strerror(code))
    message = _refused(lambda: atomic.atomic_write(path, write), CheckpointError)
    assert errno.errorcode[code] in message and "the previous x.png is kept unchanged" in message
    assert path.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["x.png"]
