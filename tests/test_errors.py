"""Golden error messages: every malformed spec in tests/specs/bad/ fails the way a user should see.

Each ``NAME.arch`` has a reviewed ``NAME.expected`` holding the exact stderr of
``archc check tests/specs/bad/NAME.arch`` (run from the repository root, so paths are
relative). A first line ``# archc-args: ...`` adds command-line flags (``--set``,
``--max-depth`` ...). Regenerate after a deliberate message change with

    ARCHC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_errors.py

and review the diff: the goldens are the specification of what users read.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from archc.runtime.cli import main

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "specs" / "bad"
SPECS = sorted(BAD.glob("*.arch"))
UPDATE = os.environ.get("ARCHC_UPDATE_GOLDEN") == "1"
LOCATION = re.compile(r"^(\S+):(\d+):(\d+): [a-z ]+: ", re.M)


def _args(spec: Path) -> list[str]:
    first = spec.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return shlex.split(first.split("archc-args:", 1)[1]) if "archc-args:" in first else []


def _run(capsys, spec: Path) -> tuple[int, str]:
    rel = spec.relative_to(ROOT).as_posix()
    code = main(["check", rel, *_args(spec)])
    out = capsys.readouterr()
    assert out.out == "", f"nothing should reach stdout on an error: {out.out!r}"
    return code, out.err


def test_there_are_enough_bad_specs():
    assert len(SPECS) >= 35
    missing = [s.name for s in SPECS if not s.with_suffix(".expected").exists() and not UPDATE]
    assert not missing, f"specs without a golden .expected file: {missing}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_golden_message(spec: Path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = _run(capsys, spec)
    golden = spec.with_suffix(".expected")
    if UPDATE:
        golden.write_text(err)
    assert code == 2, err
    assert "Traceback" not in err
    first = err.splitlines()[0]
    if not first.startswith("--set: "):  # --set errors are about the command line, not a place in a file
        m = LOCATION.match(err)
        assert m, f"no file:line:col at the start of: {first}"
        assert int(m.group(2)) >= 1 and int(m.group(3)) >= 1
    assert err == golden.read_text(), f"message changed for {spec.name}; review, then ARCHC_UPDATE_GOLDEN=1"


# A few of the same through a real process: the installed entry point, exit status and stderr.
@pytest.mark.parametrize("name", ["syntax_unclosed_brace", "shape_add_mismatch", "import_cycle", "limit_power_tower"])
def test_golden_message_in_a_subprocess(name: str):
    spec = BAD / f"{name}.arch"
    r = subprocess.run([sys.executable, "-m", "archc", "check", spec.relative_to(ROOT).as_posix(), *_args(spec)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr == spec.with_suffix(".expected").read_text()


# ---- what the messages must say (beyond matching their goldens) ----------------------------------
def _err(capsys, monkeypatch, name: str) -> str:
    monkeypatch.chdir(ROOT)
    return _run(capsys, BAD / f"{name}.arch")[1]


@pytest.mark.parametrize("name,suggestion", [
    ("name_unknown_op", "did you mean `conv`?"),
    ("name_unknown_block", "did you mean `basic_unit`?"),
    ("name_unknown_argument", "did you mean `stride`?"),
    ("name_unknown_variable", "did you mean `width`?"),
    ("name_unknown_attribute", "did you mean `@checkpoint`?"),
    ("name_unknown_block_param", "did you mean `stride`?"),
    ("name_unknown_function", "did you mean `range`?"),
    ("set_unknown_key", "did you mean `width`?"),
])
def test_unknown_names_suggest_the_nearest(capsys, monkeypatch, name, suggestion):
    assert suggestion in _err(capsys, monkeypatch, name)


def test_add_mismatch_names_both_branches_and_proposes_a_projection(capsys, monkeypatch):
    err = _err(capsys, monkeypatch, "shape_add_mismatch")
    assert "branch 0" in err and "branch 1" in err
    assert "32×16×16" in err and "16×32×32" in err
    assert "replace branch 1 with the projection `{ conv(32, 1, stride = 2, bias = false); bn }`" in err


def test_concat_names_the_branch_that_downsampled(capsys, monkeypatch):
    err = _err(capsys, monkeypatch, "shape_concat_downsampled")
    assert "branch 2 (`conv_4`) is 16×16 while branches 0, 1 keep 32×32" in err
    assert "`maxpool` at line 8 downsampled 32×32 → 16×16 with stride 2" in err


def test_spatial_collapse_names_the_op_and_a_size_that_works(capsys, monkeypatch):
    err = _err(capsys, monkeypatch, "shape_spatial_collapse")
    assert "`maxpool`" in err and "an input height of at least 2" in err
    err = _err(capsys, monkeypatch, "shape_conv_collapse")
    assert "`conv`" in err and "at least 7" in err


@pytest.mark.parametrize("name,flag", [
    ("limit_repeat_count", "--max-nodes"), ("limit_conv_params", "--max-params"),
    ("limit_nested_groups", "--max-depth"), ("limit_nested_merges", "--max-depth"),
    ("limit_nested_lists", "--max-depth"), ("limit_nested_unary", "--max-depth"), ("limit_nested_blocks", "--max-depth"), ("import_chain_depth", "--max-depth"),
    ("limit_dense_sum_units", "--max-nodes"), ("limit_nested_loops", "--max-nodes"),
    ("limit_max_nodes_flag", "--max-nodes"), ("limit_max_params_flag", "--max-params"),
])
def test_limit_messages_name_their_flag(capsys, monkeypatch, name, flag):
    err = _err(capsys, monkeypatch, name)
    assert "limit exceeded" in err and flag in err


def test_carets_point_at_the_culprit(capsys, monkeypatch):
    """The caret line sits under the offending text, not merely somewhere on its line."""
    cases = {"name_unknown_argument": "strde", "name_unknown_variable": "widht", "syntax_bad_character": "$",
             "syntax_mismatched_bracket": "]", "type_float_kernel": "3.5", "name_unknown_block_param": "strid",
             "limit_repeat_count": "10**9", "syntax_two_items_one_line": "relu"}
    for name, culprit in cases.items():
        lines = _err(capsys, monkeypatch, name).splitlines()
        src, caret = lines[1][4:], lines[2][4:]
        start = caret.index("^")
        assert src[start:start + len(culprit)] == culprit, (name, src, caret)
        assert caret.count("^") == len(culprit), (name, caret)


def test_symlink_leaving_the_root_is_refused(tmp_path, capsys):
    """A symlink inside the spec's folder that points outside it is refused like `..`."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "blocks.arch").write_text("block unit(c) = relu\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / "lib.arch").symlink_to(outside / "blocks.arch")
    (root / "net.arch").write_text('import "lib.arch"\narch net\ninput [3, 8, 8]\nunit(3)\n')
    assert main(["check", str(root / "net.arch")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{root / 'net.arch'}:1:1: import error: import leaves the project root")
    assert "symlink" in err and "Traceback" not in err
    # the same file copied inside the root is fine
    (root / "lib.arch").unlink()
    (root / "lib.arch").write_text("block unit(c) = relu\n")
    assert main(["check", str(root / "net.arch")]) == 0


def test_symlinked_folder_inside_the_root_is_allowed(tmp_path, capsys):
    root = tmp_path / "project"
    (root / "real").mkdir(parents=True)
    (root / "real" / "blocks.arch").write_text("block unit(c) = relu\n")
    (root / "lib").symlink_to(root / "real")
    (root / "net.arch").write_text('import "lib/blocks.arch"\narch net\ninput [3, 8, 8]\nunit(3)\n')
    assert main(["check", str(root / "net.arch")]) == 0, capsys.readouterr().err
