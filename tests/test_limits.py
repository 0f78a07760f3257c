"""Resource bombs are refused at once, with a message that names the limit and its flag.

These are refusal guarantees, not benchmarks: the bound, measured around the whole CLI call with
``time.perf_counter``, is 10 s, 10x the slowest refusal on a loaded machine (the step budget
stops 400k loop turns in ~0.1 s; most refusals take milliseconds), where the bombs unrefused run
for hours. The steps themselves are what the messages name and the flags raise.
Each limit can be raised by its flag, and a spec just over a default passes with it raised.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from archc.compiler.evaluate import MAX_INT_BITS, MAX_LIST, MAX_STR
from archc.compiler.passes import compile_file
from archc.dsl.loader import MAX_FILE_BYTES
from archc.runtime.cli import main

HEADER = "arch net(width = 16)\ninput [3, 32, 32]\n"
BOUND_S = 10.0


@pytest.fixture(autouse=True)
def _warm():
    """Load (and cache) the parser once, so the first timed case does not pay for it."""
    compile_file(text=HEADER + "relu\n")


def _check(tmp_path: Path, capsys, body: str, *flags: str, header: str = HEADER) -> tuple[int, str, float]:
    spec = tmp_path / "bomb.arch"
    spec.write_text(header + body)
    start = time.perf_counter()
    code = main(["check", str(spec), *flags])
    elapsed = time.perf_counter() - start
    return code, capsys.readouterr().err, elapsed


BOMBS = {
    # name: (body, flags, words the message must contain)
    "repeat 10**9": ("relu * 10**9\n", (), ["limit exceeded", "node limit 1,000,000", "--max-nodes"]),
    "repeat of a block 600000": ("{ conv(width, 3, pad = 1); bn } * 600000\n", (),
                                 ["would build about 1,200,000 nodes", "--max-nodes"]),
    "for over a million values": ("for i in range(10**6) { relu }\n", (), ["would build about", "--max-nodes"]),
    "conv(10**8, 3)": ("conv(512, 3, pad = 1)\nconv(10**8, 3)\n", (), ["100,000,000,000 parameters", "--max-params"]),
    "linear(10**8) twice": ("flatten; linear(10**8); linear(10**8)\n", (), ["parameters", "--max-params"]),
    "2**2**2**2**2**2": ("let n = 2**2**2**2**2**2\nrelu\n", (), ["`**` result is too large", f"2**{MAX_INT_BITS}"]),
    "10**10**10": ("let n = 10**10**10\nrelu\n", (), ["too large"]),
    "[0] * 10**9": ("let z = [0] * 10**9\nrelu\n", (), ["list repetition is too long", f"{MAX_LIST:,}"]),
    "range(10**12) comprehension": ("let w = [i for i in range(10**12)]\nrelu\n", (), ["range of 1,000,000,000,000"]),
    "range(-2**63, 2**63)": ("let w = range(-2**62 * 2, 2**62 * 2 - 1)\nrelu\n", (), ["range is too long"]),
    "string * 10**6": ('let s = "ab" * 10**6\nrelu\n', (), ["list repetition is too long"]),
    "str of a long range": ("let s = str(range(10**5))\nrelu\n", (), [f"at most {MAX_STR:,}"]),
    "1e308 * 10": ("let x = 1e308 * 10\nrelu\n", (), ["infinite"]),
    "groups nested 150 deep": ("{" * 150 + "relu" + "}" * 150 + "\n", (), ["deeper than 100", "--max-depth"]),
    "groups nested 30000 deep": ("{" * 30_000 + "relu" + "}" * 30_000 + "\n", (), ["deeper than 100", "--max-depth"]),
    "lists nested 150 deep": ("let x = " + "[" * 150 + "1" + "]" * 150 + "\nrelu\n", (), ["--max-depth"]),
    "unary minus 300 deep": ("let x = " + "-" * 300 + "1\nrelu\n", (), ["deeper than 100", "--max-depth"]),
    "sum of 1000 terms": ("let x = 1" + " + 1" * 1000 + "\nrelu\n", (), ["deeper than 100", "--max-depth"]),
    "merges nested 150 deep": ("".join("add {\nidentity\n" for _ in range(150)) + "relu\n" + "}\n" * 150, (),
                               ["--max-depth"]),
    "blocks nested 150 deep": ("".join(f"block b{i} = b{i + 1}\n" for i in range(150)) + "block b150 = relu\nb0\n",
                               (), ["nesting is deeper than 100", "--max-depth"]),
    "dense_sum of 10**9 units": ("dense_sum { relu * 10**9 }\n", (), ["dense_sum", "--max-nodes"]),
    "dense_sum of 2000 units": ("dense_sum { { bn; relu } * 2000 }\n", (), ["4,000,000 nodes", "--max-nodes"]),
    # loops that build nothing still cost time: bounded by steps (4 per allowed node) ...
    "nested loops building nothing": ("for i in range(10**6) { for j in range(10**6) { } }\n", ("--max-nodes", "100000"),
                                      ["steps", "--max-nodes"]),
    "repetitions building nothing": ("{ { relu if false } * 9000 } * 9000\n", ("--max-nodes", "10000"),
                                     ["steps", "--max-nodes"]),
    # ... and expressions by evaluation work (10 per allowed node)
    "comprehension over comprehensions": ("let xs = range(10**6)\nlet y = [[0 for i in xs] for j in xs]\nrelu\n",
                                          ("--max-nodes", "100000"), ["steps to evaluate", "--max-nodes"]),
    "a loop re-evaluating a long list": ("for i in range(10**6) { let y = [0 for k in range(10**5)] }\n",
                                         ("--max-nodes", "100000"), ["steps to evaluate", "--max-nodes"]),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_is_refused_quickly(tmp_path, capsys, name):
    body, flags, words = BOMBS[name]
    code, err, elapsed = _check(tmp_path, capsys, body, *flags)
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith(f"{tmp_path / 'bomb.arch'}:"), err
    for w in words:
        assert w in err, (w, err)
    assert elapsed < BOUND_S, f"{name}: refused after {elapsed:.2f} s"


def test_long_import_chain_is_refused_and_the_flag_raises_it(tmp_path, capsys):
    n = 150
    for i in range(n):
        nxt = f'import "m{i + 1}.arch"\n' if i + 1 < n else ""
        (tmp_path / f"m{i}.arch").write_text(f"{nxt}block u{i}(c) = relu\n")
    spec = tmp_path / "net.arch"
    spec.write_text('import "m0.arch"\n' + HEADER + "u0(width)\n")
    start = time.perf_counter()
    assert main(["check", str(spec)]) == 2
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert "imports nest deeper than 100" in err and "--max-depth" in err
    assert elapsed < BOUND_S
    assert main(["check", str(spec), "--max-depth", "200"]) == 0, capsys.readouterr().err


def test_a_huge_file_is_refused_before_reading(tmp_path, capsys):
    spec = tmp_path / "huge.arch"
    spec.write_text(HEADER + "# padding\n" * (MAX_FILE_BYTES // 10 + 10))
    start = time.perf_counter()
    assert main(["check", str(spec)]) == 2
    assert time.perf_counter() - start < BOUND_S
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:1:1: limit exceeded:") and f"{MAX_FILE_BYTES:,} bytes" in err


def test_deep_parentheses_are_harmless(tmp_path, capsys):
    """Parentheses leave no trace in the AST, so 90 of them (under the bracket limit) compile."""
    code, err, elapsed = _check(tmp_path, capsys, "conv(" + "(" * 90 + "width" + ")" * 90 + ", 3)\n")
    assert code == 0, err
    assert elapsed < BOUND_S


# ---- every limit can be raised by its flag ------------------------------------------------------
JUST_OVER = {
    # flag: (body just over the default, raised flag value, what passes/fails)
    "--max-nodes": ("relu * 1000000\n", "1000010"),
    "--max-params": ("conv(512, 3, pad = 1)\nconv(30000000, 3)\n", str(2 * 10 ** 11)),
    "--max-depth": ("{" * 101 + "relu" + "}" * 101 + "\n", "120"),
}


@pytest.mark.parametrize("flag", ["--max-depth", "--max-params"])
def test_a_spec_just_over_the_default_passes_with_the_flag_raised(tmp_path, capsys, flag):
    body, raised = JUST_OVER[flag]
    code, err, _ = _check(tmp_path, capsys, body)
    assert code == 2 and flag in err, err
    code, err, _ = _check(tmp_path, capsys, body, flag, raised)
    assert code == 0, err


def test_max_nodes_just_over_the_default_is_refused_and_a_raised_flag_passes(tmp_path, capsys):
    """A million copies + the input node is one over the default, refused before building.
    Building a million nodes takes ~30 s, so the passing side is shown at a smaller scale:
    998 copies + input + output = 1,000 nodes fail at --max-nodes 999 and pass at 1000."""
    code, err, elapsed = _check(tmp_path, capsys, JUST_OVER["--max-nodes"][0])
    assert code == 2 and "--max-nodes" in err and elapsed < BOUND_S, err
    code, err, _ = _check(tmp_path, capsys, "relu * 998\n", "--max-nodes", "999")
    assert code == 2 and "--max-nodes" in err, err
    code, err, _ = _check(tmp_path, capsys, "relu * 998\n", "--max-nodes", "1000")
    assert code == 0, err


def test_step_and_work_budgets_follow_max_nodes(tmp_path, capsys):
    body = "for i in range(20000) { let k = i }\nrelu\n"
    code, err, _ = _check(tmp_path, capsys, body, "--max-nodes", "10")
    assert code == 2 and "steps" in err and "--max-nodes" in err, err
    code, err, _ = _check(tmp_path, capsys, body, "--max-nodes", "10000")
    assert code == 0, err


def test_limit_flags_reject_nonsense(tmp_path, capsys):
    spec = tmp_path / "ok.arch"
    spec.write_text(HEADER + "relu\n")
    for flag in ("--max-nodes", "--max-params", "--max-depth"):
        assert main(["check", str(spec), flag, "0"]) == 2
        assert main(["check", str(spec), flag, "many"]) == 2
        err = capsys.readouterr().err
        assert flag in err and "Traceback" not in err
