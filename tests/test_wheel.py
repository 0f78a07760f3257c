"""A built wheel (not the editable install) works from an empty folder: the registry ships inside
the package, every subpackage is in it, and the bundled names resolve.

Fast by design: the wheel is installed with --no-deps into a target folder that is put first on
PYTHONPATH, so torch and the other dependencies come from this venv instead of being reinstalled.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", "tests", "bench", "examples", "build", ".git"}  # folders that are not the package


def _packages_in_tree() -> set[str]:
    found = {"archc"}
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts and rel.parts[0] not in SKIP and not any(p.endswith(".egg-info") for p in rel.parts):
            found.add(".".join(["archc", *rel.parts]))
    return found


@pytest.mark.slow
def test_wheel_ships_the_registry_and_runs_from_an_empty_folder(tmp_path):
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    # Built from a copy: setuptools leaves build/ in the source folder, and a stale build/ from an
    # earlier run would ship files that the tree no longer has.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*SKIP, "*.egg-info", "__pycache__",
                                                             "runs", "out", ".pytest_cache", ".hypothesis"))
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("archc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.endswith(".arch"))
    in_tree = sorted("archc/" + str(p.relative_to(ROOT)) for p in (ROOT / "archs").rglob("*.arch"))
    assert shipped == in_tree and len(shipped) > 30
    packages = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("__init__.py")}
    assert packages == _packages_in_tree()  # a subpackage missing from pyproject's list fails here

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("ARCHC_PATH", None)

    def archc(*argv):
        r = subprocess.run([sys.executable, "-m", "archc", *argv], cwd=empty, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, (argv, r.stderr)
        return r.stdout

    r = subprocess.run([sys.executable, "-c", "import archc; print(archc.__file__)"], cwd=empty, env=env,
                       capture_output=True, text=True, check=True)
    assert r.stdout.startswith(str(site))  # the wheel, not this checkout
    listing = archc("list")
    assert "resnet50" in listing and "25,557,032" in listing and listing.count("bundled") == len(
        [n for n in shipped if "/lib/" not in n])
    assert archc("check", "resnet50").strip() == "resnet50: 189 nodes, 25,557,032 params, 4.089 GMACs, output 1000"
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed: the --render step cannot run")
    archc("compile", "densenet121.arch", "--render")
    assert (empty / "densenet121.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
