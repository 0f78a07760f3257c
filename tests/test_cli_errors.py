"""Every read-only CLI command fails cleanly on bad files and flags: a message, exit code 2,
and no traceback.

Commands: ``check``, ``summary``, ``compile --emit ir`` (and ``--emit ast``, which takes
another path through the loader), ``diff`` (the file under test as B), and ``list``. Training commands are tested elsewhere.

"Unreadable" inputs: the tests run as root, for whom ``chmod 000`` does not stop reading,
so that case is skipped under root. What a user can really hand archc instead, and what
is tested here: a FIFO (reading it would block forever: archc refuses anything that is
not a regular file), a character device (``/dev/zero``: endless), a file that is not UTF-8,
an empty file, and a directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archc.runtime.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = "arch net(width = 16, blocks = [1, 2])\ninput [3, 32, 32]\nconv(width, 3, pad = 1); bn; relu\ngap; flatten; linear(10)\n"
COMMANDS = {
    "check": ["check"],
    "summary": ["summary"],
    "summary --json": ["summary", "--json"],
    "compile --emit ir": ["compile", "--emit", "ir"],
    "compile --emit ast": ["compile", "--emit", "ast"],
    "diff": ["diff", str(ROOT / "archs" / "resnet20.arch")],  # the file under test is B
}


def _run(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _fails_cleanly(capsys, argv, *words) -> str:
    code, out, err = _run(capsys, argv)
    assert code == 2, (argv, code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert err.strip(), "an error must say something on stderr"
    for w in words:
        assert w in err, (w, err)
    return err


@pytest.fixture
def good(tmp_path) -> Path:
    spec = tmp_path / "net.arch"
    spec.write_text(GOOD)
    return spec


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_good_spec_works(capsys, good, cmd):
    code, out, err = _run(capsys, [*COMMANDS[cmd], str(good)])
    assert code == 0, err
    assert out


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_missing_file(capsys, tmp_path, cmd):
    _fails_cleanly(capsys, [*COMMANDS[cmd], str(tmp_path / "nope.arch")], "does not exist")


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_directory(capsys, tmp_path, cmd):
    _fails_cleanly(capsys, [*COMMANDS[cmd], str(tmp_path)], "is a directory")


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_fifo_is_refused_without_blocking(capsys, tmp_path, cmd):
    fifo = tmp_path / "pipe.arch"
    os.mkfifo(fifo)
    err = _fails_cleanly(capsys, [*COMMANDS[cmd], str(fifo)], "is not a regular file")
    assert err.startswith(f"{fifo}:1:1: ")


@pytest.mark.parametrize("cmd", ["check", "compile --emit ast"])
def test_character_device_is_refused(capsys, cmd):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    _fails_cleanly(capsys, [*COMMANDS[cmd], "/dev/zero"], "is not a regular file")


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_not_utf8(capsys, tmp_path, cmd):
    spec = tmp_path / "latin1.arch"
    spec.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    err = _fails_cleanly(capsys, [*COMMANDS[cmd], str(spec)], "not valid UTF-8", "byte 0xe9")
    assert err.startswith(f"{spec}:5:6: ")


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_empty_file(capsys, tmp_path, cmd):
    spec = tmp_path / "empty.arch"
    spec.write_text("")
    code, out, err = _run(capsys, [*COMMANDS[cmd], str(spec)])
    if cmd == "compile --emit ast":  # an empty module is a valid AST
        assert code == 0, err
        return
    assert code == 2 and "no `arch` header" in err and "Traceback" not in err, err
    assert err.startswith(f"{spec}:1:1: ")


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_unreadable_file(capsys, tmp_path, cmd):
    spec = tmp_path / "secret.arch"
    spec.write_text(GOOD)
    spec.chmod(0)
    try:
        if os.access(spec, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading (FIFO and UTF-8 cases cover this)")
        _fails_cleanly(capsys, [*COMMANDS[cmd], str(spec)], "not readable")
    finally:
        spec.chmod(0o644)


SETS = {
    "unknown key": (["--set", "widht=32"], ["has no parameter `widht`", "did you mean `width`?"]),
    "wrong type": (["--set", "width=[16]"], ["has the wrong type", "int (default 16)"]),
    "wrong type for a list": (["--set", "blocks=3"], ["has the wrong type", "list (default"]),
    "missing =": (["--set", "width"], ["is not NAME=VALUE"]),
    "empty name": (["--set", "=3"], ["is not NAME=VALUE"]),
    "not a value": (["--set", "width=16+"], ["not a value"]),
    "empty value": (["--set", "width="], ["not a value"]),
    "unknown name in value": (["--set", "width=w"], ["not a value", "unknown name `w`"]),
    "limit in value": (["--set", "width=2**2**2**2**2**2"], ["not a value", "too large"]),
    "deep value": (["--set", "width=" + "[" * 300 + "]" * 300], ["not a value"]),
}


@pytest.mark.parametrize("cmd", list(COMMANDS)[:4])  # --emit ast does not evaluate parameters
@pytest.mark.parametrize("case", list(SETS))
def test_bad_set(capsys, good, cmd, case):
    flags, words = SETS[case]
    err = _fails_cleanly(capsys, [*COMMANDS[cmd], str(good), *flags], *words)
    assert err.startswith("--set: usage error: ")


@pytest.mark.parametrize("flags", [["--max-nodes", "0"], ["--max-depth", "x"], ["--bogus"], ["--set"]])
def test_bad_flags(capsys, good, flags):
    _fails_cleanly(capsys, ["check", str(good), *flags])


def test_list_rejects_arguments_and_unknown_options(capsys):
    _fails_cleanly(capsys, ["list", "extra"], "unexpected extra argument")
    _fails_cleanly(capsys, ["list", "--bogus"], "No such option")


def test_unknown_command(capsys):
    _fails_cleanly(capsys, ["chek", "x.arch"], "No such command")


def test_list_works(capsys):
    code, out, err = _run(capsys, ["list", "--json"])
    assert code == 0, err
    assert '"name"' in out


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    """The real process: exit status 2, the message on stderr, nothing on stdout."""
    fifo = tmp_path / "pipe.arch"
    os.mkfifo(fifo)
    for argv in (["check", str(tmp_path / "nope.arch")], ["check", str(fifo)],
                 ["summary", str(tmp_path)], ["compile", "--emit", "ir", str(fifo)]):
        r = subprocess.run([sys.executable, "-m", "archc", *argv], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stdout == "" and r.stderr and "Traceback" not in r.stderr
