"""`archc compare` and `archc sweep`: static costs of several archs or of a parameter grid,
finished runs side by side (`--runs`), measured training throughput in an isolated child
process (slow tests), and the comparison plots (read back as geometry, not pixels)."""
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from archc.compiler.passes import compile_file
from archc.runtime.cli import main
from archc.runtime.compare import split_values

ROOT = Path(__file__).resolve().parents[1]

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


# ---- duplicates, bounds and escaping ---------------------------------------------------------
def test_sweep_flags_variants_that_compile_to_the_same_network(capsys):
    """resnet20's depth n gives (n - 2) // 6 blocks per stage: 20, 21 and 22 are one network."""
    rows = json.loads(_run(capsys, "sweep", str(ROOT / "archs/resnet20.arch"), "--set", "depth=20,21,22,26",
                           "--format", "json"))
    texts = [compile_file(ROOT / "archs/resnet20.arch", overrides={"depth": d}).graph.to_text().splitlines()[1:]
             for d in (20, 21, 22, 26)]  # the reference: the IR, node by node
    assert texts[0] == texts[1] == texts[2] != texts[3]
    assert [r.get("same_as") for r in rows] == [None, "depth=20", "depth=20", None]
    table = _run(capsys, "sweep", str(ROOT / "archs/resnet20.arch"), "--set", "depth=20,21")
    assert "same as" in table and "depth=20" in table


def test_compare_flags_two_files_of_one_network(specs, tmp_path, capsys):
    copy = tmp_path / "copy.arch"
    copy.write_text(DENSE.replace("arch dense(", "arch dense_copy("))
    rows = json.loads(_run(capsys, "compare", specs[1], str(copy), "--format", "json"))
    assert rows[1]["same_as"] == "dense" and "same_as" not in rows[0]


def test_sweep_grid_is_bounded_before_anything_is_compiled(specs, monkeypatch, capsys):
    import archc.compiler.passes as passes
    monkeypatch.setattr(passes, "compile_file", lambda *a, **k: pytest.fail("compiled a variant"))
    values = ",".join(map(str, range(1, 1001)))
    assert main(["sweep", specs[1], "--set", f"growth={values}", "--set", f"layers={values}"]) == 2
    err = capsys.readouterr().err
    assert "1,000,000 variants, more than --max-variants 500" in err and "1000 × 1000" in err


def test_sweep_shows_progress_on_stderr(specs, capsys):
    assert main(["sweep", specs[1], "--set", "growth=4,8"]) == 0
    assert "checking variants" in capsys.readouterr().err


MARKUP = """
arch markup(tag = "a", classes = 10)
input [3, 8, 8]
"[bold red]stem[/]": { conv(4, 3, pad = 1); relu }
head: { gap; flatten; linear(classes) }
"""


@pytest.mark.parametrize("fmt", ["table", "md"])
def test_user_text_is_escaped_in_tables(tmp_path, capsys, fmt):
    spec = tmp_path / "markup.arch"
    spec.write_text(MARKUP)
    value = '"[/x] | \x1b[31m"'  # rich markup, a pipe and an escape sequence
    out = _run(capsys, "compare", str(spec), "--set", f"tag={value}", "--format", fmt)
    assert "[/x]" in out and "?[31m" in out and "\x1b" not in out
    out = _run(capsys, "sweep", str(spec), "--set", f"tag={value},\"[bold]b\"", "--format", fmt)
    assert "[/x]" in out and "[bold]b" in out
    if fmt == "md":
        assert "\\|" in out  # a pipe in a value does not split the row


# ---- plots: geometry read back from the figure ---------------------------------------------
def _boxes(fig, ax):
    """Display-space boxes of the labels and of the markers (as squares around the discs)."""
    from matplotlib.transforms import Bbox
    renderer = fig.canvas.get_renderer()
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    coll = ax.collections[0]
    centres = ax.transData.transform(coll.get_offsets())
    radii = [math.sqrt(s / math.pi) * fig.dpi / 72 for s in coll.get_sizes()]
    return labels, [Bbox([[x - r, y - r], [x + r, y + r]]) for (x, y), r in zip(centres, radii)]


def test_compare_plot_labels_cover_no_bubble_and_no_other_label():
    from archc.runtime.compare_plot import rows_figure
    rows = [{"arch": name, "params": p, "macs": m, "train_memory_bytes": mem} for name, p, m, mem in (
        ("resnet_uva", 272_378, 40.81e6, 344.6e6), ("preact_resnet_uva", 272_250, 40.81e6, 360e6),
        ("densenet_uva", 239_146, 72.28e6, 1.82e9), ("googlenet_uva", 260_650, 79.64e6, 1.1e9))]
    fig = rows_figure(rows, 128)
    ax = fig.axes[0]
    labels, discs = _boxes(fig, ax)
    assert len(labels) == 4
    for i, a in enumerate(labels):
        assert not any(a.overlaps(d) for d in discs), ax.texts[i].get_text()
        assert not any(a.overlaps(b) for b in labels[i + 1:]), ax.texts[i].get_text()
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "training memory" and len(legend.get_texts()) >= 2
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert any(t.endswith("M") for t in ticks) and not any(t.startswith("0.0") for t in ticks)  # 40M, not 0.04 G


# ---- compare --runs ------------------------------------------------------------------------
def _run_folder(tmp_path, name: str, spec_text: str, summary: dict, batch: int = 64, sets: dict | None = None):
    """A run folder as `archc train` writes it (the files --runs reads), with a spec copy."""
    run = tmp_path / name
    (run / "spec").mkdir(parents=True)
    (run / "spec" / "net.arch").write_text(spec_text)
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.json").write_text(json.dumps({"arch": "net.arch", "batch_size": batch, "params": sets or {}}))
    (run / "run.json").write_text(json.dumps({"arch": summary.get("arch"), "copy": "spec/net.arch"}))
    return run


