"""The front end never imports torch: `archc check` must stay instant and torch-free."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Make torch (and numpy-backed torchvision) unimportable, then run the front end.
BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision'):
            raise ImportError('torch is blocked in this test: ' + name)
sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], cwd=ROOT, capture_output=True, text=True)


def test_front_end_modules_import_without_torch():
    mods = ["archc.dsl.parser", "archc.dsl.loader", "archc.compiler", "archc.compiler.passes", "archc.compiler.summary",
            "archc.compiler.registry", "archc.compiler.render", "archc.compiler.graphhash", "archc.compiler.diff",
            "archc.runtime.cli", "archc.runtime.views", "archc.runtime.paths", "archc.runtime.memory"]
    r = _run(f"import importlib\nfor m in {mods!r}: importlib.import_module(m)\n"
             "import sys; assert not any(k.startswith('torch') for k in sys.modules)")
    assert r.returncode == 0, r.stderr


def test_summary_json_without_torch_matches_published_counts():
    """Issue 2's acceptance figures, computed with torch unimportable."""
    targets = {"resnet_uva": 272_378, "preact_resnet_uva": 272_250, "densenet_uva": 239_146,
               "googlenet_uva": 260_650, "resnet50": 25_557_032, "densenet121": 7_978_856}
    code = ("import json, sys\nfrom archc.runtime.cli import main\n"
            f"for name in {list(targets)!r}:\n"
            "    main(['summary', f'archs/{name}.arch', '--json'])\n")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    decoder, pos, found = json.JSONDecoder(), 0, []
    while pos < len(r.stdout.strip()):
        obj, end = decoder.raw_decode(r.stdout, pos)
        found.append(obj)
        pos = end + 1
    assert {o["name"]: o["params"] for o in found} == targets
    assert all({"params", "macs", "output_shape", "nodes", "rows"} <= set(o) for o in found)


def test_no_generic_top_level_imports():
    """Everything imports through the `archc` namespace: `dsl`, `compiler` and `runtime` are not
    installed as top-level names, where they would collide with other packages of those names."""
    import re
    bad = re.compile(r"^\s*(from|import)\s+(dsl|compiler|runtime)\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if ".venv" not in p.parts and bad.search(p.read_text())]
    assert offenders == []


def test_import_archc_loads_no_torch():
    r = _run("import archc\narchc.check('archs/resnet18.arch')\n"
             "import sys; assert not any(k.startswith('torch') for k in sys.modules)")
    assert r.returncode == 0, r.stderr


def test_check_summary_and_diff_run_without_torch_and_check_without_networkx():
    """networkx costs ~170 ms to import: only the graph hash (summary --json, diff) may load it."""
    code = ("import sys\nfrom archc.runtime.cli import main\n"
            "assert main(['check', 'resnet18']) == 0\n"
            "assert not any(k.split('.')[0] in ('networkx', 'rich') for k in sys.modules), 'check loaded networkx/rich'\n"
            "assert main(['summary', 'resnet18']) == 0 and main(['diff', 'resnet18', 'plain18']) == 0\n"
            "assert not any(k.startswith('torch') for k in sys.modules)")
    r = _run(code)
    assert r.returncode == 0, r.stderr
