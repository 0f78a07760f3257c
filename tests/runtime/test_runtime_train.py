"""Training runs end to end: files, evaluation, divergence, interruption, two processes.

Kills, Ctrl-C from outside, failed writes and bad checkpoints: test_runtime_faults.py.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from archc.dsl.errors import DivergedError, UsageError
from archc.runtime import checkpoint
from archc.runtime.augment import MEAN, STD
from archc.runtime.config import TrainConfig, usable_cores
from archc.runtime.data import load_cifar10
from archc.runtime.distributed import RENDEZVOUS
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
    (out / "config.json").write_text(json.dumps({"arch": "a.arch", "epochs": 1, "out": str(out)}))  # marks a run

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)  # what a read-only folder does (root ignores chmod)
    with pytest.raises(UsageError) as e:
        train(_cfg(tiny_data, out, force=True), _fresh_net())
    assert f"--out {out}" in str(e.value) and f"{out / 'config.json'}: Permission denied" in str(e.value)


TWO_CORES = pytest.mark.skipif(usable_cores() < 2, reason="--nproc 2 needs 2 CPU cores (one process per core)")


@TWO_CORES
def test_two_gloo_processes_match_one_process(tiny_data, tmp_path):
    """Same global batch, no batch norm or dropout: only float summation order may differ."""
    tolerance = 1e-3  # on the final epoch's mean loss; a wrong shard or doubled gradient is off by > 1e-2
    launch = ("PYTHONSAFEPATH", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", RENDEZVOUS)
    env = {k: os.environ.get(k) for k in launch}
    one = train(_cfg(tiny_data, tmp_path / "one"), _fresh_net(bn=False, dropout=0))
    # not quiet: rank 0 prints progress lines (stdout is no terminal here) while rank 1 prints nothing, which
    # must not change which collectives each rank makes
    two = train(_cfg(tiny_data, tmp_path / "two", nproc=2, quiet=False), _fresh_net(bn=False, dropout=0))
    assert two["nproc"] == 2 and _run_files(tmp_path / "two") == RUN_FILES | {"events"}
    assert abs(_last_loss(tmp_path / "one") - _last_loss(tmp_path / "two")) < tolerance
    assert one["test_acc"] == pytest.approx(two["test_acc"], abs=0.02)
    assert {k: os.environ.get(k) for k in launch} == env  # what the workers were started with stays theirs


def _last_loss(run) -> float:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["loss"]


@pytest.mark.slow
@TWO_CORES
def test_divergence_in_worker_processes_reaches_the_caller(tiny_data, tmp_path):
    """The workers' DivergedError comes back intact (type, message, exit code), not as a generic failure."""
    seed_everything(0)
    with pytest.raises(DivergedError) as e:  # each worker's copy counts its own calls: step 3 of epoch 1
        train(_cfg(tiny_data, tmp_path / "run", nproc=2), _Sabotaged(at=3, fault="nan"))
    assert e.value.exit_code == 3 and "epoch 1, step 3 of 3" in str(e.value)
    assert checkpoint.load(tmp_path / "run" / "last.pt")["epoch"] == 0


# ---- auxiliary outputs (@aux) -------------------------------------------------------------------------

class _ConstantAux(TinyNet):
    """TinyNet returning two extra all-zero logit vectors in training, as a net with `@aux` heads returns
    (main, aux, aux): each head's loss is then exactly ln 10 and adds no gradient."""

    def forward(self, x):
        main = super().forward(x)
        return (main, torch.zeros_like(main), torch.zeros_like(main)) if self.training else main


def test_aux_heads_add_weighted_losses_and_metrics_follow_the_main_output(tiny_data, tmp_path):
    runs = {w: train(_cfg(tiny_data, tmp_path / str(w), aux_weight=w, epochs=1), _fresh_net_of(_ConstantAux)) for w in (0, 0.4)}
    rows = {w: json.loads((tmp_path / str(w) / "metrics.jsonl").read_text()) for w in runs}
    assert rows[0.4]["loss"] == pytest.approx(rows[0]["loss"] + 0.4 * 2 * math.log(10), abs=1e-5)  # + 0.4 × each head's ln 10
    assert rows[0.4]["train_acc"] == rows[0]["train_acc"] and runs[0.4]["test_acc"] == runs[0]["test_acc"]  # the main output's


def _fresh_net_of(cls, **kw):
    seed_everything(0)
    return cls(**kw)


