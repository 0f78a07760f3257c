"""The hostile cases of issue 14's IO classes (data, checkpoints, weights, output paths), generated as
runner.Case values for every command that reads or writes each kind of file. See README.md.

``cases()`` returns all of them; every one must end "handled": exit 2, a located message, no traceback,
no hang, the marker never created, every file the setup made (and ``protect``) unchanged.
"""
from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import payloads as pl
from kit import CPU, DATA, EVAL, RESUME, Maker, base, chain, file_at, good_checkpoint, rotated, special
from runner import REPO, Case

TRAIN = ("train", "{tmp}/tiny.arch", "--data", DATA, "--out", "{tmp}/run", "--epochs", "1", "--batch-size", "8",
         "--val-split", "0", *CPU, "--quiet")
WEIGHTS_FILE = "th/hub/checkpoints/resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1
COMPILE = ("compile", str(REPO / "archs" / "resnet18.arch"), "--weights", "torchvision:resnet18")
SPECIAL = ("fifo", "folder", "/dev/zero", "/dev/urandom")


# ---- 2. data batches -----------------------------------------------------------------------------------

def _bytes(build: Callable[[], bytes]) -> Maker:
    return lambda path, marker: path.write_bytes(build())


def _batches() -> dict[tuple[str, str], Maker]:
    """(class, variant) -> a writer of a hostile batch file."""
    out = {}
    for name in pl.calls(""):
        out["data: code in a batch", f"{name} as data"] = \
            lambda p, m, name=name: p.write_bytes(pl.batch_bytes(pl.calls(m)[name], [0], protocol=2))
        out["data: code in a batch", f"{name} as labels"] = \
            lambda p, m, name=name: p.write_bytes(pl.batch_bytes(pl.images(1), pl.calls(m)[name], protocol=4))
    for name in pl.opcode_calls(""):
        out["data: code in a batch", f"{name} opcode"] = lambda p, m, name=name: p.write_bytes(pl.opcode_calls(m)[name])
    for n in (1_000_000, 2_000_000, 3_000_000):
        for how in ("state", "placeholder", "frombuffer"):
            declared = pl.DeclaredArray((n, 3072), b"", how)
            out["data: declared sizes", f"{n:,} images ({how})"] = _bytes(lambda d=declared: pl.batch_bytes(d, [0] * 3, 5))
    for op in pl.COUNTED:
        for length in (2**31 - 1, 2**62):
            out["data: declared sizes", f"{op} of {length:,} bytes"] = \
                _bytes(lambda op=op, n=length: pl.giant_length(op, n, inside_batch=True))
    for slot in (2**27, 2**31):
        out["data: declared sizes", f"memo slot {slot:,}"] = _bytes(lambda slot=slot: pl.memo_slot(slot))
    out["data: declared sizes", "a million opcodes"] = _bytes(lambda: pl.many_opcodes(1_000_000))
    for depth in (3_000, 100_000):
        out["data: nesting", f"a list nested {depth:,} deep"] = _bytes(lambda d=depth: pl.nested_list(d))
    for name in pl.self_containing():
        out["data: nesting", name] = _bytes(lambda name=name: pickle.dumps(pl.self_containing()[name], protocol=2))
    out["data: empty batch", "no images"] = _bytes(lambda: pl.batch_bytes(np.zeros((0, 3072), np.uint8), []))
    return out


def data_cases() -> list[Case]:
    cases = []
    for i, ((klass, variant), make) in enumerate(_batches().items()):
        for j, (name, argv) in enumerate((("test_batch", EVAL), ("data_batch_1", TRAIN), ("test_batch", TRAIN))):
            setup = chain(base, file_at(f"data/cifar-10-batches-py/{name}", make))
            cases.append(Case(f"{klass}/{variant}/{argv[0]} {name}", klass, argv, setup, slow=rotated(i, j, 3)))
    for kind in SPECIAL:
        for rel, argv in (("data/cifar-10-batches-py/data_batch_1", TRAIN), ("data/cifar-10-batches-py/test_batch", EVAL),
                          ("data/test_batch", EVAL)):
            steps = [base, file_at(rel, special(kind))]
            if rel == "data/test_batch":  # the batches directly in --data, no cifar-10-batches-py folder
                steps.insert(1, lambda tmp: shutil.rmtree(tmp / "data" / "cifar-10-batches-py"))
            cases.append(Case(f"data: special files/{kind} as {rel}/{argv[0]}", "data: special files", argv,
                              chain(*steps)))
    for what, make in (("a file", b"x"), ("a FIFO", special("fifo")), ("/dev/null", special("/dev/null"))):
        for argv in (TRAIN, EVAL):
            setup = chain(base, lambda tmp: shutil.rmtree(tmp / "data"), file_at("data", make))
            cases.append(Case(f"data: special files/--data names {what}/{argv[0]}", "data: special files", argv, setup))
    return cases


