"""Runs people can trust and read (issues 12 and 14): what `archc train` prints and keeps, the validation
split, resuming and extending, the run-folder rules, the checks made before anything is built or allocated,
and what `archc eval` shows. Real CLI runs of a tiny .arch net on slices of the bundled sample.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import archc
from archc.compiler.graphhash import graph_hash
from archc.compiler.passes import compile_file
from archc.runtime import checkpoint, config, loop, preflight, rundir, session
from archc.runtime.augment import MEAN, STD
from archc.runtime.cli import main
from archc.runtime.config import TrainConfig, resolve_config
from archc.runtime.data import Cifar10, load_cifar10
from archc.runtime.schedule import lr_factor
from archc.runtime.train import build_model, train
from runtime_kit import TINY_ARCH, TinyNet, write_slice

EVAL_RE = re.compile(r"^evaluate: (archc eval .*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """tiny.arch, a 256/100-image slice (230 train + 26 val: 7 steps of 32) and one finished 2-epoch run."""
    root = tmp_path_factory.mktemp("runs")
    (root / "tiny.arch").write_text(TINY_ARCH)
    t = SimpleNamespace(root=root, arch=root / "tiny.arch", data=write_slice(root / "data", 256, 100))
    t.run = root / "finished"
    assert main(train_args(t, t.run)) == 0
    return t


def train_args(t, out: Path | None, *more) -> list[str]:
    where = ["--out", str(out)] if out else []
    return ["train", str(t.arch), "--data", str(t.data), *where, "--epochs", "2", "--batch-size", "32",
            "--device", "cpu", *map(str, more)]


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


# --- what a run prints off a terminal ---------------------------------------------------------------------

def test_output_off_a_terminal_has_header_progress_lines_and_footer(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny, out, "--epochs", 1)) == 0  # capsys: stdout is not a terminal
    text = capsys.readouterr().out
    params = sum(p.numel() for p in build_model(tiny.arch, {}).parameters())
    header = text.splitlines()[:4]
    assert header[0].startswith(f"archc {archc.__version__} train: tiny (") and f"{params:,} params" in header[0]
    assert header[1].startswith("device: cpu (") and "fp32" in header[1]
    assert "230 train / 26 val / 100 test images; 7 steps of 32 per epoch" in header[2]
    assert header[3].startswith(f"run: {out} (starting, 1 epoch")
    progress = [line for line in text.splitlines() if line.startswith("  epoch 1/1")]
    assert [int(re.search(r"step (\d+)/7", line)[1]) for line in progress] == [1, 2, 3, 4, 5, 6]  # each ~10% of 7
    assert re.search(r"^epoch 1/1  loss .* val .*$", text, re.MULTILINE)
    summary = json.loads((out / "summary.json").read_text())
    assert f"test accuracy {summary['test_acc']:.2%} on 100 images" in text and f"checkpoint: {out / 'best.pt'}" in text
    command = EVAL_RE.search(text)[1]  # the printed eval command works as printed
    capsys.readouterr()
    assert main([*shlex.split(command)[1:], "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(summary["test_acc"])


class _Counting:
    """Progress that shows at the steps it is given, counting what it is shown."""

    def __init__(self, marks: set[int]):
        self.marks, self.shown = marks, []

    def wants(self, step: int) -> bool:
        return step in self.marks

    def show(self, step: int, loss: float, acc: float) -> None:
        self.shown.append(step)


def _syncs(monkeypatch, s, progress) -> int:
    """Host reads of device values (``item``, ``tolist``) during one training epoch."""
    count = [0]
    for name in ("item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, **k):
            count[0] += 1
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    loop.train_epoch(s, 1, progress)
    monkeypatch.undo()
    return count[0]


def test_progress_lines_read_the_device_only_when_they_print(tiny, tmp_path, monkeypatch):
    """27 steps: silent, the loop reads the device at its 2 loss checks and twice for the totals; each
    progress line adds one read of the running loss and accuracy."""
    cfg = TrainConfig(data=str(write_slice(tmp_path / "d", 120, 10)), out=tmp_path / "r", batch_size=4, device="cpu")
    s = session.create(cfg, TinyNet(), torch.device("cpu"))
    assert s.steps == 27  # 108 training images after the 12 held out
    silent = _syncs(monkeypatch, s, _Counting(set()))
    marks = {3, 6, 9, 20}
    shown = _Counting(marks)
    lines = _syncs(monkeypatch, s, shown)
    assert silent == 2 + 2  # checks at steps 20 and 27; the epoch totals (loss, accuracy) in two reads
    assert shown.shown == sorted(marks) and lines == silent + len(marks)


# --- what the run folder keeps ----------------------------------------------------------------------------

def test_run_folder_keeps_resolved_settings_the_spec_its_hash_and_the_version(tiny):
    stored = json.loads((tiny.run / "config.json").read_text())
    assert (stored["device"], stored["precision"]) == ("cpu", "fp32")  # resolved, not "auto"
    about = json.loads((tiny.run / "run.json").read_text())
    assert about["archc"] == archc.__version__
    assert about["graph_hash"] == graph_hash(compile_file(path=str(tiny.arch)).graph)
    assert (tiny.run / about["copy"]).read_text() == TINY_ARCH
    summary = json.loads((tiny.run / "summary.json").read_text())
    assert summary["graph_hash"] == about["graph_hash"] and summary["archc"] == archc.__version__


def test_spec_copy_includes_imported_files(tiny, tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "stem.arch").write_text("block stem(w) = { conv(w, 3, pad = 1, bias = false); bn; relu }\n")
    spec = TINY_ARCH.replace("conv(width, 3, pad = 1, bias = false); bn; relu;", "stem(width);")
    (tmp_path / "net.arch").write_text('import "lib/stem.arch"\n' + spec)
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "net.arch"), "--data", str(tiny.data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "64", "--device", "cpu", "--quiet"]) == 0
    assert (out / "spec" / "net.arch").read_text() == (tmp_path / "net.arch").read_text()
    assert (out / "spec" / "lib" / "stem.arch").read_text() == (tmp_path / "lib" / "stem.arch").read_text()
    assert compile_file(path=str(out / "spec" / "net.arch")).graph.totals() == compile_file(path=str(tmp_path / "net.arch")).graph.totals()


def test_spec_copy_is_the_text_compiled_even_if_the_files_change_after(tmp_path):
    (tmp_path / "lib").mkdir()
    stem = "block stem(w) = { conv(w, 3, pad = 1, bias = false); bn; relu }\n"
    net = 'import "lib/stem.arch"\n' + TINY_ARCH.replace("conv(width, 3, pad = 1, bias = false); bn; relu;", "stem(width);")
    (tmp_path / "lib" / "stem.arch").write_text(stem)
    (tmp_path / "net.arch").write_text(net)
    comp = compile_file(path=str(tmp_path / "net.arch"))
    for f in ("net.arch", "lib/stem.arch"):  # edited while the run starts
        (tmp_path / f).write_text("# edited\n")
    facts = rundir.spec_facts(comp, str(tmp_path / "net.arch"))
    assert dict(facts.files) == {"net.arch": net.encode(), "lib/stem.arch": stem.encode()}


def test_out_defaults_to_runs_arch_timestamp(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(train_args(tiny, None, "--epochs", 1, "--quiet")) == 0
    made = [p.name for p in (tmp_path / "runs").iterdir()]
    assert len(made) == 1 and re.fullmatch(r"tiny-\d{8}-\d{6}", made[0])
    stamp = made[0].removeprefix("tiny-")
    monkeypatch.setattr(config, "time", SimpleNamespace(strftime=lambda fmt: stamp))  # a second run, same second
    assert config.default_out(tiny.arch) == Path("runs") / f"tiny-{stamp}-2"


def test_python_api_finds_a_spec_by_name(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHC_PATH", str(tiny.root))
    summary = archc.train("tiny", data=str(tiny.data), out=tmp_path / "run", epochs=1, batch_size=64, quiet=True,
                          device="cpu")
    assert summary["arch"] == "tiny" and (tmp_path / "run" / "spec" / "tiny.arch").read_text() == TINY_ARCH
    with pytest.raises(archc.ArchError, match="no spec named 'no-such-net'"):
        archc.train("no-such-net", out=tmp_path / "other")


# --- validation split ----------------------------------------------------------------------------------

def _images(n: int) -> Cifar10:
    return Cifar10(torch.zeros(n, 1, dtype=torch.uint8), torch.arange(n), torch.zeros(0), torch.zeros(0), Path("."))


@pytest.mark.parametrize("n, val", [(50_000, 5_000), (5_170, 517), (256, 26), (9, 1)])
def test_validation_split_is_proportional_disjoint_and_fixed_by_the_seed(n, val):
    data, _, val_y = session.holdout(_images(n), 0.1, seed=3)
    assert (len(data.train_y), len(val_y)) == (n - val, val)
    assert sorted(data.train_y.tolist() + val_y.tolist()) == list(range(n))  # labels are the indices here
    assert torch.equal(session.holdout(_images(n), 0.1, seed=3)[2], val_y)
    if n > 100:
        assert not torch.equal(session.holdout(_images(n), 0.1, seed=4)[2], val_y)


def test_best_pt_is_chosen_on_validation_and_test_is_scored_once(tiny):
    rows = [json.loads(line) for line in (tiny.run / "metrics.jsonl").read_text().splitlines()]
    assert all("test_acc" not in r and r["val_acc"] is not None for r in rows)
    summary = json.loads((tiny.run / "summary.json").read_text())
    best = max(rows, key=lambda r: r["val_acc"])
    assert (summary["best_epoch"], summary["best_val_acc"], summary["selected_on"]) == (best["epoch"], best["val_acc"], "val")
    # the test figure is best.pt's, computed here the textbook way
    net = build_model(tiny.arch, {})
    net.load_state_dict(checkpoint.load(tiny.run / "best.pt")["model"])
    net.eval()
    d = load_cifar10(tiny.data, train=False)
    x = (d.test_x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert summary["test_acc"] == pytest.approx((net(x).argmax(1) == d.test_y).float().mean().item())


def test_val_split_zero_keeps_the_last_epoch(tiny, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(tiny, out, "--val-split", 0, "--quiet")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["best_epoch"], summary["selected_on"], summary["images"]["train"]) == (2, "last epoch (--val-split 0)", 256)
    assert checkpoint.load(out / "best.pt")["epoch"] == 2


# --- TensorBoard ------------------------------------------------------------------------------------------

def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.parametrize("clock", ["real", "frozen"])
def test_tensorboard_log_matches_metrics_and_shows_each_epoch_once_after_a_resume(tiny_data, tmp_path, monkeypatch, clock):
    if clock == "frozen":  # both runs start within one clock tick: the file names must still sort as they began
        from archc.runtime import report
        monkeypatch.setattr(report, "time", SimpleNamespace(time=lambda: 1.8e9, time_ns=lambda: 18 * 10**17))
    out = tmp_path / "run"
    cfg = dict(data=str(tiny_data), out=out, epochs=3, batch_size=64, quiet=True, device="cpu")
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**cfg), _Interrupting(at=4))  # 3 steps per epoch: stops in epoch 2
    train(TrainConfig(**cfg, resume=True), TinyNet())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = _scalars(out)
    assert len(list(out.glob("events.out.tfevents.*"))) == 2  # one per process that trained
    for key, tag in (("loss", "loss/train"), ("val_acc", "accuracy/val"), ("val_loss", "loss/val"), ("lr", "lr")):
        assert logged[tag] == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows], tag
    summary = json.loads((out / "summary.json").read_text())
    assert logged["accuracy/test_of_best"] == [(summary["best_epoch"], pytest.approx(summary["test_acc"]))]


class _Interrupting(TinyNet):
    def __init__(self, at: int):
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, x):
        self.calls += self.training
        if self.training and self.calls >= self.at:
            raise KeyboardInterrupt
        return super().forward(x)


# --- resume and extend ------------------------------------------------------------------------------------

def test_resume_of_a_finished_run_says_so_and_changes_nothing(tiny, capsys):
    before = _files(tiny.run)
    assert main(["train", str(tiny.arch), "--out", str(tiny.run), "--resume"]) == 0
    text = capsys.readouterr().out
    assert f"{tiny.run} has finished all 2 epochs; nothing to train" in text and "--resume --epochs N" in text
    assert EVAL_RE.search(text) and _files(tiny.run) == before


def test_resume_epochs_extends_a_finished_run_with_a_fresh_schedule(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny.run, run)
    before = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert main(["train", str(tiny.arch), "--out", str(run), "--resume", "--epochs", "4", "--quiet"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[:2] == before and [r["epoch"] for r in rows] == [1, 2, 3, 4]
    stored = json.loads((run / "config.json").read_text())
    assert (stored["epochs"], stored["restarts"]) == (4, [2])
    fresh = lr_factor(TrainConfig(out="x", epochs=2), 7)  # the added epochs' schedule: a fresh 2-epoch run's
    assert [r["lr"] for r in rows[2:]] == pytest.approx([0.2 * fresh(7), 0.2 * fresh(14)])  # after steps 7 and 14 of 14
    assert checkpoint.load(run / "last.pt")["epoch"] == 4 and json.loads((run / "summary.json").read_text())["epochs"] == 4
    capsys.readouterr()
    assert main(["train", str(tiny.arch), "--out", str(run), "--resume", "--epochs", "3"]) == 2
    assert "cannot shorten the run to 3 epochs" in capsys.readouterr().err


def test_extension_schedule_restarts_onecycle_as_torch_runs_it():
    """Epochs 3-4 of a 2-epoch run extended to 4 follow torch's OneCycleLR over those 2 epochs alone."""
    cfg = TrainConfig(out="x", epochs=4, restarts=[2])
    factor = lr_factor(cfg, steps_per_epoch=30)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.2, total_steps=60, cycle_momentum=False)
    expected = []
    for _ in range(59):  # OneCycleLR refuses a step past its end
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [0.2 * factor(s) for s in range(60, 119)] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert [factor(s) for s in range(60)] == [lr_factor(TrainConfig(out="x", epochs=2), 30)(s) for s in range(60)]


