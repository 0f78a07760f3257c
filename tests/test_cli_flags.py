"""CLI consistency (issues 12 and 14): contradictory or inapplicable flags are usage errors naming
the flag; -o never overwrites an input; values print as .arch writes them; user text is inert
in tables; compile checks memory before building."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archc.runtime.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEC = "arch net(width = 8, flag = false)\ninput [3, 16, 16]\nconv(width, 3, pad = 1); relu\ngap; flatten; linear(4)\n"


@pytest.fixture
def spec(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.arch").write_text(SPEC)
    return tmp_path / "net.arch"


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


REFUSED = {  # flags -> (the flag the message starts with, words in it)
    "emit and render": (["--emit", "dot", "--render"], "--render", "separate jobs"),
    "-o without a job": (["-o", "x.py"], "-o", "needs --emit or --render"),
    "render to jpg": (["--render", "-o", "y.jpg"], "-o", "not .jpg"),
    "format contradicts suffix": (["--render", "--format", "svg", "-o", "y.png"], "--format", "contradicts"),
    "text into an image": (["--emit", "ir", "-o", "x.png"], "-o", "writes text"),
    "weights with emit": (["--emit", "ir", "--weights", "torchvision:resnet18"], "--weights", "builds none"),
    "depth with emit ir": (["--emit", "ir", "--depth", "2"], "--depth", "shapes a drawing"),
    "depth when building": (["--depth", "1"], "--depth", "shapes a drawing"),
    "format without render": (["--emit", "dot", "--format", "png"], "--format", "image format of --render"),
    "dpi for svg": (["--render", "--dpi", "300"], "--dpi", "PNG only"),
    "set with emit ast": (["--emit", "ast", "--set", "width=4"], "--set", "before parameters are bound"),
    "max-memory with emit": (["--emit", "ir", "--max-memory", "1G"], "--max-memory", "bounds building"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_contradictory_or_inapplicable_flags_are_refused(capsys, spec, case):
    flags, flag, words = REFUSED[case]
    code, out, err = _run(capsys, ["compile", spec, *flags])
    assert code == 2 and err.startswith(f"{flag}: usage error: ") and words in err, err
    assert sorted(p.name for p in spec.parent.iterdir()) == ["net.arch"]  # nothing written


@pytest.mark.parametrize("argv, written", [
    (["--render", "-o", "y.png"], "y.png"),                   # the suffix picks the format
    (["--render", "--format", "pdf", "-o", "y"], "y.pdf"),    # no suffix: the format's is added
    (["--render", "--format", "png"], "net.png"),             # no -o: FILE's name, here
    (["--emit", "dot", "-o", "g.dot"], "g.dot"),
])
def test_where_outputs_go(capsys, spec, argv, written):
    if "--render" in argv and shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    code, out, err = _run(capsys, ["compile", spec, *argv])
    assert code == 0, err
    assert sorted(p.name for p in spec.parent.iterdir()) == sorted(["net.arch", written])


def test_output_never_overwrites_an_input(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "archs" / "lib", tmp_path / "lib")
    shutil.copy(ROOT / "archs" / "resnet20.arch", tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.arch")}
    (tmp_path / "alias.arch").symlink_to(tmp_path / "resnet20.arch")
    for target in ["resnet20.arch", "./lib/../resnet20.arch", "alias.arch", "lib/cifar_resnet.arch"]:
        for job in (["--emit", "python"], ["--emit", "ast"]):
            code, out, err = _run(capsys, ["compile", "resnet20.arch", *job, "-o", target])
            assert code == 2 and "would overwrite an input" in err, (target, job, err)
    (tmp_path / "lib" / "pic.svg").symlink_to(tmp_path / "lib" / "cifar_resnet.arch")
    code, out, err = _run(capsys, ["compile", "resnet20.arch", "--render", "-o", "lib/pic.svg"])
    assert code == 2 and "would overwrite an input" in err
    assert {p: p.read_bytes() for p in before} == before


def test_summary_and_compile_accept_depth_zero(capsys, spec):
    code, out, err = _run(capsys, ["summary", spec, "--depth", "0"])
    assert code == 0, err
    rows = out.splitlines()[3:-3]
    assert len(rows) == 1 and rows[0].split()[:2] == ["net", "scope"]


def test_python_booleans_in_set_suggest_true(capsys, spec):
    code, out, err = _run(capsys, ["check", spec, "--set", "flag=True"])
    assert code == 2 and "booleans are written `true` and `false`" in err


def test_a_bare_word_in_set_suggests_the_quoted_string(capsys, spec):
    code, out, err = _run(capsys, ["check", spec, "--set", "act=silu"])
    assert code == 2 and "unknown name `silu`" in err and """--set 'act="silu"'""" in err.splitlines()[-1]


def test_values_print_as_arch_writes_them(capsys, spec):
    code, out, err = _run(capsys, ["compile", spec, "--emit", "ir"])
    assert out.splitlines()[0] == "graph net(width=8, flag=false) input [3, 16, 16]"
    assert "kernel=[3, 3]" in out and "bias=true" in out and "True" not in out and "(3, 3)" not in out


def test_markup_and_control_characters_are_inert_in_summary(capsys, tmp_path):
    evil = tmp_path / "evil.arch"
    evil.write_text('arch evil(tag = "[/x] [bold]hi \u202e\x1b[31m")\ninput [3, 8, 8]\n'
                    'block b(s) = { conv(4, 1) }\n"[/x]": b(tag)\n"[bold]": relu\ngap; flatten\n')
    code, out, err = _run(capsys, ["summary", evil, "--depth", "1"])
    assert code == 0, err
    assert "\x1b" not in out and "\u202e" not in out
    assert '[/x]     b(s="[/x] [bold]hi ??[31m")' in out and "\n[bold]   relu" in out


def test_long_scope_names_are_not_cut(capsys, tmp_path):
    name = "stage_" + "x" * 150
    spec = tmp_path / "long.arch"
    spec.write_text(f'arch long\ninput [3, 8, 8]\n{name}: {{ inner_{"y" * 60}: conv(4, 1) }}\ngap; flatten\n')
    code, out, err = _run(capsys, ["summary", spec, "--depth", "2"])
    assert f"{name}.inner_{'y' * 60}" in out


def test_compile_refuses_before_building_when_memory_is_short(capsys, spec, monkeypatch):
    import archc.compiler.builder as builder
    monkeypatch.setattr(builder, "build_graph", lambda g: pytest.fail("built despite the memory check"))
    code, out, err = _run(capsys, ["compile", spec, "--max-memory", "100K"])
    assert code == 2 and err.startswith("--max-memory: limit exceeded: building net (7 nodes) needs about")
    monkeypatch.setattr("archc.runtime.preflight.host_memory_available", lambda: 1000)
    code, out, err = _run(capsys, ["compile", spec])
    assert code == 2 and "more than the 1.00KB of memory available now" in err


def test_bad_size_is_a_usage_error(capsys, spec):
    code, out, err = _run(capsys, ["compile", spec, "--max-memory", "lots"])
    assert code == 2 and "is not a size" in err
