"""Fuzzing the front end: whatever the input, archc ends in a checked graph or in a located
ArchError, quickly, and never in another exception, a RecursionError or a hang.

Four sources of input, each a hypothesis strategy:

* random token sequences drawn from the grammar's own terminals (dsl/grammar.lark);
* random byte strings (invalid UTF-8, NULs, control characters), written to files and
  loaded by path, as users do;
* mutations of every spec in archs/ (tokens deleted, duplicated, swapped or replaced;
  numbers replaced by 0, -1, huge values, floats and strings);
* random but grammatical programs (ops, groups, merges, loops, repetitions, conditions,
  labels, attributes, blocks), which get past the parser and exercise the elaborator.

The default run tries ~1,500 cases (< 1 minute on 2 cores); the ``slow`` tests, run with
``make test-slow`` (``pytest -m slow``), try over 20,000. The session prints one line such as
``fuzz: 1500 cases, slowest 0.12 s (mutation of resnet50.arch: ...)`` and writes it to
``fuzz_stats.txt`` in pytest's base temporary folder; tests/README.md records the figures.
"""
from __future__ import annotations

import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archc.compiler.ops import OPS as REGISTRY, callable_ops, merges
from archc.compiler.passes import compile_file
from archc.dsl.errors import ArchError
from archc.dsl.parser import _lark

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ROOT / "archs"
ARCH_FILES = sorted(ARCHS.glob("*.arch"))
CASE_BOUND_S = 10.0    # each input ends within this: 10x the slowest case on a loaded machine (0.8 s)
HANG_S = 60            # a case still running after this is a hang: SIGALRM turns it into a failure
LOCATED = re.compile(r"^(.+):(\d+):(\d+): [a-z ]+: ")

COMMON = dict(deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
# The default suite tries the same inputs every run, so that CI's verdict is the code's; the slow
# target draws new ones each run to keep exploring.
FAST = settings(**COMMON, max_examples=300, derandomize=True)
SLOW = settings(**COMMON, max_examples=5500, derandomize=False)


# ---- bookkeeping -----------------------------------------------------------------------------------
class Stats:
    def __init__(self):
        self.cases, self.graphs, self.slowest, self.slowest_case = 0, 0, 0.0, ""

    def line(self) -> str:
        return (f"fuzz: {self.cases} cases ({self.graphs} checked graphs, {self.cases - self.graphs} located errors), "
                f"slowest {self.slowest:.2f} s ({self.slowest_case})")


STATS = Stats()


@pytest.fixture(scope="session", autouse=True)
def _report(request, tmp_path_factory):
    yield
    if STATS.cases:
        line = STATS.line()
        (tmp_path_factory.getbasetemp() / "fuzz_stats.txt").write_text(line + "\n")
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\n" + line)


@contextmanager
def _no_hang(desc: str):
    def alarm(signum, frame):
        raise AssertionError(f"hang: still running after {HANG_S} s: {desc}")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_case(desc: str, *, path: Path | str | None = None, text: str | None = None):
    """Compile one input; it must end in a checked graph or a located ArchError, in time."""
    start = time.perf_counter()
    with _no_hang(desc):
        try:
            comp = compile_file(path, text)
            g = comp.graph
            assert g is not None and g.output_id in g and g.costs, desc
            STATS.graphs += 1
        except ArchError as e:
            message = str(e)
            assert LOCATED.match(message), f"{desc}: error without file:line:col:\n{message}"
            assert "Traceback" not in message
    elapsed = time.perf_counter() - start
    STATS.cases += 1
    if elapsed > STATS.slowest:
        STATS.slowest, STATS.slowest_case = elapsed, desc[:160].replace("\n", "\\n")
    assert elapsed < CASE_BOUND_S, f"{desc}: took {elapsed:.2f} s"


# ---- 1. random token sequences from the grammar's terminals -------------------------------------------
def _grammar_tokens() -> list[str]:
    literals = sorted({t.pattern.value for t in _lark().terminals if t.pattern.type == "str"})
    samples = {
        "NAME": ["x", "width", "conv", "relu", "bn", "linear", "flatten", "gap", "i", "unit", "range", "len", "in_"],
        "INT": ["0", "1", "3", "64", "1000000000", "99999999999999999999999"],
        "FLOAT": ["0.5", "1e9", ".5", "3.", "1e400"], "STRING": ['"same"', '"l{i}"', '""', '"{"', '"lib/x.arch"'],
        "MERGE": ["add", "concat", "dense_sum"], "COMP_OP": ["==", "!=", "<", ">="], "ADD_OP": ["+", "-"],
        "MUL_OP": ["*", "//", "/", "%"], "_POW": ["**"], "_SEP": ["\n", ";", "\n\n"], "COMMENT": ["# c\n"],
    }
    names = {t.name for t in _lark().terminals if t.pattern.type == "re"}
    missing = names - set(samples) - {"WS"}
    assert not missing, f"new regex terminals need samples here: {missing}"
    return literals + [s for v in samples.values() for s in v]


TOKENS = _grammar_tokens()
HEADERS = st.sampled_from(["", "arch a\ninput [3, 8, 8]\n", "arch a(n = 2, xs = [1, 2])\ninput [3, 16, 16]\n",
                           "arch a\ninput [10]\n"])
token_programs = st.tuples(HEADERS, st.lists(st.sampled_from(TOKENS), max_size=60),
                           st.sampled_from([" ", "", "\n"]))


def _tokens_case(case):
    header, toks, joiner = case
    text = header + joiner.join(toks)
    run_case(f"tokens: {text!r}", text=text)


@FAST
@given(token_programs)
def test_random_token_sequences(case):
    _tokens_case(case)


# ---- 2. random bytes, loaded by path --------------------------------------------------------------------
byte_inputs = st.tuples(st.sampled_from([b"", b"arch a\ninput [3, 8, 8]\n"]),
                        st.binary(max_size=400) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))


