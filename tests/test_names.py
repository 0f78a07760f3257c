"""Specs by name: the working folder, then $ARCHC_PATH, then the bundled registry; imports search
the importing file's folder first, then the same path; `archc list` survives a broken file.

Each test runs the CLI in a fresh empty working folder (monkeypatch.chdir), so nothing resolves
by accident through the repository's own archs/.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archc.compiler.registry import entries
from archc.runtime.cli import main
from archc.runtime.views import _registry_row

ROOT = Path(__file__).resolve().parents[1]
TINY = "arch tiny(width = 8)\ninput [3, 16, 16]\nconv(width, 3, pad = 1); relu\ngap; flatten; linear(4)\n"
RESNET50 = "resnet50: 189 nodes, 25,557,032 params, 4.089 GMACs, output 1000"  # torchvision's count


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working folder and no ARCHC_PATH."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("ARCHC_PATH", raising=False)
    return work


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", ["resnet50", "resnet50.arch"])
def test_bundled_name_with_or_without_suffix(capsys, elsewhere, name):
    code, out, err = _run(capsys, ["check", name])
    assert (code, out.strip()) == (0, RESNET50), err


def test_working_folder_comes_first_then_archc_path(capsys, elsewhere, tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "resnet50.arch").write_text(TINY.replace("tiny", "from_path"))
    monkeypatch.setenv("ARCHC_PATH", os.pathsep.join([str(tmp_path / "missing"), str(extra)]))
    assert _run(capsys, ["check", "resnet50"])[1].startswith("from_path:")
    (elsewhere / "resnet50.arch").write_text(TINY.replace("tiny", "from_cwd"))
    assert _run(capsys, ["check", "resnet50"])[1].startswith("from_cwd:")


def test_a_folder_named_like_the_spec_is_skipped(capsys, elsewhere):
    """`archc train resnet50 --out resnet50` leaves a run folder of the spec's name."""
    (elsewhere / "resnet50").mkdir()
    assert _run(capsys, ["check", "resnet50"])[1].strip() == RESNET50


def test_unknown_name_says_where_it_looked_and_suggests(capsys, elsewhere):
    code, out, err = _run(capsys, ["check", "resnet5O"])
    assert code == 2 and "Traceback" not in err
    assert "no spec named 'resnet5O'" in err and "ARCHC_PATH" in err and "did you mean" in err and "resnet50" in err


def test_a_path_is_not_searched(capsys, elsewhere):
    """`./resnet50.arch` names a file here; it is missing, so the bundled one must not be used."""
    code, out, err = _run(capsys, ["check", "./resnet50.arch"])
    assert code == 2 and "does not exist" in err


def test_imports_fall_back_to_the_search_path(capsys, elsewhere, tmp_path, monkeypatch):
    """A user spec importing "lib/resnet.arch" it does not have gets the bundled library; a local
    lib/ of its own wins; ARCHC_PATH comes before the bundled one."""
    spec = "import \"lib/resnet.arch\"\narch mine\ninput [3, 32, 32]\nconv(64, 3); basic(64)\ngap; flatten\n"
    (elsewhere / "mine.arch").write_text(spec)
    code, out, err = _run(capsys, ["check", "mine"])
    assert code == 0, err
    assert out.startswith("mine: 13 nodes, 75,776 params")  # 3*64*9+64 + the bundled basic: 2*(64*64*9 + 2*64)
    extra = tmp_path / "extra"
    (extra / "lib").mkdir(parents=True)
    (extra / "lib" / "resnet.arch").write_text("block basic(c) = { relu }\n")
    monkeypatch.setenv("ARCHC_PATH", str(extra))
    # input, conv, then extra's basic: one relu, then gap, flatten, output
    assert _run(capsys, ["check", "mine"])[1].startswith("mine: 6 nodes")
    (elsewhere / "lib").mkdir()
    (elsewhere / "lib" / "resnet.arch").write_text("block basic(c) = { relu; relu }\n")
    assert _run(capsys, ["check", "mine"])[1].startswith("mine: 7 nodes")  # the local basic: two relus


def test_the_escape_rule_holds_for_relative_imports(capsys, elsewhere):
    """`..` still may not leave the main file's folder, even when the file exists out there."""
    (elsewhere / "sub").mkdir()
    (elsewhere / "lib.arch").write_text("block b = { relu }\n")
    (elsewhere / "sub" / "main.arch").write_text("import \"../lib.arch\"\narch m\ninput [3, 8, 8]\nb\n")
    code, out, err = _run(capsys, ["check", "sub/main.arch"])
    assert code == 2 and "import leaves the project root" in err


def test_list_survives_a_broken_file_and_archc_path_hides_bundled_names(capsys, elsewhere, tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "broken.arch").write_text("arch broken\ninput [3, 32, 32]\nconv(8, 3; relu\n")
    (extra / "tiny.arch").write_text(TINY)
    (extra / "resnet18.arch").write_text(TINY)
    monkeypatch.setenv("ARCHC_PATH", str(extra))
    code, out, err = _run(capsys, ["list"])
    assert code == 2
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "syntax error" in lines["broken"] and "broken.arch:3:" in lines["broken"]
    assert "25,557,032" in lines["resnet50"] and lines["resnet50"].endswith("bundled")
    assert "1 of" in err and "broken.arch" in err
    # the JSON rows of the same entries (the whole `list --json` runs in test_cli_errors.py)
    rows = {e.name: _registry_row(e) for e in entries() if not e.bundled}
    tiny = 8 * 3 * 9 + 8 + 8 * 4 + 4
    assert "syntax error" in rows["broken"]["error"] and rows["tiny"]["params"] == tiny
    assert rows["resnet18"]["params"] == tiny and set(rows) == {"broken", "tiny", "resnet18"}


@pytest.mark.slow
def test_python_dash_m_archc(tmp_path):
    r = subprocess.run([sys.executable, "-m", "archc", "check", "resnet50"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, RESNET50), r.stderr
    r = subprocess.run([sys.executable, "-m", "archc", "--version"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("archc, version ")
