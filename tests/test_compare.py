"""`archc compare` and `archc sweep`: static costs of several archs or of a parameter grid,
measured training throughput in a child process, and the comparison plot."""
import csv
import io
import json

import pytest

from archc.compiler.passes import compile_file
from archc.runtime.cli import main
from archc.runtime.compare import split_values

PLAIN = """
arch plain(width = 8, classes = 10)
input [3, 16, 16]
stem: { conv(width, 3, pad = 1, bias = false); bn; relu }
body: { conv(2 * width, 3, stride = 2, pad = 1, bias = false); bn; relu }
head: { gap; flatten; linear(classes) }
"""

DENSE = """
arch dense(growth = 4, layers = 2, classes = 10)
input [3, 16, 16]
block layer(k) = concat {
    identity
    { bn; relu; conv(k, 3, pad = 1, bias = false) }
}
stem: conv(8, 3, pad = 1, bias = false)
block1: { for i in range(layers) { "layer{i}": layer(growth) } }
head: { bn; relu; gap; flatten; linear(classes) }
"""


@pytest.fixture
def specs(tmp_path):
    paths = []
    for name, text in (("plain", PLAIN), ("dense", DENSE)):
        (tmp_path / f"{name}.arch").write_text(text)
        paths.append(str(tmp_path / f"{name}.arch"))
    return paths


def _run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def test_compare_json_has_params_macs_and_the_memory_formula(specs, capsys):
    rows = json.loads(_run(capsys, "compare", *specs, "--batch-size", "32", "--format", "json"))
    assert [r["arch"] for r in rows] == ["plain", "dense"]
    for row, path in zip(rows, specs):
        t = compile_file(path).graph.totals()
        assert (row["params"], row["macs"]) == (t.params, t.macs)
        assert row["train_memory_bytes"] == 4 * (3 * t.params + 32 * t.activations)


def test_compare_table_md_and_csv(specs, capsys):
    table = _run(capsys, "compare", *specs)
    assert "plain" in table and "dense" in table and "train mem @128" in table
    md = _run(capsys, "compare", *specs, "--format", "md").splitlines()
    assert md[0].startswith("| arch |") and md[1].startswith("|---") and len(md) == 4
    rows = list(csv.DictReader(io.StringIO(_run(capsys, "compare", *specs, "--format", "csv"))))
    assert [r["arch"] for r in rows] == ["plain", "dense"] and rows[0]["params"].isdigit()


def test_set_applies_to_the_archs_that_have_the_parameter(specs, capsys):
    rows = json.loads(_run(capsys, "compare", *specs, "--set", "growth=8", "--format", "json"))
    assert [r["arch"] for r in rows] == ["plain", "dense growth=8"]
    assert main(["compare", *specs, "--set", "groth=8"]) == 2
    assert "none of these archs has a parameter `groth`" in capsys.readouterr().err


def test_measure_on_cpu_and_plot(specs, tmp_path, capsys):
    pytest.importorskip("torch")
    plot = tmp_path / "cmp.png"
    # One arch: each measurement is a fresh process that imports torch (seconds on a small CPU).
    [row] = json.loads(_run(capsys, "compare", specs[1], "--measure", "--device", "cpu", "--steps", "2",
                            "--batch-size", "4", "--format", "json", "--plot", str(plot)))
    assert "error" not in row, row
    assert row["images_per_s"] > 0 and row["peak_bytes"] >= 0 and row["device"] == "cpu"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_plot_without_measuring(specs, tmp_path, capsys):
    _run(capsys, "compare", *specs, "--plot", str(tmp_path / "static.png"))
    assert (tmp_path / "static.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_is_the_cartesian_grid(specs, capsys):
    rows = json.loads(_run(capsys, "sweep", specs[1], "--set", "growth=4,8,12", "--set", "layers=1,3",
                           "--format", "json"))
    assert [(r["growth"], r["layers"]) for r in rows] == [(g, n) for g in (4, 8, 12) for n in (1, 3)]
    assert rows[-1]["params"] == compile_file(specs[1], overrides={"growth": 12, "layers": 3}).graph.totals().params


def test_sweep_lists_failing_variants_and_rejects_unknown_parameters(specs, capsys):
    rows = json.loads(_run(capsys, "sweep", specs[0], "--set", "width=8,0", "--format", "json"))
    assert "params" in rows[0] and "error" in rows[1]
    assert main(["sweep", specs[0], "--set", "widht=8,16"]) == 2


def test_split_values_keeps_lists_and_strings_whole():
    assert split_values("12,24") == ["12", "24"]
    assert split_values("[6,12],[6, 24]") == ["[6,12]", "[6, 24]"]
    assert split_values('"a,b",3') == ['"a,b"', "3"]
