"""Issue 14, class 5: nothing silently wrong or unreadable. (An empty cached weights file is cases_io's
``weights: damaged torch file/empty``.)

* ``unclear: terminal control``: ESC sequences, bidi overrides, zero-width and line-separator characters in
  labels, string parameters and file names, through every command that prints a table or a message: nothing
  unsafe reaches the terminal (``kit.UNSAFE``). Stage dumps (--emit) are left out: to a pipe they are the
  exact text, on a terminal they are escaped too.
* ``unclear: unbounded messages``: a 60 KB line, a 10,000-character name, a 100 KB --set: the message stays
  under MAX_STDERR characters.
* ``unclear: line endings``: CR-only, CRLF, mixed and U+2028 line ends: parsed as lines, or refused with a
  located message.
* ``unclear: values torch would take``: a NUL in a block argument drawn by --render, bn(momentum = 5),
  dropout(1.5), conv(0, 3), negative and zero sizes: refused at the spec, never a silently wrong module.
* ``unclear: search path``: one broken spec in an $ARCHC_PATH folder (syntax error, FIFO, folder, not UTF-8,
  1 MB, a link loop, an ESC in its name): `archc list` lists the rest and the broken one with its error, exits
  2; `archc check NAME` of a good spec there still works.
"""
from __future__ import annotations

from pathlib import Path

from kit import ENV, SPEC, UNSAFE, chain, commands, inert, refused, spec, special, tiny
from runner import LOCATED, Case

MAX_STDERR = 6_000

CONTROL = {"ESC [31m": "\x1b[31mred", "ESC ]0; title BEL": "\x1b]0;pwned\x07", "clear screen": "\x1b[2J\x1b[H",
           "U+202E": "abc\u202edcba", "U+200B": "a\u200bb", "U+2028": "a\u2028b", "backspaces": "abc\x08\x08\x08xyz",
           "C1 CSI": "\x9b31m", "CR": "fake\rreal", "BOM": "\ufeffx", "DEL": "a\x7fb"}


def control_cases() -> list[Case]:
    klass, cases = "unclear: terminal control", []
    plot = {"compare --plot": ("compare", SPEC, "--plot", "{tmp}/c.png")}
    for i, (what, text) in enumerate(CONTROL.items()):
        for where, make in (("label", tiny(label=text)), ("default", tiny(tag=text))):
            for j, (cmd, argv) in enumerate({**commands(emits=False), **plot}.items()):
                cases.append(Case(f"{klass}/{what} as {where}/{cmd}", klass, argv, spec(make), ENV, expect=inert,
                                  slow=(2 * i + (where == "label") + j) % 9 != 0 or cmd == "list"))
        name = f"n{text}".replace("/", "-")
        for j, cmd in enumerate(("check", "summary", "compare", "eval")):
            argv = tuple(f"{{tmp}}/{name}.arch" if a == SPEC else a for a in commands()[cmd])
            cases.append(Case(f"{klass}/{what} in a file name/{cmd}", klass, argv, spec(tiny(), f"{name}.arch"), ENV,
                              expect=inert, slow=(i + j) % 4 != 0))
    return cases


def _short(code, out: str, err: str) -> bool:
    """Refused with a message of bounded size (sweep lists a variant's error in its table, exit 0)."""
    return (refused(code, out, err) or code == 0 and inert(code, out, err)) and len(err) < MAX_STDERR


LONG_NAME = "n" * 10_000
UNBOUNDED = {"a 60 KB line with an error at its end": "arch t\ninput [3, 32, 32]\n" + "relu; " * 10_000 + "reluu\n",
             "a 10,000-character unknown name": f"arch t\ninput [3, 32, 32]\n{LONG_NAME}\n",
             "a 10,000-character label twice": f'arch t\ninput [3, 32, 32]\n"{LONG_NAME}": relu\n"{LONG_NAME}": relu\n',
             "a 10,000-character string where an int goes": f'arch t\ninput [3, 32, 32]\nconv("{LONG_NAME}", 3)\n',
             "a 60 KB list literal where an int goes": "arch t\ninput [3, 32, 32]\nconv([" + "1, " * 20_000 + "1], 3)\n",
             "a 10,000-character import": f'import "{LONG_NAME}.arch"\narch t\ninput [3, 32, 32]\nrelu\n'}


def unbounded_cases() -> list[Case]:
    klass, cases = "unclear: unbounded messages", []
    for i, (what, text) in enumerate(UNBOUNDED.items()):
        for j, cmd in enumerate(("check", "summary", "compile", "train", "sweep", "diff")):
            cases.append(Case(f"{klass}/{what}/{cmd}", klass, commands()[cmd], spec(text), ENV, expect=_short,
                              slow=(i + j) % 3 != 0 or "60 KB" in what))  # Lark takes seconds on 60 KB
    for j, (what, value) in enumerate({"a 100 KB --set value": "tag=" + "[" * 50_000,
                                       "a 100 KB --set name": "x" * 100_000 + "=1",
                                       "a 100 KB unknown --set key": "y" * 100_000 + "=1"}.items()):
        for cmd in ("check", "train", "sweep"):
            cases.append(Case(f"{klass}/{what}/{cmd}", klass, (*commands()[cmd], "--set", value), spec(tiny()), ENV,
                              expect=_short))
    return cases


