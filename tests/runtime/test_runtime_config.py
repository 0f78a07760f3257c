"""Configuration merging and refusals, learning-rate schedules, and the click commands."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from archc.dsl.errors import UsageError
from archc.runtime import commands
from archc.runtime.config import TrainConfig, resolve_config
from archc.runtime.schedule import lr_factor
from runtime_kit import TINY_ARCH


def test_default_recipe():
    cfg = resolve_config({"out": "runs/x"})
    assert (cfg.optimizer, cfg.nesterov, cfg.momentum, cfg.schedule) == ("sgd", True, 0.9, "onecycle")
    assert (cfg.label_smoothing, cfg.weight_decay, cfg.lr, cfg.batch_size) == (0.1, 5e-4, 0.2, 128)


def test_unknown_config_key_names_key_and_file(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('out = "runs/x"\nlearning_rate = 0.1\n')
    with pytest.raises(UsageError) as e:
        resolve_config({}, toml)
    assert "learning_rate" in str(e.value) and str(toml) in str(e.value) and "lr" in str(e.value)


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(UsageError) as e:
        resolve_config({"out": "x", "epochs": "many"})
    assert "'epochs'" in str(e.value) and "integer" in str(e.value) and "--epochs" in str(e.value)
    with pytest.raises(UsageError, match="'epochs'") as e:
        resolve_config({"out": "x", "epochs": 0})
    assert "greater than or equal to 1" in str(e.value)


def test_flags_override_file_and_set_overrides_single_params(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('out = "runs/x"\nepochs = 7\nlr = 0.05\n[params]\ndepth = 3\nwidth = 16\n')
    cfg = resolve_config({"lr": 0.3, "params": {"width": 32}, "seed": None}, toml)
    assert (cfg.epochs, cfg.lr, cfg.seed) == (7, 0.3, 0)
    assert cfg.params == {"depth": 3, "width": 32}


@pytest.mark.parametrize("arch, optimizer, lr", [("archs/resnet_uva.arch", "sgd", 0.1),
                                                 ("archs/preact_resnet_uva.arch", "sgd", 0.1),
                                                 ("archs/densenet_uva.arch", "adamw", 1e-3),
                                                 ("archs/googlenet_uva.arch", "adamw", 1e-3)])
def test_seed_table_recipe(arch, optimizer, lr):
    cfg = resolve_config({"arch": arch, "out": "x", "recipe": "seed-table"})
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs) == (optimizer, lr, 1e-4, 128, 180)
    assert (cfg.schedule, cfg.milestone_epochs(), cfg.augment, cfg.label_smoothing) == ("multistep", [100, 150], "seed-table", 0.0)
    if optimizer == "sgd":
        assert (cfg.momentum, cfg.nesterov) == (0.9, False)
    assert resolve_config({"arch": arch, "out": "x", "recipe": "seed-table", "epochs": 3}).epochs == 3


def test_resume_keeps_the_run_settings_and_refuses_changes(tmp_path):
    (tmp_path / "config.json").write_text(TrainConfig(out=tmp_path, lr=0.05, epochs=4).model_dump_json())
    cfg = resolve_config({"out": tmp_path, "resume": True, "device": "cpu"})
    assert (cfg.lr, cfg.epochs, cfg.device, cfg.resume) == (0.05, 4, "cpu", True)
    with pytest.raises(UsageError, match="cannot change 'lr'"):
        resolve_config({"out": tmp_path, "resume": True, "lr": 0.1})
    with pytest.raises(UsageError, match="nothing to resume"):
        resolve_config({"out": tmp_path / "new", "resume": True})


def _torch_lrs(make, total):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = make(opt)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("schedule, make", [
    ("onecycle", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.2, total_steps=120, cycle_momentum=False)),
    ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=120)),
    ("multistep", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[60, 90], gamma=0.1)),
])
def test_schedules_match_torch(schedule, make):
    cfg = TrainConfig(out="x", epochs=4, lr=0.2, schedule=schedule)  # milestones 0.5, 0.75 of 4 epochs
    factor = lr_factor(cfg, steps_per_epoch=30)
    expected = _torch_lrs(make, 119 if schedule == "onecycle" else 120)  # OneCycleLR refuses a step past its end
    assert [0.2 * factor(s) for s in range(len(expected))] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.fixture
def cli(tmp_path):
    """The click commands, and a tiny real .arch file."""
    arch = tmp_path / "tiny.arch"
    arch.write_text(TINY_ARCH)
    return CliRunner(), arch


def test_train_and_eval_commands(cli, tiny_data, tmp_path):
    runner, arch = cli
    out = tmp_path / "run"
    result = runner.invoke(commands.train_command, [str(arch), "--data", str(tiny_data), "--out", str(out),
                                                    "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arch"] == "tiny"
    result = runner.invoke(commands.eval_command, [str(arch), "--checkpoint", str(out / "best.pt"), "--data", str(tiny_data),
                                                   "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == pytest.approx(summary["test_acc"])


def test_train_command_config_typo_is_a_usage_error(cli, tmp_path):
    runner, arch = cli
    (tmp_path / "run.toml").write_text("epoch = 3\n")
    result = runner.invoke(commands.train_command, [str(arch), "--out", str(tmp_path / "r"), "--config", str(tmp_path / "run.toml")])
    assert isinstance(result.exception, UsageError) and "'epoch'" in str(result.exception)


def test_train_command_exits_130_on_interrupt(cli, tmp_path, monkeypatch):
    runner, arch = cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "train", interrupted)
    result = runner.invoke(commands.train_command, [str(arch), "--out", str(tmp_path / "r")])
    assert result.exit_code == 130


def test_help_has_examples():
    for command in (commands.train_command, commands.eval_command):
        result = CliRunner().invoke(command, ["--help"])
        assert result.exit_code == 0 and "Example" in result.output


def test_airbench_recipe_takes_airbench94s_steps_in_torch_terms():
    """airbench94 states lr 11.5 and weight decay 0.0153 per 1024 images of a summed loss, with momentum
    0.85 decoupled (its main(): lr / kilostep_scale); on a mean loss the same SGD steps need the values below."""
    cfg = resolve_config({"arch": "archs/airbench94.arch", "out": "x", "recipe": "airbench"})
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    lr_summed, decay_per_step = 11.5 / kilostep, 0.0153 * 1024 / kilostep
    assert cfg.lr == pytest.approx(lr_summed * 1024) and cfg.lr * cfg.weight_decay == pytest.approx(decay_per_step)
    assert (cfg.batch_size, cfg.momentum, cfg.nesterov, cfg.label_smoothing, cfg.norm_bias_lr) == (1024, 0.85, True, 0.2, 64)
    assert (cfg.augment, cfg.schedule, cfg.tta, cfg.lookahead, cfg.val_split) == ("airbench", "linear", "flip-translate", 5, 0)
    assert (cfg.whiten, cfg.whiten_bias_epochs, cfg.train_norm_weight) == (True, 3, False)
    assert resolve_config({"out": "x", "recipe": "airbench", "lookahead": 0, "epochs": 3}).lookahead == 0  # flags win


def test_whiten_bias_epochs_needs_a_whitening_layer_and_aux_weight_is_bounded():
    with pytest.raises(UsageError, match="set whiten = true"):
        resolve_config({"out": "x", "whiten_bias_epochs": 3})
    for bad in (-0.1, 1.5):
        with pytest.raises(UsageError, match="'aux_weight'") as e:
            resolve_config({"out": "x", "aux_weight": bad})
        assert "--aux-weight" in str(e.value)


def test_linear_schedule_is_airbench94s_get_lr():
    total = 476  # airbench94 on CIFAR-10: ceil(48 steps x 9.9 epochs)

    def get_lr(step):  # airbench94.py's, transcribed
        warmup_steps = int(total * 0.23)
        if step < warmup_steps:
            frac = step / warmup_steps
            return 0.2 * (1 - frac) + 1.0 * frac
        frac = (step - warmup_steps) / (total - warmup_steps)
        return 1.0 * (1 - frac) + 0.07 * frac

    factor = lr_factor(TrainConfig(out="x", epochs=4, schedule="linear"), steps_per_epoch=119)
    assert [factor(s) for s in range(total)] == pytest.approx([get_lr(s) for s in range(total)], rel=1e-12)


def test_airbench_groups_fix_norm_weights_scale_norm_biases_and_stop_the_whitening_bias():
    from archc.runtime.schedule import build_optimizer, build_schedule, param_groups

    cfg = resolve_config({"out": "x", "recipe": "airbench", "epochs": 6})
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 24, 2), torch.nn.BatchNorm2d(24), torch.nn.Conv2d(24, 8, 3))
    model[0].weight.requires_grad_(False)  # as runtime.whiten leaves it
    model[1].weight.requires_grad_(False)  # as train_norm_weight = false leaves it
    opt = build_optimizer(cfg, param_groups(cfg, model, model[0]))
    groups = {g.get("role"): g for g in opt.param_groups}
    assert [p for p in groups[None]["params"]] == [model[2].weight, model[2].bias]
    assert groups["norm_bias"]["params"] == [model[1].bias] and groups["whiten_bias"]["params"] == [model[0].bias]
    assert groups["norm_bias"]["lr"] == pytest.approx(64 * cfg.lr)
    assert groups["norm_bias"]["lr"] * groups["norm_bias"]["weight_decay"] == pytest.approx(cfg.lr * cfg.weight_decay)
    schedule = build_schedule(cfg, opt, steps_per_epoch=10)
    lrs = []
    for _ in range(60):
        lrs.append({role: g["lr"] for role, g in zip(groups, opt.param_groups)})
        opt.step()
        schedule.step()
    factor = lr_factor(cfg, 10)
    assert [r[None] for r in lrs] == pytest.approx([cfg.lr * factor(s) for s in range(60)])
    assert all(r["whiten_bias"] == r[None] for r in lrs[:30]) and all(r["whiten_bias"] == 0 for r in lrs[30:])  # 3 epochs
    default = resolve_config({"out": "x"})
    assert len(build_optimizer(default, param_groups(default, model)).param_groups) == 1  # other recipes: one group
