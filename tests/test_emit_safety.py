"""No spec text becomes code: hostile strings in every place a spec puts text (arch parameters,
lists of them, labels built from them, block arguments) either are refused with an ArchError
or stay data, in the built model (torch.fx execs its generated code) and in ``--emit python``.

The emitted module is parsed with ``ast``: no identifier of the payload may appear outside a
string constant; then it is imported and built in a fresh interpreter that must not create the
payload's marker file. (Issue 14, class "emitted Python runs spec-controlled code".)
"""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archc
from archc.compiler.builder import emit_python

SPEC = """arch t(tag = "x", tags = ["a", "b"], k = 1)
input [3, 8, 8]
block unit(t) "a block" = { conv(4, 1); relu }
"{tag}": conv(4, 1) if LABELS
"{tags[0]}": unit(tag) if LABELS
u: unit(tag)
mark: { relu @checkpoint; identity }
"""  # with LABELS false the text is only data (the arch's parameters: docstring, IR header)
PIECES = ['"""', "'''", '"', "'", "\\", "\n", "\u2028", "\x00", "\r", ")", "(", ":", ";", "#", " ", "{", "}",
          "__import__", "os", "system", "getattr", "self", "x", "-", "a"]
ATTACKS = ['""" + {call} + """', "''' ; {call} ; '''", '"); {call}; ("', "\\n{call}\\n", "a(self): {call}; x",
           '")\n{call}\n#', "{call}", "\u2028{call}", "\x00{call}\\", '"""\\"""{call}']


def payload(marker) -> st.SearchStrategy:
    """Text that would run `touch MARKER` if it reached code, wrapped in quote/escape noise."""
    call = f"__import__('os').system('touch {marker}')"
    noise = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
    return st.builds(lambda a, b, c: a + b.replace("{call}", call) + c, noise, st.sampled_from(ATTACKS), noise)


def identifiers(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
           {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def emitted_or_refused(text: str, where: str, labels: bool, folder) -> str | None:
    """The emitted module's path for this case, or None when the spec refused the text (an ArchError,
    and only where the text names a module). Building in-process runs fx's generated code too."""
    value = text if where == "tag" else [text, "b"]
    spec = SPEC.replace("LABELS", "true" if labels else "false")
    try:
        g = archc.check(spec, **{where: value})
        archc.build(spec, **{where: value})
    except archc.ArchError:
        assert labels
        return None
    src = emit_python(g)
    assert not {"__import__", "system"} & identifiers(ast.parse(src)), "payload text reached the code"
    path = folder / f"emitted_{len(list(folder.glob('emitted_*')))}.py"
    path.write_text(src)
    return str(path)


def import_and_build(paths: list[str]) -> None:
    """Import each emitted module and call its build() in one fresh, isolated interpreter."""
    code = "import runpy, sys\nfor p in sys.argv[1:]: runpy.run_path(p)['build']()"
    run = subprocess.run([sys.executable, "-I", "-c", code, *paths], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]


def test_every_attack_in_every_place_stays_data(tmp_path):
    marker = tmp_path / "pwned"
    call = f"__import__('os').system('touch {marker}')"
    cases = [(a.replace("{call}", call), where, labels)
             for a in ATTACKS for where in ("tag", "tags") for labels in (False, True)]
    paths = [p for case in cases if (p := emitted_or_refused(*case, tmp_path))]
    assert len(paths) >= len(ATTACKS) * 2  # the data-only cases all reach --emit python
    import_and_build(paths)
    assert not marker.exists()


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_text_never_becomes_code_slow(tmp_path, data):
    marker = tmp_path / "pwned"
    text = data.draw(payload(marker))
    path = emitted_or_refused(text, data.draw(st.sampled_from(["tag", "tags"])), data.draw(st.booleans()), tmp_path)
    if path:
        import_and_build([path])
    assert not marker.exists()