LINE_ENDS = {"CR only": "\r", "CRLF": "\r\n", "U+2028": "\u2028", "U+0085": "\x85", "form feed": "\f", "vertical tab": "\v"}


def _accepted_or_located(code, out: str, err: str) -> bool:
    """Lines as the user sees them: the spec works, or the message places the error (file:line:col)."""
    return inert(code, out, err) and (code == 0 or ":" in (LOCATED.search(err) or [""])[0])


def line_end_cases() -> list[Case]:
    klass, cases = "unclear: line endings", []
    for what, end in LINE_ENDS.items():
        for variant, text in (("all lines", tiny().replace("\n", end)),
                              ("mixed with \\n", tiny().replace("\n", end, 2)),
                              ("with an error", tiny().replace("relu", "reluu").replace("\n", end))):
            for j, cmd in enumerate(("check", "summary", "compile --emit ir", "train")):
                first = (variant, what) == ("all lines", "CR only")
                cases.append(Case(f"{klass}/{what}, {variant}/{cmd}", klass, commands()[cmd], spec(text), ENV,
                                  expect=_accepted_or_located, slow=cmd == "train" or not first and cmd == "summary"))
    return cases


BAD_VALUES = {"a NUL in a block argument": 'block unit(t) = { "{t}": relu }\nunit("a\x00b")',
              "bn(momentum = 5)": "bn(momentum = 5)", "bn(momentum = -1)": "bn(momentum = -1)",
              "dropout(1.5)": "dropout(1.5)", "dropout(-0.1)": "dropout(-0.1)", "conv(0, 3)": "conv(0, 3)",
              "conv(4, 0)": "conv(4, 0)", "conv(4, 3, stride = 0)": "conv(4, 3, stride = 0)",
              "conv(4, 3, groups = 3)": "conv(4, 3, groups = 3)", "maxpool(0)": "maxpool(0)",
              "conv(4, 3, dilation = -1)": "conv(4, 3, dilation = -1)", "linear(-5)": "flatten; linear(-5)",
              "bn(eps = 0)": "bn(eps = 0)", "conv(4, 3, pad = -2)": "conv(4, 3, pad = -2)"}


def value_cases() -> list[Case]:
    klass, cases = "unclear: values torch would take", []
    for i, (what, body) in enumerate(BAD_VALUES.items()):
        head = body.split("\n")[0] + "\n" if body.startswith("block") else ""
        ops = body.split("\n")[-1]
        text = f"{head}arch t\ninput [3, 32, 32]\n{ops}\n"
        for j, cmd in enumerate(("check", "compile --render", "compile --emit dot", "compile", "train")):
            cases.append(Case(f"{klass}/{what}/{cmd}", klass, commands()[cmd], spec(text), ENV,
                              expect=None if what != "a NUL in a block argument" else inert, slow=(i + j) % 3 != 0))
    return cases


def _listed_with_error(code, out: str, err: str) -> bool:
    """The good specs listed, the broken one with a located error, exit 2 (`archc list`'s contract)."""
    return code == 2 and "good" in out and not UNSAFE.search(out + err) and len(err) < MAX_STDERR


BROKEN = {"a syntax error": b"arch broken(\n", "not UTF-8": b"\xff\xfe arch", "1 MB": b"#" * (1 << 20),
          "a FIFO": special("fifo"), "a folder": special("folder"), "/dev/zero": special("/dev/zero"),
          "a link loop": "loop", "an empty file": b""}


def _search_path(content, name: str = "broken.arch"):
    def make(tmp: Path) -> None:
        lib = tmp / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        (lib / "good.arch").write_text(tiny())
        path = lib / name
        if content == "loop":
            path.symlink_to(path)
        elif callable(content):
            content(path, "")
        else:
            path.write_bytes(content)
    return make


def search_path_cases() -> list[Case]:
    klass, cases = "unclear: search path", []
    for i, (what, content) in enumerate(BROKEN.items()):
        for name in ("broken.arch", "b\x1b[2Jroken.arch"):
            setup = chain(spec(tiny()), _search_path(content, name))
            cases.append(Case(f"{klass}/{what}{' (ESC in its name)' if name != 'broken.arch' else ''}/list", klass,
                              ("list",), setup, ENV, expect=_listed_with_error, slow=True))  # compiles every bundled spec
            cases.append(Case(f"{klass}/{what}{' (ESC in its name)' if name != 'broken.arch' else ''}/list --json", klass,
                              ("list", "--json"), setup, ENV, expect=_listed_with_error, slow=True))
        cases.append(Case(f"{klass}/{what}/check a good name beside it", klass, ("check", "good"),
                          chain(spec(tiny()), _search_path(content)), ENV,
                          expect=lambda code, out, err: code == 0 and "tiny" in out, slow=i % 2 == 1))
    cases.append(Case(f"{klass}/$ARCHC_PATH of 100 entries, none there/check", klass, ("check", "good"),
                      spec(tiny()), {"ARCHC_PATH": ":".join(f"/nonexistent{i}" for i in range(100)) + ":{tmp}/lib"},
                      expect=refused))
    return cases


def cases() -> list[Case]:
    return [*control_cases(), *unbounded_cases(), *line_end_cases(), *value_cases(), *search_path_cases()]