# ---- 1. torchvision weights in torch's cache -----------------------------------------------------------

def _torch_files() -> dict[tuple[str, str], Maker]:
    """(class, variant) -> a writer of a hostile torch file."""
    out = {}
    for name in pl.calls(""):
        for fmt, kw in (("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False}),
                        ("zip, protocol 4", {"pickle_protocol": 4})):
            out["code in a torch file", f"{name} ({fmt})"] = \
                lambda p, m, name=name, kw=kw: torch.save({"conv1.weight": pl.calls(m)[name]}, p, **kw)
    out["damaged torch file", "empty"] = b""
    out["damaged torch file", "cut in half"] = lambda p, m: p.write_bytes(good_checkpoint().read_bytes()[:20_000])
    out["damaged torch file", "random bytes"] = np.random.default_rng(0).bytes(4096)
    out["damaged torch file", "a list"] = lambda p, m: torch.save([1, 2], p)
    out["damaged torch file", "a nested list for a tensor"] = \
        lambda p, m: torch.save({"conv1.weight": [[[0.5] * 7] * 7] * 64}, p)
    out["damaged torch file", "other names"] = lambda p, m: torch.save({"w": torch.zeros(1)}, p)
    for declared in (2**31, 2**32 - 2):
        out["zip bomb", f"{declared:,} bytes declared"] = lambda p, m, d=declared: pl.zip_bomb(p, d)
    out["zip bomb", "128 MiB of zeros, deflated"] = lambda p, m: pl.zip_bomb(p, 128 << 20, real=True)
    for kind in SPECIAL:
        out["special files", kind] = special(kind)
    return out


def weights_cases() -> list[Case]:
    """Each builds resnet18 (about a second): beyond os.system, code in the cached file runs in the slow
    target; the loader is the checkpoints' one, whose cases all run by default."""
    env = {"TORCH_HOME": "{tmp}/th"}
    return [Case(f"weights: {klass}/{variant}", f"weights: {klass}", COMPILE, file_at(WEIGHTS_FILE, make), env,
                 slow=klass.startswith("code") and not variant.startswith("os.system") or "deflated" in variant)
            for (klass, variant), make in _torch_files().items()]


# ---- 3, 4. checkpoints, run folders, config.json -------------------------------------------------------

def _edit(path: Path, marker: str, edit: Callable[[dict], None]) -> None:
    state = torch.load(good_checkpoint(), weights_only=True)
    edit(state)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # pickle recurses into nested lists
    try:
        torch.save(state, path)
    finally:
        sys.setrecursionlimit(limit)


def _deep(depth: int) -> list:
    value: list = [0]
    for _ in range(depth):
        value = [value]
    return value


def _schema_edits() -> dict[str, Callable[[dict], None]]:
    """Checkpoints that load (tensors and plain values only) but hold the wrong thing somewhere
    (``PARAMS_ONLY_EVAL``: a resume builds the net from config.json, never from these)."""
    return {
        "nested lists for a tensor": lambda s: s["model"].update({"conv.weight": [[[[0.5] * 3] * 3] * 3] * 4}),
        "a 3,000,000-element list for a tensor": lambda s: s["model"].update({"conv.weight": [0] * 3_000_000}),
        "a 3,000,000-element list in params": lambda s: s["config"]["params"].update(width=[0] * 3_000_000),
        "params nested 1,000 deep": lambda s: s["config"]["params"].update(width=_deep(1_000)),
        "history entry without loss": lambda s: s["history"][0].pop("loss"),
        "history entry as a string": lambda s: s["history"].__setitem__(0, "epoch 1"),
        "best as a list": lambda s: s.update(best=[1, 2]),
        "best without its epoch": lambda s: s["best"].pop("epoch"),
        "an unknown top-level key": lambda s: s.update(extra=torch.zeros(1)),
        "a million unknown keys": lambda s: s.update({f"k{i}": 0 for i in range(1_000_000)}),
        "config.json's content as a list": lambda s: s.update(config=[1, 2]),
        "a schedule value that contains itself": lambda s: s["schedule"].update(base_lrs=(loop := [0.1], loop.append(loop))[0]),
        "epoch negative": lambda s: s.update(epoch=-1),
        "a 1,000-class head": lambda s: (s["config"]["params"].update(classes=1000),
                                         s["model"].update({"linear.weight": torch.zeros(1000, 4),
                                                            "linear.bias": torch.zeros(1000)})),
    }


# A resume takes the arch parameters from config.json, so these only matter to eval (which builds the net
# from the checkpoint's own): resuming with them is legitimate.
EVAL_ONLY = {"a 3,000,000-element list in params"}
# Files of several megabytes that torch's (pure Python) weights-only unpickler takes seconds to read.
HEAVY = {"a 3,000,000-element list for a tensor", "a 3,000,000-element list in params", "a million unknown keys",
         "128 MiB of zeros, deflated"}


def _run_folder(tmp: Path) -> None:
    """{tmp}/run: a run of tiny.arch stopped after epoch 1 of 2 (config.json and last.pt)."""
    from archc.runtime.config import TrainConfig

    run = tmp / "run"
    run.mkdir(exist_ok=True)
    cfg = TrainConfig(arch=tmp / "tiny.arch", data=str(tmp / "data"), out=run, epochs=2, batch_size=100, device="cpu")
    (run / "config.json").write_text(json.dumps(cfg.model_dump(mode="json", exclude={"force"})))
    for name in ("last.pt", "best.pt"):
        shutil.copy(good_checkpoint(), run / name)


def checkpoint_cases() -> list[Case]:
    cases = []
    files = _torch_files() | {("schema", name): (lambda p, m, e=edit: _edit(p, m, e))
                              for name, edit in _schema_edits().items()}
    for i, ((klass, variant), make) in enumerate(files.items()):
        klass = f"checkpoint: {klass}"
        resumable = variant not in EVAL_ONLY
        cases.append(Case(f"{klass}/{variant}/eval", klass, EVAL, chain(base, file_at("good.pt", make)),
                          slow=variant in HEAVY or resumable and rotated(i, 0, 2)))
        if resumable:
            cases.append(Case(f"{klass}/{variant}/resume", klass, RESUME,
                              chain(base, _run_folder, file_at("run/last.pt", make)), slow=variant in HEAVY or rotated(i, 1, 2)))
    configs = {"a list": b"[1, 2]", "null": b"null", "a string": b'"x"', "nested 100,000 deep": b"[" * 100_000,
               "a 5,000-digit number": b"9" * 5_000, "not UTF-8": b"\xff\xfe{", "2 MB": b" " * (2 << 20) + b"{}",
               "a FIFO": special("fifo"), "a folder": special("folder"), "/dev/zero": special("/dev/zero")}
    for variant, content in configs.items():
        cases.append(Case(f"checkpoint: config.json/{variant}/resume", "checkpoint: config.json", RESUME,
                          chain(base, _run_folder, file_at("run/config.json", content))))
    return cases


# ---- 5. output paths -----------------------------------------------------------------------------------

def output_cases() -> list[Case]:
    plots = {"a FIFO": ("{tmp}/out.png", file_at("out.png", special("fifo"))),
             "a folder": ("{tmp}/out.png", file_at("out.png", special("folder"))),
             "a link to /dev/full": ("{tmp}/out.png", file_at("out.png", special("/dev/full"))),
             "under a file": ("{tmp}/good.pt/out.png", lambda tmp: None),
             "in a missing folder": ("{tmp}/missing/out.png", lambda tmp: None),
             "under /proc": ("/proc/archc-hostile.png", lambda tmp: None),
             "under /sys": ("/sys/archc-hostile.png", lambda tmp: None)}
    cases = [Case(f"output paths/--plot {what}", "output paths", (*EVAL, "--plot", path), chain(base, make),
                  protect=("/dev/full",))
             for what, (path, make) in plots.items()]
    outs = {"a file": "{tmp}/good.pt", "/dev/full": "/dev/full", "under /proc": "/proc/archc-hostile-run",
            "under /sys": "/sys/archc-hostile-run", "under a file": "{tmp}/good.pt/run"}
    train = [a for a in TRAIN]
    for what, out in outs.items():
        argv = tuple(out if a == "{tmp}/run" else a for a in train)
        cases.append(Case(f"output paths/--out {what}", "output paths", argv, base, protect=("/dev/full",)))
    return cases


def cases() -> list[Case]:
    return [*data_cases(), *weights_cases(), *checkpoint_cases(), *output_cases()]
