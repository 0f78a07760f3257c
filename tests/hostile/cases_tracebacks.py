"""Issue 14, class 4: nothing a user can write ends in a Python traceback. (Batches and checkpoints damaged in
every field are cases_io's; these are the other places user input enters.)

* ``tracebacks: markup``: rich markup, mathtext and format fields in labels, string parameters, --set values and
  file and folder names, through every command that prints them (tables, plots, messages).
* ``tracebacks: module attributes``: labels and scopes named like nn.Module's own attributes (``training``,
  ``forward``, ``_modules``, ``__class__``...) through every command that builds the module.
* ``tracebacks: untrainable nets``: nets the training loop cannot feed or score (4-D output, 5 classes, a
  1-channel or 8x8 or vector input, no ops, bn(eps = -1), maxpool with dilation and ceil mode) through
  train, eval and compare --measure.
* ``tracebacks: data folders``: --data names that no folder can have (300 characters, a loop of links, under
  a file, empty) and folders whose batches are links to nowhere or in a loop, through train and eval.
* ``tracebacks: run files``: run.json and summary.json of the run folder damaged, a list, a FIFO, a folder,
  through --resume and compare --runs; the run must be refused before it trains, never after.
* ``tracebacks: output paths``: -o, --render -o and compare --plot at a FIFO, a folder, /dev/full, under /proc
  and /sys, under a file, a 300-character name; --out with a 300-character name.
* ``tracebacks: flags``: out-of-range and non-finite numbers for every numeric flag, --config files of every
  damaged kind, a 120 KB --set, an expression calling __import__.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from cases_loss import _finished
from kit import CPU, DATA, ENV, EVAL, RESUME, SPEC, base, chain, commands, file_at, heavy, inert, spec, special, tiny, train
from runner import Case

MARKUP = ["[bold red]x[/]", "[/]", "[link=file:///etc/passwd]x[/link]", "[red", "\\[x]", "[[x]]", ":warning:", "$x^2$",
          "$", "%s%d", "{0}{x}", "[/bold]", "<b>x</b>", "&amp;"]


def markup_cases() -> list[Case]:
    klass, cases = "tracebacks: markup", []
    plot = {"compare --plot": ("compare", SPEC, "--plot", "{tmp}/c.png")}
    for i, text in enumerate(MARKUP):
        for where, make in (("label", tiny(label=text)), ("default", tiny(tag=text))):
            for j, (cmd, argv) in enumerate({**commands(emits=False), **plot}.items()):
                cases.append(Case(f"{klass}/{text!r} as {where}/{cmd}", klass, argv, spec(make), ENV, expect=inert,
                                  slow=(2 * i + (where == "label") + j) % 9 != 0 or heavy(cmd)))
        for j, cmd in enumerate(("summary", "sweep", "compare", "train")):  # as a --set value
            cases.append(Case(f"{klass}/--set tag={text!r}/{cmd}", klass, (*commands()[cmd], "--set", f'tag="{text}"'),
                              spec(tiny()), ENV, expect=inert, slow=(i + j) % 4 != 0 or heavy(cmd) and i > 0))
        name = text.replace("/", "-")  # as a file and folder name: the spec, the run folder, the plot
        named = chain(spec(tiny(), f"{name}.arch"), lambda tmp, n=name: (tmp / "runs").mkdir())
        argvs = {"check": ("check", f"{{tmp}}/{name}.arch"), "summary": ("summary", f"{{tmp}}/{name}.arch"),
                 "compare --plot": ("compare", f"{{tmp}}/{name}.arch", "--plot", f"{{tmp}}/{name}.png"),
                 "train": train(f"{{tmp}}/{name}.arch")[:5] + (f"{{tmp}}/runs/{name}",) + train()[6:],
                 "eval --plot": ("eval", f"{{tmp}}/{name}.arch", "--checkpoint", "{tmp}/good.pt", "--data", DATA, *CPU,
                          "--plot", f"{{tmp}}/{name}.png")}
        for j, (cmd, argv) in enumerate(argvs.items()):
            cases.append(Case(f"{klass}/{text!r} in a file name/{cmd}", klass, argv, named, ENV, expect=inert,
                              slow=(i + j) % 5 != 0 or heavy(cmd) and i > 0))
    cases += _runs_with_markup(klass)
    return cases


def _runs_with_markup(klass: str) -> list[Case]:
    """compare --runs of a finished run whose folder, arch name and summary hold markup."""
    def setup(tmp: Path) -> None:
        _finished(tmp)
        summary = json.loads((tmp / "done" / "summary.json").read_text())
        summary.update(arch="[bold]x[/]", device="[/]$x$")
        (tmp / "done" / "summary.json").write_text(json.dumps(summary))
        (tmp / "done").rename(tmp / "[red]run[!]")
    return [Case(f"{klass}/a finished run's folder and summary/compare --runs{' ' + ' '.join(extra)}", klass,
                 ("compare", "--runs", "{tmp}/[red]run[!]", *extra), chain(base, setup), expect=inert)
            for extra in ((), ("--plot", "{tmp}/runs.png"), ("--format", "md"))]


ATTRIBUTES = ["training", "forward", "_modules", "_parameters", "__class__", "__init__", "__dict__", "parameters",
              "state_dict", "cuda", "to", "eval", "train", "apply", "type", "half", "register_buffer", "zero_grad",
              "children", "modules", "call_super_init", "dump_patches", "T_destination", "_version", "graph", "code",
              "meta", "self", "input", "output", "x", "torch", "nn", "F", "None", "True", "class", "lambda", "0", "1.5",
              "a.b", "a-b", "", " "]


def attribute_cases() -> list[Case]:
    klass, cases = "tracebacks: module attributes", []
    argvs = {cmd: commands()[cmd] for cmd in ("compile", "compile --emit python", "train", "eval", "summary")}
    argvs["compare --measure"] = ("compare", SPEC, "--measure", "--steps", "1", "--rounds", "1", "--batch-size", "4", *CPU)
    for i, name in enumerate(ATTRIBUTES):
        text = (f'arch tiny(width = 4, classes = 10)\ninput [3, 32, 32]\n\n"{name}": conv(width, 3, pad = 1)\n'
                f'"{name}_g": {{ "{name}": relu; gap }}\nflatten\n"{name}_l": linear(classes)\n')
        for j, (cmd, argv) in enumerate(argvs.items()):
            cases.append(Case(f"{klass}/{name!r}/{cmd}", klass, argv, spec(text), ENV, expect=inert,
                              slow=(i + j) % len(argvs) != 0 or heavy(cmd) and i > 1))
    return cases


UNTRAINABLE = {
    "4-D output": "conv(10, 3, pad = 1)", "5 classes": "gap; flatten; linear(5)",
    "1-channel input": ("input [1, 32, 32]", "gap; flatten; linear(10)"),
    "8x8 input with flatten": ("input [3, 8, 8]", "flatten; linear(10)"),
    "a vector input": ("input [3072]", "linear(10)"), "input only": ("input [3, 32, 32]", ""),
    "bn(eps = -1)": "bn(eps = -1); gap; flatten; linear(10)", "bn(momentum = 5)": "bn(momentum = 5); gap; flatten; linear(10)",
    "maxpool with dilation and ceil mode": "maxpool(3, stride = 2, dilation = 2, ceil = true); gap; flatten; linear(10)",
    "maxpool collapsing with ceil mode": "maxpool(31, stride = 31, ceil = true); flatten; linear(10)",
    "1000 classes": "gap; flatten; linear(1000)", "a 2-D output": "gap; flatten; linear(10); identity",
}


def _net(body) -> str:
    head, ops = body if isinstance(body, tuple) else ("input [3, 32, 32]", f"conv(4, 3, pad = 1); {body}")
    return f"arch tiny(width = 4, classes = 10)\n{head}\n{ops}\n"


def untrainable_cases() -> list[Case]:
    klass = "tracebacks: untrainable nets"
    argvs = {"train": train(), "eval": commands()["eval"], "compile": commands()["compile"],
             "compare --measure": ("compare", SPEC, "--measure", "--steps", "1", "--rounds", "1", "--batch-size", "4", *CPU),
             "train --resume": ("train", SPEC, "--out", "{tmp}/done", "--resume")}
    return [Case(f"{klass}/{what}/{cmd}", klass, argv, chain(spec(_net(body)), _finished), ENV, expect=inert,
                 slow=cmd == "compare --measure" or (i + j) % 2 == 1 or cmd == "train" and i % 3 != 0)
            for i, (what, body) in enumerate(UNTRAINABLE.items()) for j, (cmd, argv) in enumerate(argvs.items())]


LONG = "x" * 300


def _batch_links(kind: str):
    def make(tmp: Path) -> None:
        folder = tmp / "data" / "cifar-10-batches-py"
        for name in ("data_batch_1", "test_batch"):
            (folder / name).unlink()
        if kind == "to nowhere":
            (folder / "data_batch_1").symlink_to(tmp / "missing")
            (folder / "test_batch").symlink_to(tmp / "missing")
        else:  # a loop
            (folder / "data_batch_1").symlink_to(folder / "test_batch")
            (folder / "test_batch").symlink_to(folder / "data_batch_1")
    return make


def _loop(tmp: Path) -> None:
    (tmp / "loop").symlink_to(tmp / "loop")


def data_folder_cases() -> list[Case]:
    klass = "tracebacks: data folders"
    datas = {"a 300-character name": f"{{tmp}}/{LONG}", "a 300-character name inside": f"{{tmp}}/{LONG}/x",
             "a link to itself": "{tmp}/loop", "under a file": "{tmp}/good.pt/data", "an empty name": "",
             "a 5,000-character path": "{tmp}/" + "/".join(["y" * 200] * 25), "a NUL-free control name": "{tmp}/\x1b[2J",
             "cifar-10-batches-py as a file": "{tmp}/cf"}
    cases = []

    def cf(tmp):
        (tmp / "cf").mkdir()
        (tmp / "cf" / "cifar-10-batches-py").write_text("x")
    for i, (what, data) in enumerate(datas.items()):
        for j, (name, argv) in enumerate((("train", train()), ("eval", EVAL))):
            argv = tuple(data if a == DATA else a for a in argv)
            cases.append(Case(f"{klass}/--data {what}/{name}", klass, argv, chain(spec(tiny()), _loop, cf), ENV,
                              slow=(i + j) % 2 == 1))
    for kind in ("to nowhere", "in a loop"):
        for name, argv in (("train", train()), ("eval", EVAL)):
            cases.append(Case(f"{klass}/batches linked {kind}/{name}", klass, argv, chain(spec(tiny()), _batch_links(kind)),
                              ENV))
    return cases


RUN_FILES = {"damaged JSON": b"{\"epochs\": ", "a list": b"[1, 2]", "nested 100,000 deep": b"[" * 100_000,
             "not UTF-8": b"\xff\xfe", "a FIFO": special("fifo"), "a folder": special("folder"),
             "/dev/zero": special("/dev/zero"), "a dict of the wrong types": b'{"epochs": "two", "graph_hash": [1]}'}


def run_file_cases() -> list[Case]:
    klass, cases = "tracebacks: run files", []
    for name in ("run.json", "summary.json"):
        for what, content in RUN_FILES.items():
            unfinished = chain(base, _finished, lambda tmp: (tmp / "done" / "summary.json").unlink())
            argvs = {"--resume": (RESUME[:3] + ("{tmp}/done",) + RESUME[4:], unfinished),
                     "--resume --epochs 2": (RESUME[:3] + ("{tmp}/done", "--resume", "--epochs", "2", "--quiet"),
                                             chain(base, _finished)),
                     "compare --runs": (("compare", "--runs", "{tmp}/done"), chain(base, _finished))}
            for cmd, (argv, setup) in argvs.items():
                if name == "summary.json" and cmd == "--resume":
                    continue  # the unfinished run has none: see --epochs 2
                cases.append(Case(f"{klass}/{name} {what}/{cmd}", klass, argv, chain(setup, file_at(f"done/{name}", content)),
                                  expect=inert if cmd.startswith("compare") else None,  # compare shows what it can read
                                  slow=cmd.startswith("compare") and what not in ("a FIFO", "damaged JSON")))
    return cases


SPECIAL_OUT = {"a FIFO": "fifo", "a folder": "folder", "a link to /dev/full": "/dev/full"}
FIXED_OUT = {"under /proc": "/proc/archc-hostile/o{S}", "under /sys": "/sys/archc-hostile-o{S}",
             "under a file": "{tmp}/good.pt/o{S}", "a 300-character name": f"{{tmp}}/{LONG}{{S}}"}


def _targets(suffix: str) -> dict[str, tuple[str, object]]:
    """what -> (the path, a setup step making it), for an output ending in ``suffix``."""
    out = {what: ("{tmp}/o" + suffix, file_at("o" + suffix, special(kind))) for what, kind in SPECIAL_OUT.items()}
    out |= {what: (path.replace("{S}", suffix), lambda tmp: None) for what, path in FIXED_OUT.items()}
    if suffix != ".svg":  # --render -o NAME without a suffix writes NAME.svg: a new file, not a refusal
        out |= {"/dev/full": ("/dev/full", lambda tmp: None), "a link to itself": ("{tmp}/loop", _loop)}
    return out


def output_cases() -> list[Case]:
    klass, cases = "tracebacks: output paths", []
    for j, (job, suffix) in enumerate(((("--emit", "ir"), ".txt"), (("--emit", "python"), ".py"), (("--render",), ".svg"))):
        for i, (what, (path, make)) in enumerate(_targets(suffix).items()):
            cases.append(Case(f"{klass}/-o {what}/compile {' '.join(job)}", klass, ("compile", SPEC, *job, "-o", path),
                              chain(spec(tiny()), make), ENV, protect=("/dev/full",), slow=(i + j) % 3 != 0))
    for i, (what, (path, make)) in enumerate(_targets(".png").items()):  # matplotlib draws before the write fails
        cases.append(Case(f"{klass}/--plot {what}/compare", klass, ("compare", SPEC, "--plot", path),
                          chain(spec(tiny()), make), ENV, protect=("/dev/full",), slow=i % 3 != 0))
        cases.append(Case(f"{klass}/--plot {what}/compare --runs", klass, ("compare", "--runs", "{tmp}/done", "--plot", path),
                          chain(spec(tiny()), make, _finished), ENV, protect=("/dev/full",), slow=what != "a FIFO"))
    for what, out in {"a 300-character name": f"{{tmp}}/{LONG}", "a link to itself": "{tmp}/loop"}.items():
        argv = tuple(out if a == "{tmp}/run" else a for a in train())
        cases.append(Case(f"{klass}/--out {what}/train", klass, argv, chain(spec(tiny()), _loop), ENV))
    return cases


# --config files: (keys over a working config's, raw text after them); flags would override the keys
TOML = {"NaN milestones": ({"schedule": "'multistep'", "milestones": "[nan]"}, ""),
        "inf milestones": ({"schedule": "'multistep'", "milestones": "[inf, 0.5]"}, ""),
        "a huge seed": ({"seed": str(2**70)}, ""), "a 5,000-digit epochs": ({"epochs": "9" * 5000}, ""),
        "epochs = 0": ({"epochs": "0"}, ""), "an unknown key": ({"epoch": "3"}, ""),
        "a nested table": ({"a": "{b = " * 1000 + "1" + "}" * 1000}, ""), "a string for a number": ({"lr": "'fast'"}, ""),
        "lr = nan": ({"lr": "nan"}, ""), "a list for params": ({"params": "[1]"}, ""),
        "params with code": ({}, "[params]\ntag = \"__import__('os').system('touch PWNED')\""),
        "params with an unknown name": ({}, "[params]\nwidht = 8"), "not TOML": ({}, "= = ="),
        "an array 100,000 deep": ({"x": "[" * 100_000}, ""), "a bad size": ({"max_memory": "'-5GB'"}, ""),
        "nproc = 4": ({"nproc": "4"}, ""), "a batch of 10**12": ({"batch_size": str(10**12)}, ""),
        "out as a number": ({"out": "5"}, ""), "data of 5,000 characters": ({"data": f"'{'d' * 5000}'"}, ""),
        "device = 'tpu'": ({"device": "'tpu'"}, ""), "restarts out of range": ({"restarts": "[5, 1]"}, ""),
        "eval_every = 0": ({"eval_every": "0"}, ""), "lookahead = -1": ({"lookahead": "-1"}, "")}


def _toml(keys: dict, tail: str):
    def make(path: Path, marker: str) -> None:
        base = {"data": f"'{path.parent / 'data'}'", "out": f"'{path.parent / 'run'}'", "epochs": "1", "batch_size": "50",
                "val_split": "0", "device": "'cpu'", "quiet": "true"}
        path.write_text("\n".join(f"{k} = {v}" for k, v in {**base, **keys}.items()) + "\n" + tail + "\n")
    return make


FLAGS = {"--seed 2**70": ("--seed", str(2**70)), "--seed -1": ("--seed", "-1"), "--nproc 4": ("--nproc", "4"),
         "--nproc 0": ("--nproc", "0"), "--epochs 0": ("--epochs", "0"), "--epochs 10**20": ("--epochs", str(10**20)),
         "--batch-size 0": ("--batch-size", "0"), "--batch-size 10**12": ("--batch-size", str(10**12)),
         "--lr nan": ("--lr", "nan"), "--lr inf": ("--lr", "inf"), "--lr -1": ("--lr", "-1"),
         "--label-smoothing 2": ("--label-smoothing", "2"), "--val-split nan": ("--val-split", "nan"),
         "--val-split 1": ("--val-split", "1"), "--weight-decay -inf": ("--weight-decay", "-inf"),
         "--max-memory abc": ("--max-memory", "abc"), "--max-memory -5GB": ("--max-memory", "-5GB"),
         "--max-memory 1e400": ("--max-memory", "1e400"), "--max-memory 0": ("--max-memory", "0"),
         "--config /dev/zero": ("--config", "/dev/zero"), "--config a folder": ("--config", "{tmp}/data"),
         "--config a FIFO": ("--config", "{tmp}/fifo.toml"), "--set a 120 KB string": ("--set", 'tag="' + "x" * 120_000 + '"'),
         "--set __import__": ("--set", "tag=__import__('os').system('touch {tmp}/PWNED')"),
         "--set 5,000 digits": ("--set", "width=" + "9" * 5000), "--set nested 1,000 deep": ("--set", "width=" + "[" * 1000)}
OTHER_FLAGS = {"summary --depth 10**20": ("summary", SPEC, "--depth", str(10**20)),
               "check --max-nodes 10**30": ("check", SPEC, "--max-nodes", str(10**30)),
               "check --max-depth 10**30": ("check", SPEC, "--max-depth", str(10**30)),
               "compile --render --dpi 10**9": ("compile", SPEC, "--render", "--dpi", str(10**9), "-o", "{tmp}/g.png"),
               "compile --render --depth 10**20": ("compile", SPEC, "--render", "--depth", str(10**20), "-o", "{tmp}/g.svg"),
               "compile --weights torchvision:nonexistent": ("compile", SPEC, "--weights", "torchvision:nonexistent"),
               "compile --weights ../../etc/passwd": ("compile", SPEC, "--weights", "../../etc/passwd"),
               "compile --weights torchvision:resnet18:[red]": ("compile", SPEC, "--weights", "torchvision:resnet18:[red]"),
               "compare --steps 10**9": ("compare", SPEC, "--measure", "--steps", str(10**9)),
               "compare --batch-size 10**12": ("compare", SPEC, "--batch-size", str(10**12)),
               "compare --measure --batch-size 10**12": ("compare", SPEC, "--measure", "--batch-size", str(10**12), *CPU),
               "sweep --max-variants 0": ("sweep", SPEC, "--max-variants", "0"),
               "sweep --batch-size 10**30": ("sweep", SPEC, "--batch-size", str(10**30)),
               "eval --max-memory 1": ("eval", SPEC, "--checkpoint", "{tmp}/good.pt", "--data", DATA, "--max-memory", "1"),
               "diff --depth 10**20": ("diff", SPEC, SPEC, "--depth", str(10**20))}


def flag_cases() -> list[Case]:
    klass, cases = "tracebacks: flags", []

    def fifo(tmp):
        os.mkfifo(tmp / "fifo.toml")
    for i, (what, flag) in enumerate(FLAGS.items()):
        cases.append(Case(f"{klass}/{what}/train", klass, (*train(), *flag), chain(spec(tiny()), fifo), ENV, timeout=60,
                          slow=i % 2 == 1))
    for i, (what, (keys, tail)) in enumerate(TOML.items()):
        cases.append(Case(f"{klass}/--config with {what}/train", klass, ("train", SPEC, "--config", "{tmp}/c.toml"),
                          chain(spec(tiny()), file_at("c.toml", _toml(keys, tail))), ENV, slow=i % 2 == 1))
    for what, argv in OTHER_FLAGS.items():
        cases.append(Case(f"{klass}/{what}", klass, argv, spec(tiny()), ENV, expect=inert))
    return cases


def cases() -> list[Case]:
    return [*markup_cases(), *attribute_cases(), *untrainable_cases(), *data_folder_cases(), *run_file_cases(),
            *output_cases(), *flag_cases()]