def _bytes_case(tmp_path: Path, case):
    head, body = case
    spec = tmp_path / "fuzz.arch"
    spec.write_bytes(head + body)
    run_case(f"bytes: {head + body!r}", path=spec)


@FAST
@given(case=byte_inputs)
def test_random_bytes(tmp_path, case):
    _bytes_case(tmp_path, case)


# ---- 3. mutations of every spec in archs/ ---------------------------------------------------------------
SPLIT = re.compile(r'"[^"\n]*"|[A-Za-z_][A-Za-z_0-9]*|\d+\.\d*(?:[eE][-+]?\d+)?|\d+|\*\*|//|==|!=|<=|>=|\s+|.')
NUMBER = re.compile(r"\d")
REPLACEMENTS = ["0", "-1", "10**9", "2**63", "99999999999999999999", "0.5", "1e400", '"x"', "[]", "true", "in"]
MUTATIONS = st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "swap", "number", "insert"]),
                               st.integers(0, 10 ** 6), st.integers(0, 10 ** 6),
                               st.sampled_from(REPLACEMENTS + TOKENS)), min_size=1, max_size=4)
mutation_cases = st.tuples(st.sampled_from(ARCH_FILES), MUTATIONS)


def _mutate(text: str, ops) -> tuple[str, str]:
    toks = SPLIT.findall(text)
    done = []
    for kind, i, j, new in ops:
        solid = [k for k, t in enumerate(toks) if not t.isspace()]
        if not solid:
            break
        a, b = solid[i % len(solid)], solid[j % len(solid)]
        if kind == "delete":
            done.append(f"delete {toks[a]!r}@{a}")
            toks[a] = ""
        elif kind == "duplicate":
            done.append(f"duplicate {toks[a]!r}@{a}")
            toks[a] = toks[a] + " " + toks[a]
        elif kind == "swap":
            done.append(f"swap {toks[a]!r}@{a} {toks[b]!r}@{b}")
            toks[a], toks[b] = toks[b], toks[a]
        elif kind == "number":
            nums = [k for k in solid if NUMBER.match(toks[k])]
            if nums:
                k = nums[i % len(nums)]
                done.append(f"number {toks[k]!r}@{k} -> {new!r}")
                toks[k] = new
        else:
            done.append(f"insert {new!r}@{a}")
            toks[a] = new + " " + toks[a]
    return "".join(toks), "; ".join(done)


def _mutation_case(monkeypatch, case):
    spec, ops = case
    text, done = _mutate(spec.read_text(), ops)
    monkeypatch.chdir(ARCHS)  # imports ("lib/densenet.arch") resolve from the spec's folder
    run_case(f"mutation of {spec.name}: {done}", path=spec.name, text=text)


def test_every_arch_compiles_unmutated(monkeypatch):
    """The mutation corpus is sound: each spec in archs/ compiles as it is."""
    for spec in ARCH_FILES:
        monkeypatch.chdir(ARCHS)
        run_case(f"unmutated {spec.name}", path=spec.name, text=spec.read_text())