def test_compare_runs_reads_accuracy_and_costs_defensively(tmp_path, capsys):
    new = _run_folder(tmp_path, "dense-a", DENSE, {"arch": "dense", "test_acc": 0.61, "best_val_acc": 0.64,
                                                   "params": 1234, "macs": 5678, "images_per_s": 99.5,
                                                   "graph_hash": "ab" * 16}, sets={"growth": 8})
    old = _run_folder(tmp_path, "plain-old", PLAIN, {"arch": "plain", "best_test_acc": 0.5, "params": "many",
                                                      "macs": None, "device": 3})
    plot = tmp_path / "acc.png"
    rows = json.loads(_run(capsys, "compare", "--runs", str(new), str(old), "--format", "json", "--plot", str(plot)))
    assert [r["run"] for r in rows] == ["dense-a", "plain-old"]
    assert (rows[0]["test_acc"], rows[0]["best_val_acc"], rows[0]["graph_hash"]) == (0.61, 0.64, "ab" * 16)
    assert rows[1]["test_acc"] == 0.5  # an older summary.json's key
    assert rows[1]["params"] is None and rows[1]["macs"] is None and rows[1]["device"] is None  # wrong types: absent
    # the memory estimate comes from the run's own spec copy and --set values, at its batch size
    t = compile_file(str(new / "spec/net.arch"), overrides={"growth": 8}).graph.totals()
    assert rows[0]["train_memory_bytes"] == 4 * (3 * t.params + 64 * t.activations)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert (rows[0]["sets"], rows[1]["sets"]) == ("growth=8", None)  # what each was trained with
    table = _run(capsys, "compare", "--runs", str(new), str(old))
    assert "61.00%" in table and "50.00%" in table and "growth=8" in table


def test_compare_runs_refuses_what_is_not_a_finished_run(specs, tmp_path, capsys):
    assert main(["compare", "--runs", str(tmp_path)]) == 2
    assert "not a finished archc run" in capsys.readouterr().err
    run = _run_folder(tmp_path, "r", DENSE, {"test_acc": 0.5})
    assert main(["compare", "--runs", str(run), "--measure"]) == 2
    assert "--measure does not apply to --runs" in capsys.readouterr().err


# ---- measuring in a child process (slow: each child imports torch) ----------------------------
@pytest.mark.slow
def test_measure_reports_median_and_range_with_progress_and_plots(specs, tmp_path, capsys):
    plot = tmp_path / "cmp.png"
    rc = main(["compare", specs[1], "--measure", "--device", "cpu", "--steps", "1", "--rounds", "3",
               "--batch-size", "4", "--format", "json", "--plot", str(plot)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    [row] = json.loads(out)
    lo, hi = row["images_per_s_range"]
    assert len(row["rounds"]) == 3 and lo <= row["images_per_s"] <= hi and lo == min(row["rounds"])
    assert row["peak_bytes"] >= 0 and row["device"] == "cpu"
    assert "round 1/3" in err and "round 3/3" in err  # progress while measuring
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_failed_measurement_exits_2_with_the_childs_message(specs, capsys):
    from archc.runtime.measure import MeasureError, MeasureSpec, measure_in_child
    lines = []
    bad_limits = MeasureSpec(specs[1], (), {"bogus": 1}, 4, "cpu", 1, 1)  # a failure that is no ArchError
    with pytest.raises(MeasureError, match="failed: TypeError: .*bogus"):
        measure_in_child(bad_limits, lines.append)
    assert not any("Traceback" in line for line in lines)  # one line, not the child's traceback
    missing = MeasureSpec(specs[1] + ".gone", (), {"max_nodes": 10, "max_params": 10, "max_depth": 10}, 4, "cpu", 1, 1)
    with pytest.raises(MeasureError, match="failed: .*error"):
        measure_in_child(missing, lines.append)
    import torch
    if not torch.cuda.is_available():  # through the CLI: exit 2 and the child's message, no traceback
        assert main(["compare", specs[1], "--measure", "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "CUDA is not available" in err and "Traceback" not in err


SHADOW = "import pathlib; pathlib.Path({marker!r}).write_text('imported {name}')\n"


@pytest.mark.slow
def test_the_measuring_child_never_imports_from_the_working_folder(specs, tmp_path, monkeypatch, capsys):
    """Packages named like archc's and torch in the folder the user stands in, and PYTHONPATH
    pointing there, must not shadow the installed ones in the child (``python -I``)."""
    work, markers = tmp_path / "work", tmp_path / "markers"
    markers.mkdir()
    for name in ("runtime", "compiler", "dsl", "archc", "torch"):
        (work / name).mkdir(parents=True)
        (work / name / "__init__.py").write_text(SHADOW.format(marker=str(markers / name), name=name))
    monkeypatch.chdir(work)
    monkeypatch.setenv("PYTHONPATH", str(work))  # the child inherits both
    rc = main(["compare", specs[1], "--measure", "--device", "cpu", "--steps", "1", "--rounds", "1",
               "--batch-size", "2", "--format", "json"])
    out, err = capsys.readouterr()
    assert sorted(p.name for p in markers.iterdir()) == [], err
    assert rc == 0, err
    assert json.loads(out)[0]["images_per_s"] > 0
    # the marker files do get written when a plain `python` starts there: the test can fail
    subprocess.run([sys.executable, "-c", "import torch"], cwd=work, capture_output=True, timeout=60)
    assert (markers / "torch").exists()
