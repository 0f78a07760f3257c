"""Ops of one's own: registered from Python with ``archc.register_op``, used in .arch files, and
held to the same proof as the built-in ones (tests/test_registry.py's checks, against torch)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import archc
from archc.compiler.ops import OPS


class PixelShuffle(archc.Op):
    """A torch.nn module plus a static shape rule: the README's example."""
    name = "pixel_shuffle"
    doc = "C×H×W -> C/r²×rH×rW (torch.nn.PixelShuffle)"
    family = "shape"
    args = (archc.Arg("r", "pos_int"),)
    example = "pixel_shuffle(2)"
    example_input = (8, 3, 3)

    def infer(self, a, ins):
        c, h, w = ins[0]
        if c % (a.r * a.r):
            raise archc.ShapeFault(f"`pixel_shuffle` needs channels divisible by {a.r * a.r}", found=str(c))
        return (c // (a.r * a.r), h * a.r, w * a.r)

    def other_ops(self, a, ins, out):
        return 0

    def lower(self, a, ins):
        return archc.module(nn.PixelShuffle, a.r)


@pytest.fixture
def registered():
    archc.register_op(PixelShuffle)
    yield
    del OPS["pixel_shuffle"]


def test_a_registered_op_passes_the_registry_proof(registered, tmp_path):
    from test_registry import test_op_matches_torch
    test_op_matches_torch("pixel_shuffle", tmp_path)


def test_a_registered_op_is_used_like_a_built_in_one(registered):
    model = archc.build("arch up\ninput [16, 4, 4]\nconv(16, 3, pad = 1); up: pixel_shuffle(2); relu\n")
    x = torch.randn(1, 16, 4, 4)
    assert model(x).shape == (1, 4, 8, 8) and isinstance(model.up, nn.PixelShuffle)
    with pytest.raises(archc.ArchError, match="divisible by 9"):
        archc.check("arch up\ninput [16, 4, 4]\npixel_shuffle(3)\n")
    with pytest.raises(archc.ArchError, match="did you mean `pixel_shuffle`"):
        archc.check("arch up\ninput [16, 4, 4]\npixel_shufle(2)\n")


def test_cli_loads_plugins_named_in_archc_plugins(tmp_path):
    (tmp_path / "myops.py").write_text("import archc\nfrom test_user_ops import PixelShuffle\n"
                                       "archc.register_op(PixelShuffle)\n")
    (tmp_path / "up.arch").write_text("arch up\ninput [16, 4, 4]\npixel_shuffle(2)\n")
    env = {"ARCHC_PLUGINS": "myops", "PYTHONPATH": f"{tmp_path}:{__import__('pathlib').Path(__file__).parent}",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "archc", "check", str(tmp_path / "up.arch")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and "output 4×8×8" in run.stdout, run.stderr