def test_interrupted_extension_resumes_bit_exactly(tiny_data, tmp_path):
    """2 epochs, extended to 4 and interrupted in epoch 4, resumed: the same weights as extended at one go."""
    cfg = dict(data=str(tiny_data), epochs=2, batch_size=64, quiet=True, device="cpu", seed=5)
    torch.manual_seed(0)
    train(TrainConfig(**cfg, out=tmp_path / "a"), TinyNet())
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    train(resolve_config({"out": tmp_path / "a", "resume": True, "epochs": 4}), TinyNet())
    with pytest.raises(KeyboardInterrupt):  # 3 steps per epoch: call 5 is epoch 4's second step
        train(resolve_config({"out": tmp_path / "b", "resume": True, "epochs": 4}), _Interrupting(at=5))
    assert checkpoint.load(tmp_path / "b" / "last.pt")["epoch"] == 3
    train(resolve_config({"out": tmp_path / "b", "resume": True}), TinyNet())
    a, b = checkpoint.load(tmp_path / "a" / "last.pt"), checkpoint.load(tmp_path / "b" / "last.pt")
    assert a["epoch"] == b["epoch"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_extending_an_unfinished_run_is_refused(tiny_data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(data=str(tiny_data), out=out, epochs=3, batch_size=64, quiet=True, device="cpu"),
              _Interrupting(at=5))
    with pytest.raises(archc.ArchError, match="stopped at epoch 1 of 3: finish it before extending it to 5"):
        train(resolve_config({"out": out, "resume": True, "epochs": 5}), TinyNet())


def test_resume_with_a_changed_spec_is_refused(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny.run, run)
    (run / "summary.json").unlink()  # not finished: it would train on
    other = tmp_path / "tiny.arch"
    other.write_text(TINY_ARCH.replace("dropout(0.1)", "dropout(0.2)"))  # same weights, another network
    assert main(["train", str(other), "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "is not the network the run" in err and "graph hash" in err and str(run / "spec") in err


# --- the run folder: new, empty, --resume or --force ---------------------------------------------------------

def test_a_used_folder_is_refused_and_the_finished_run_kept(tiny, capsys):
    before = _files(tiny.run)
    assert main(train_args(tiny, tiny.run, "--quiet")) == 2
    err = capsys.readouterr().err
    assert f"--out {tiny.run}: usage error: the run folder is not empty" in err
    assert "a finished archc run (best.pt: epoch" in err and "--resume" in err and "--force" in err
    assert _files(tiny.run) == before


def test_a_folder_of_other_files_is_refused_and_force_deletes_only_run_files(tiny, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(train_args(tiny, out, "--quiet")) == 2
    assert "found:    notes.txt" in capsys.readouterr().err and os.listdir(out) == ["notes.txt"]
    shutil.copytree(tiny.run, out, dirs_exist_ok=True)
    assert main(train_args(tiny, out, "--quiet", "--force", "--epochs", 1)) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert checkpoint.load(out / "last.pt")["epoch"] == 1 and len(list(out.glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("out, found", [("/dev/full", "not a folder"), ("/proc/archc-run", "cannot prepare the run folder")])
def test_unusable_out_is_a_usage_error(tiny, capsys, out, found):
    assert main(train_args(tiny, Path(out), "--quiet")) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: usage error:" in err and found in err and "Traceback" not in err


# --- nets the runtime cannot train, refused before they are built -------------------------------------------

BAD_NETS = {
    "4-D output": ("input [3, 32, 32]\nconv(classes, 3, pad = 1)", "output is 10×32×32 per image", "gap; flatten; linear(10)"),
    "5 classes": ("input [3, 32, 32]\nconv(8, 3); gap; flatten; linear(5)", "gives 5 class scores", "linear(10)"),
    "5 classes by parameter": ("input [3, 32, 32]\nconv(8, 3); gap; flatten; linear(classes)", "gives 5 class scores",
                               "--set classes=10"),
    "1 channel": ("input [1, 32, 32]\nconv(8, 3); gap; flatten; linear(classes)", "input 1×32×32 does not fit",
                  "input [3, 32, 32]"),
    "8x8 with flatten": ("input [3, 8, 8]\nconv(8, 3); flatten; linear(classes)", "input 3×8×8 does not fit", "input [3, 32, 32]"),
    "vector input": ("input [3072]\nlinear(classes)", "input 3072 does not fit", "input [3, 32, 32]"),
    "input only": ("input [3, 32, 32]", "output is 3×32×32 per image", "linear(10)"),
    "64x64": ("input [3, 64, 64]\nconv(8, 3); gap; flatten; linear(classes)", "input 3×64×64 does not fit", "input [3, 32, 32]"),
}


@pytest.mark.parametrize("kind", BAD_NETS)
def test_nets_that_do_not_fit_cifar10_are_refused_before_training(kind, tiny, tmp_path, capsys):
    body, what, fix = BAD_NETS[kind]
    classes = 5 if "by parameter" in kind else 10
    spec = tmp_path / "bad.arch"
    spec.write_text(f"arch bad(classes = {classes})\n{body}\n")
    out = tmp_path / "run"
    assert main(["train", str(spec), "--data", str(tiny.data), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:") and "shape error: the network" in err and what in err and fix in err, err
    assert "Traceback" not in err and not out.exists()


def test_eval_refuses_a_1000_class_net_before_scoring(tiny, tmp_path, capsys):
    spec = tmp_path / "wide.arch"
    spec.write_text(TINY_ARCH.replace("classes = 10", "classes = 1000"))
    code = main(["eval", str(spec), "--checkpoint", str(tiny.run / "best.pt"), "--data", str(tiny.data), "--device", "cpu",
                 "--set", "classes=1000"])
    err = capsys.readouterr().err
    assert code == 2 and "gives 1000 class scores; CIFAR-10 has 10 classes" in err and "--set classes=10" in err


# --- memory, before allocating ------------------------------------------------------------------------------

def test_memory_estimate_counts_params_from_torch_and_the_graph_activations(tiny):
    g = compile_file(path=str(tiny.arch)).graph
    params = sum(p.numel() for p in build_model(tiny.arch, {}).parameters())
    act = g.totals().activations
    assert preflight.training_memory(g, 64).total == 4 * 3 * params + 64 * act * 4  # weights, grads, momentum
    assert preflight.training_memory(g, 64, "adamw").total == 4 * 4 * params + 64 * act * 4
    assert preflight.training_memory(g, 64, "sgd", momentum=0, precision="bf16").total == 4 * 2 * params + 64 * act * 2


def test_max_memory_refuses_with_both_figures(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny, out, "--max-memory", "100KB")) == 2
    err = capsys.readouterr().err
    est = preflight.training_memory(compile_file(path=str(tiny.arch)).graph, 32)
    assert err.startswith("--max-memory: limit exceeded: training needs an estimated")
    assert "100.00KB (--max-memory)" in err and "free on cpu" in err and "batch 32" in err and not out.exists()
    assert preflight.human(est.total, "B") in err


def test_free_memory_refuses_naming_the_batch_flag(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(preflight, "host_memory_available", lambda: 50_000)
    assert main(train_args(tiny, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert err.startswith("--batch-size: limit exceeded:") and "50.00KB free on cpu" in err and "no --max-memory" in err


# --- settings refused in the config model --------------------------------------------------------------------

@pytest.mark.parametrize("flags, where, says", [
    (["--seed", str(2**70)], "--seed", "less than 4294967296"),
    (["--nproc", "4", "--device", "cpu"], "--nproc", "at most 2"),
    (["--max-memory", "lots"], "--max-memory", "valid integer"),
    (["--val-split", "0.9"], "--val-split", "less than or equal to 0.5"),
    (["--lr", "inf"], "--lr", "finite number"),
    (["--resume", "--force"], "configuration", "pass one of them"),
])
def test_bad_settings_are_located_usage_errors(tiny, tmp_path, capsys, monkeypatch, flags, where, says):
    monkeypatch.setattr(config, "usable_cores", lambda: 2)
    if "--resume" in flags:
        shutil.copytree(tiny.run, tmp_path / "run")
    assert main(["train", str(tiny.arch), "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{where}: usage error:") and says in err and "Traceback" not in err, err


@pytest.mark.parametrize("toml, says", [("milestones = [nan]", "finite number"), ("milestones = [inf]", "finite number"),
                                        ("milestones = [0.5, -1]", "greater than 0"), ("restarts = [0]", "between 1 and")])
def test_bad_config_file_values_name_the_file(tmp_path, toml, says):
    path = tmp_path / "run.toml"
    path.write_text(toml + "\n")
    with pytest.raises(archc.ArchError) as e:
        resolve_config({"out": tmp_path / "r"}, path)
    assert str(e.value).startswith(f"--config {path}: usage error:") and says in str(e.value)


def test_config_from_a_device_is_refused_without_reading_it(tmp_path):
    with pytest.raises(archc.ArchError) as e:
        resolve_config({"out": tmp_path / "r"}, Path("/dev/zero"))
    assert "--config /dev/zero" in str(e.value) and "not a regular file" in str(e.value)


def test_user_values_in_messages_are_bounded(tiny, tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(f'out = "x"\noptimizer = "{"a" * 120_000}"\n')
    with pytest.raises(archc.ArchError) as e:
        resolve_config({}, toml)
    assert "'optimizer'" in str(e.value) and len(str(e.value)) < 1_000
    for flags in (["--set", "width=" + "x" * 120_000], ["--data", "d" * 120_000]):
        assert main(["train", str(tiny.arch), "--out", str(tmp_path / "r"), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{flags[0]}: usage error:") and len(err) < 1_000, err[:300]


# --- eval: the confusion matrix, the plot, and user text in tables ----------------------------------------------

def test_eval_prints_the_confusion_matrix_and_where_the_plot_went(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the rows are read back by their 12 bars: no wrapping, whatever the terminal
    args = ["eval", str(tiny.arch), "--checkpoint", str(tiny.run / "best.pt"), "--data", str(tiny.data), "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    confusion = json.loads(capsys.readouterr().out)["confusion"]
    plot = tmp_path / "cm.png"
    assert main([*args, "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    rows = {line.split("│")[1].split()[-1]: [int(c) for c in line.split("│")[2:-1]]  # "│ 0 airplane │ 5 │ ..."
            for line in text.splitlines() if line.count("│") == 12}
    assert [rows[name] for name in ("airplane", "automobile", "truck")] == [confusion[0], confusion[1], confusion[9]]
    assert f"confusion matrix plot: {plot}" in text and plot.read_bytes()[:4] == b"\x89PNG"
    assert main([*args, "--json", "--plot", str(tmp_path / "j.png")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["plot"] == str(tmp_path / "j.png") and f"confusion matrix plot: {tmp_path / 'j.png'}" in err


def test_plot_never_overwrites_an_input_and_bad_paths_are_usage_errors(tiny, tmp_path, capsys):
    ck = tmp_path / "model.png"  # a checkpoint whose name ends in .png, so only the clash check can refuse it
    shutil.copy(tiny.run / "best.pt", ck)
    before = ck.read_bytes(), (tiny.run / "best.pt").read_bytes()
    base = ["eval", str(tiny.arch), "--data", str(tiny.data), "--device", "cpu"]
    cases = [(["--checkpoint", str(ck), "--plot", str(ck)], "would overwrite an input"),
             (["--checkpoint", str(tiny.run / "best.pt"), "--plot", str(tiny.run / "best.pt")], "expected: a path ending in .png"),
             (["--checkpoint", str(ck), "--plot", str(tmp_path / "x.txt")], "expected: a path ending in .png"),
             (["--checkpoint", str(ck), "--plot", "/proc/cm.png"], "could not write cm.png: the folder does not take new files"),
             (["--checkpoint", str(ck), "--plot", str(tmp_path / "no" / "cm.png")], "the folder does not exist")]
    for flags, says in cases:
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("--plot") and says in err and "Traceback" not in err, err
    assert (ck.read_bytes(), (tiny.run / "best.pt").read_bytes()) == before


def test_markup_in_a_checkpoint_path_prints_as_written(tiny, tmp_path, capsys):
    folder = tmp_path / "a[/x][bold]"  # a folder "a[" holding "x][bold]": rich would read [/x] as a closing tag
    folder.mkdir(parents=True)
    shutil.copy(tiny.run / "best.pt", folder / "best.pt")
    assert main(["eval", str(tiny.arch), "--checkpoint", str(folder / "best.pt"), "--data", str(tiny.data),
                 "--device", "cpu"]) == 0
    assert f"{folder / 'best.pt'} (epoch" in capsys.readouterr().out
