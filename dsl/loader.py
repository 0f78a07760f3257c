"""Load a program: the main file plus every file it imports, with their blocks; find specs by name.

A spec named without a folder (``resnet50``, ``densenet121.arch``) is looked for on the
*search path*: the working folder, the folders of ``ARCHC_PATH``, then the registry bundled
inside the package (``archs/``). An import is looked for in the importing file's folder first,
then on the same search path. Wherever a file is found, the folder it was found under is its
*root*, and its imports must stay inside it (after resolving symlinks): absolute paths, ``..``
escapes, symlinks leading out, non-``.arch`` files, missing files and cycles are refused with
located messages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from archc.dsl import ast
from archc.dsl.errors import ImportError_, LimitError, ParseError, Span
from archc.dsl.files import FileRefused, read_regular
from archc.dsl.parser import parse

MAX_FILE_BYTES = 64 * 1024  # a spec is a short text (the largest in archs/ is 2.3 KB); Lark parses ~20k tokens/s
BUNDLED = Path(__file__).resolve().parent.parent / "archs"  # the registry ships inside the package
ARCHC_PATH = "ARCHC_PATH"  # environment variable: more folders of specs, os.pathsep-separated


def search_path() -> list[Path]:
    """Where a spec or an import is looked for by name, in order (the working folder first)."""
    extra = [Path(p) for p in os.environ.get(ARCHC_PATH, "").split(os.pathsep) if p]
    return [Path("."), *extra, BUNDLED]


def find(name: str, folders: list[Path]) -> tuple[Path, Path] | None:
    """The first ``folder/name`` that is a file and stays inside its folder, as (path, folder).

    Directories are skipped: ``archc train resnet50 --out resnet50`` leaves a run folder
    named like the spec in the working folder."""
    for folder in folders:
        path = folder / name
        inside = Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
        if inside and os.path.exists(path) and not os.path.isdir(path):
            return path, folder
    return None


def resolve(spec: str) -> Path:
    """The file a command-line FILE names: a path as given, or a bare name on the search path.

    A bare name (no folder in it) may omit ``.arch``. Raises LookupError when nothing is found;
    a path is returned unchecked, for the caller to report what is wrong with it."""
    if os.sep in spec or (os.altsep and os.altsep in spec) or spec in (".", ".."):
        return Path(spec)
    names = [spec] if spec.endswith(".arch") else [spec + ".arch", spec]
    for name in names:
        hit = find(name, search_path())
        if hit:
            return hit[0]
    raise LookupError(spec)


@dataclass
class Program:
    main: ast.Module
    blocks: dict = field(default_factory=dict)  # name -> BlockDef (main file's and imported)
    schemes: dict = field(default_factory=dict)  # name -> InitScheme defined by `init NAME = { ... }`
    lets: list = field(default_factory=list)  # library files' top-level `let`s (values, functions), in load order
    sources: dict = field(default_factory=dict)  # file name as shown -> the text compiled, main file first

    @property
    def files(self) -> list[str]:
        return list(self.sources)


def shown(path) -> str:
    """How a path appears in messages: relative to the current folder when it is inside it."""
    path = os.path.normpath(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if rel.startswith("..") else rel


def read_source(path: Path, span: Span | None = None) -> str:
    """Read a spec as UTF-8 text; every failure is a located ArchError.

    ``span`` is the ``import`` that names the file; without one (the main file) errors point
    at the file's first line. Only regular files are read, and at most MAX_FILE_BYTES of them:
    a FIFO or a device would block or never end."""
    name = shown(path)
    span = span or Span(name, 1, 1)
    try:
        data = read_regular(path, MAX_FILE_BYTES)
    except FileRefused as e:
        kind = LimitError if e.too_large else ImportError_
        raise kind(f"{name} {e.what}", span, expected=e.expected and f"{e.expected} (a .arch spec)",
                   hint=e.hint) from None
    except FileNotFoundError:
        raise ImportError_(f"no such file: {name}", span, hint="check the path") from None
    except PermissionError:
        raise ImportError_(f"cannot read {name}: permission denied", span,
                           hint="check the file's permissions") from None
    except OSError as e:
        raise ImportError_(f"cannot read {name}: {e.strerror or e}", span) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        end = data.find(b"\n", e.start)
        line_text = data[start: end if end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")
        col = len(data[start:e.start].decode("utf-8", "replace")) + 1
        raise ParseError("the file is not valid UTF-8 text",
                         Span(name, data[: e.start].count(b"\n") + 1, col, col + 1, line_text),
                         found=f"byte 0x{data[e.start]:02x}", expected="UTF-8 text",
                         hint="save the file as UTF-8") from None


class _Loader:
    def __init__(self, root: Path, max_depth: int):
        self.root, self.max_depth = root, max_depth  # the main file's root
        self.program: Program | None = None
        self.loaded: set[Path] = set()
        self.stack: list[Path] = []
        self.last: ast.Import | None = None  # the import being followed

    def load_main(self, text: str, name: str) -> Program:
        module = parse(text, name, self.max_depth)
        self.program = Program(module, sources={name: text})
        self._add_blocks(module)
        try:
            self._imports(module, self.root, self.root)
        except RecursionError:  # --max-depth raised past what Python's stack allows
            raise LimitError("imports nest too deeply for archc", self.last.span,
                             hint="lower --max-depth, or import the files from one place") from None
        return self.program

    def _imports(self, module: ast.Module, folder: Path, root: Path):
        if module.imports and len(self.stack) >= self.max_depth:
            raise LimitError(f"imports nest deeper than {self.max_depth}", module.imports[0].span,
                             hint="raise the limit with --max-depth")
        for imp in module.imports:
            self._import(imp, folder, root)

    def _import(self, imp: ast.Import, folder: Path, root: Path):
        self.last, raw = imp, imp.path
        if os.path.isabs(raw) or raw.startswith("~"):
            raise ImportError_("imports must be relative paths", imp.span, found=repr(raw),
                               hint="write the path relative to this file, e.g. \"lib/blocks.arch\"")
        if not raw.isprintable():
            raise ImportError_("an import path cannot hold control characters", imp.span, found=repr(raw))
        target = (folder / raw)
        if target.suffix != ".arch":
            raise ImportError_("only .arch files can be imported", imp.span, found=repr(raw),
                               expected="a path ending in .arch")
        real = Path(os.path.realpath(target))
        if not real.is_relative_to(root):
            raise ImportError_("import leaves the project root", imp.span, found=shown(real),
                               expected=f"a file under {shown(root)}",
                               hint="keep imported files (and symlink targets) inside the main file's folder")
        if not os.path.exists(real):  # not beside the importer: the search path, else report it missing
            hit = find(raw, search_path())
            if hit:
                target, root = hit[0], Path(os.path.realpath(hit[1]))
                real = Path(os.path.realpath(target))
        if real in self.stack:
            cycle = " -> ".join(shown(p) for p in [*self.stack[self.stack.index(real):], real])
            raise ImportError_(f"import cycle: {cycle}", imp.span, hint="remove one of these imports")
        if real in self.loaded:
            return
        name = shown(target)
        text = read_source(real, imp.span)
        module = parse(text, name, self.max_depth)
        if module.name is not None or module.init is not None or not all(isinstance(i, ast.Let) for i in module.body):
            raise ImportError_(f"{raw} is not a library file", imp.span,
                               expected="a file of `block`, `let` and `init NAME = { ... }` definitions and imports only",
                               found="an `arch` header or network items",
                               hint="move the shared blocks into their own file")
        self.loaded.add(real)
        self.program.sources[name] = text
        self.stack.append(real)
        try:
            self._add_blocks(module)
            self.program.lets.extend(module.body)
            self._imports(module, real.parent, root)
        finally:
            self.stack.pop()

    def _add_blocks(self, module: ast.Module):
        """The file's blocks and init schemes, each name defined once across the program."""
        for kind, defs, table in (("block", module.blocks, self.program.blocks),
                                  ("init scheme", module.schemes, self.program.schemes)):
            for d in defs:
                prev = table.get(d.name)
                if prev is not None:
                    raise ImportError_(f"{kind} `{d.name}` is defined twice", d.span,
                                       found=f"also defined at {prev.span}", hint="rename one of them")
                table[d.name] = d


def load(path: str | Path | None = None, text: str | None = None, max_depth: int = 100) -> Program:
    """Load from a file path, or from text (imports then resolve from the current folder)."""
    loader_ = None
    if text is None:
        p = Path(path)
        text = read_source(p)
        real = Path(os.path.realpath(p))
        loader_ = _Loader(real.parent, max_depth)
        loader_.stack.append(real)  # a file importing the main file is a cycle too
        name = str(path)
    else:
        loader_ = _Loader(Path(os.path.realpath(".")), max_depth)
        name = str(path or "<string>")
    return loader_.load_main(text, name)