@FAST
@given(case=mutation_cases)
def test_mutated_archs(monkeypatch, case):
    _mutation_case(monkeypatch, case)


# ---- 4. grammatical programs that reach the elaborator --------------------------------------------------
VALUES = st.sampled_from(["0", "1", "2", "3", "8", "16", "-1", "w", "n", "i", "in.c", "in.h", "in.c // 2", "2 * w",
                          "10**9", "1.5", '"same"', "true", "false", "[3, 3]", "[1, 2]", "xs", "xs[0]", "len(xs)",
                          "range(3)", "n > 1", "in", "[]"])
OPS = st.sampled_from([*sorted(callable_ops()), "unit", "unit2", "input", "nope"])  # every registered op
KEYS = st.sampled_from(sorted({a.name for op in REGISTRY.values() for a in op.args} | {"c", "s", "zz"}))  # every op argument, block parameters, a typo
ARG = VALUES | st.builds(lambda k, v: f"{k} = {v}", KEYS, VALUES)
CALL = st.builds(lambda op, args: f"{op}({', '.join(args)})" if args is not None else op,
                 OPS, st.none() | st.lists(ARG, max_size=3))


def _items(item):
    group = st.lists(item, max_size=4).map(lambda xs: "{ " + "; ".join(xs) + " }")
    branch = st.lists(item, min_size=1, max_size=3).map("; ".join)
    merge = st.builds(lambda kind, bs: kind + " {\n" + "\n".join(bs) + "\n}",
                      st.sampled_from([*merges(), "relu", "nope"]), st.lists(branch, max_size=3))
    loop = st.builds(lambda it, body: f"for i in {it} {{ {'; '.join(body)} }}",
                     st.sampled_from(["range(2)", "xs", "[1, 2]", "range(0)", "3", "range(n)"]), st.lists(item, max_size=3))
    simple = CALL | group
    return st.one_of(
        CALL, group, merge, loop,
        st.builds(lambda x, k: f"{x} * {k}", simple, st.sampled_from(["2", "0", "n", "(1 + 1)", "2.5", "-1", "xs"])),
        st.builds(lambda x, c: f"{x} if {c}", simple, st.sampled_from(["true", "false", "in.c > 8", "i == 0", "1"])),
        st.builds(lambda x, c, y: f"{x} if {c} else {y}", simple, st.sampled_from(["true", "n > 1"]), simple),
        st.builds(lambda lab, x: f"{lab}: {x}", st.sampled_from(["a", "b", "conv", '"l{i}"', '"l{w}"', "0", "output", '""']),
                  simple),
        st.builds(lambda x, a: f"{x} {a}", simple, st.sampled_from(["@checkpoint", "@drop_path(0.1)", "@drop_path(2)",
                                                                    "@checkpoint(false)", "@nope"])),
        st.builds(lambda v: f"let n = {v}", VALUES),
    )


ITEM = st.recursive(CALL, _items, max_leaves=25)
PROGRAM = st.builds(
    lambda header, blocks, items: header + blocks + "\n".join(items) + "\n",
    st.sampled_from(["arch g(w = 16, n = 2, xs = [1, 2])\ninput [3, 16, 16]\n",
                     "arch g(w = 8, n = 1, xs = [4])\ninput [3, 7, 7]\n", "arch g(w = 4, n = 3, xs = [])\ninput [12]\n"]),
    st.sampled_from(["", "block unit(c, s = 1) = { conv(c, 3, stride = s, pad = 1); bn; relu }\n",
                     "block unit(c) = add { identity\n { conv(in.c, 3, pad = 1); bn } }\nblock unit2 = unit(w)\n",
                     "block unit = unit\n"]),
    st.lists(ITEM, min_size=1, max_size=6))


@FAST
@given(text=PROGRAM)
def test_generated_programs(text):
    run_case(f"program: {text!r}", text=text)


# ---- the same, at length (make test-slow) -----------------------------------------------------------
@pytest.mark.slow
@SLOW
@given(token_programs)
def test_random_token_sequences_slow(case):
    _tokens_case(case)


@pytest.mark.slow
@SLOW
@given(case=byte_inputs)
def test_random_bytes_slow(tmp_path, case):
    _bytes_case(tmp_path, case)


@pytest.mark.slow
@SLOW
@given(case=mutation_cases)
def test_mutated_archs_slow(monkeypatch, case):
    _mutation_case(monkeypatch, case)


@pytest.mark.slow
@SLOW
@given(text=PROGRAM)
def test_generated_programs_slow(text):
    run_case(f"program: {text!r}", text=text)