def test_googlenet_step_loss_is_the_main_loss_plus_weighted_aux_losses(tmp_path):
    """One step of torchvision's GoogLeNet (both heads, dropout off) on the whole training set at once:
    the loss train_epoch reports equals the textbook sum computed on a copy of the net."""
    import copy

    from archc.runtime import loop, session
    from archc.runtime.augment import normalize
    from archc.runtime.display import Silent
    from archc.runtime.train import build_model
    from runtime_kit import write_slice

    params = {"classes": 10, "size": 32, "dropout": 0.0, "dropout_aux": 0.0}
    net = build_model(Path("archs/googlenet.arch"), params)
    twin = copy.deepcopy(net).train()
    data = write_slice(tmp_path / "data", 16, 10)
    cfg = _cfg(data, Path("unused"), batch_size=16, val_split=0, augment="none", label_smoothing=0.1, aux_weight=0.3)
    s = session.create(cfg, net, torch.device("cpu"))
    stats = loop.train_epoch(s, 1, Silent())
    main, aux2, aux1 = twin(normalize(s.data.train_x))
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    y = s.data.train_y
    assert stats["loss"] == pytest.approx((ce(main, y) + 0.3 * (ce(aux1, y) + ce(aux2, y))).item(), rel=1e-4)
    assert stats["train_acc"] == pytest.approx((main.argmax(1) == y).float().mean().item(), abs=1 / 16)


@pytest.mark.slow
def test_googlenet_with_aux_heads_trains_on_cifar_sized_images(tmp_path):
    from click.testing import CliRunner

    from archc.runtime import commands
    from runtime_kit import write_slice

    data = write_slice(tmp_path / "data", 40, 20)
    result = CliRunner().invoke(commands.train_command, [
        "archs/googlenet.arch", "--set", "classes=10", "--set", "size=32", "--data", str(data), "--out", str(tmp_path / "run"),
        "--epochs", "1", "--batch-size", "16", "--val-split", "0", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["params"] == 9_960_638 and summary["test_acc"] is not None  # the heads trained, eval ran without them


def test_aux_heads_must_score_the_data_classes(tmp_path):
    from archc.dsl.errors import ShapeError
    from archc.runtime.commands import compile_checked

    spec = tmp_path / "aux.arch"
    text = ("arch auxy(classes = 10, head = 10)\ninput [3, 32, 32]\nconv(8, 3, pad = 1); relu\n"
            "side: { gap; flatten; linear(head) } @aux\ngap; flatten; linear(classes)\n")
    spec.write_text(text)
    assert compile_checked(spec, {}).graph.aux_ids  # a head of 10 scores fits CIFAR-10
    with pytest.raises(ShapeError) as e:
        compile_checked(spec, {"head": 7})
    assert "auxiliary head `side" in str(e.value) and "7 class scores" in str(e.value) and "aux.arch:4" in str(e.value)
    with pytest.raises(ShapeError, match="the network's output gives 7"):
        compile_checked(spec, {"classes": 7, "head": 10})


# ---- the airbench recipe: whitening, fixed BN weights, lookahead, alternating flips ----------------------

class _WhiteNet(torch.nn.Module):
    """A whitening conv first (2 × 3 × 2 × 2 = 24 filters, with bias), BN, dropout: what --recipe airbench
    trains; raises KeyboardInterrupt at training forward ``stop`` (1-based) when given."""

    def __init__(self, stop: int | None = None):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 24, 2), torch.nn.GELU(), torch.nn.Conv2d(24, 16, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(16), torch.nn.GELU(), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(),
            torch.nn.Dropout(0.1), torch.nn.Linear(16, 10, bias=False))
        self.calls, self.stop = 0, stop

    def forward(self, x):
        self.calls += self.training
        if self.training and self.calls == self.stop:
            raise KeyboardInterrupt
        return self.body(x)


def _airbench(data, out, **kw) -> TrainConfig:
    """The recipe on 256 images: 4 steps of 64 per epoch; lookahead every 3 steps, so epochs end between updates."""
    return _cfg(data, out, recipe="airbench", epochs=3, whiten_bias_epochs=1, lookahead=3, lr=0.02, **kw)


def test_airbench_recipe_resumes_bit_exactly_and_keeps_its_fixed_weights(tiny_data, tmp_path):
    from archc.runtime.whiten import whiten

    train(_airbench(tiny_data, tmp_path / "whole"), _fresh_net_of(_WhiteNet))
    with pytest.raises(KeyboardInterrupt):  # forward 6: epoch 2, step 2
        train(_airbench(tiny_data, tmp_path / "cut"), _fresh_net_of(_WhiteNet, stop=6))
    after_one = checkpoint.load(tmp_path / "cut" / "last.pt")
    assert after_one["epoch"] == 1  # 4 steps, the last update at step 3: the average differs from the weights
    assert not torch.equal(after_one["model"]["body.2.weight"], after_one["lookahead"]["body.2.weight"])
    train(_airbench(tiny_data, tmp_path / "cut", resume=True), _fresh_net_of(_WhiteNet))
    whole, cut = (checkpoint.load(tmp_path / run / "last.pt") for run in ("whole", "cut"))
    for part in ("model", "lookahead"):
        assert whole[part].keys() == cut[part].keys()
        assert all(torch.equal(whole[part][k], cut[part][k]) for k in whole[part]), part
    assert torch.equal(whole["model"]["body.2.weight"], whole["lookahead"]["body.2.weight"])  # the run ends on the average
    conv = torch.nn.Conv2d(3, 24, 2)
    whiten(conv, load_cifar10(tiny_data).train_x)
    assert torch.equal(whole["model"]["body.0.weight"], conv.weight)  # whitened from the data, then never trained
    assert not torch.equal(after_one["model"]["body.0.bias"], torch.zeros(24))  # its bias trains (for 1 epoch)
    assert torch.equal(whole["model"]["body.3.weight"], torch.ones(16))  # BN weights stay 1
    assert not torch.equal(whole["model"]["body.3.bias"], torch.zeros(16))


def test_alternating_flips_mirror_each_image_in_every_other_epoch(tiny_data):
    from archc.runtime.augment import TRANSLATE, for_run

    images = load_cifar10(tiny_data).train_x[:40]
    augment = for_run("airbench", 40, 0, torch.device("cpu"))
    idx = torch.arange(40)
    padded = torch.nn.functional.pad(images.float(), (TRANSLATE,) * 4, mode="reflect")
    crops = [padded[:, :, dy:dy + 32, dx:dx + 32] for dy in range(5) for dx in range(5)]  # every reflect-pad-2 crop
    flipped = []
    for epoch in (1, 2, 3):
        out = augment(images, idx, torch.Generator().manual_seed(epoch), slice(None), epoch)
        raw = out * (torch.tensor(STD).view(1, 3, 1, 1) * 255) + torch.tensor(MEAN).view(1, 3, 1, 1) * 255
        seen = [(any(torch.allclose(raw[k], c[k], atol=1e-3) for c in crops),
                 any(torch.allclose(raw[k], c[k].flip(-1), atol=1e-3) for c in crops)) for k in range(40)]
        assert all(plain != mirrored for plain, mirrored in seen)  # each output is a crop, as it is or mirrored
        flipped.append(torch.tensor([mirrored for _, mirrored in seen]))
    assert torch.equal(flipped[0], ~flipped[1]) and torch.equal(flipped[0], flipped[2])  # alternating, per image
    assert 10 < flipped[0].sum() < 30  # about half start mirrored
    whole = augment(images, idx, torch.Generator().manual_seed(9), slice(None), 1)
    parts = [augment(images, idx, torch.Generator().manual_seed(9), keep, 1) for keep in (slice(0, 20), slice(20, 40))]
    assert torch.equal(torch.cat(parts), whole)  # a rank's shard is its slice of the global batch


def test_lookahead_ends_a_phase_on_its_average_unless_it_took_none():
    """Each "step" adds 1 to every weight. Every 2 steps of a 3-step phase: the average at step 2 is
    w0 + 2(1 - d), d = 0.95² (2/3)³, and step 3's weights are dropped for it, as airbench's final update.
    Every 5 steps: no average is taken in 3 steps (airbench's 1-epoch run on the 2,000-image sample is
    1 step), so the trained weights stay rather than fall back to the starting ones."""
    from archc.runtime.lookahead import Lookahead

    for every, expected in ((2, 2 * (1 - 0.95 ** 2 * (2 / 3) ** 3)), (5, 3.0)):
        net = torch.nn.Linear(2, 2)
        start = net.weight.detach().clone()
        lookahead = Lookahead(net, every, lambda s: (s, 3))
        for step in (1, 2, 3):
            with torch.no_grad():
                net.weight.add_(1.0)
            lookahead.step(step)
        assert torch.allclose(net.weight, start + expected, atol=1e-6), every
