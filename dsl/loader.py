"""Load a program: the main file plus every file it imports, with their blocks.

Imports are relative to the importing file and must stay inside the *root*: the folder of
the main file (after resolving symlinks). Absolute paths, ``..`` escapes, symlinks leading
out, non-``.arch`` files, missing files and cycles are refused with located messages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dsl import ast
from dsl.errors import ImportError_, LimitError, ParseError, Span
from dsl.parser import parse

MAX_FILE_BYTES = 4 * 1024 * 1024  # a spec is a short text; refuse anything that is not


@dataclass
class Program:
    main: ast.Module
    blocks: dict = field(default_factory=dict)  # name -> BlockDef (main file's and imported)
    files: list = field(default_factory=list)


def read_source(path: Path, span: Span | None = None) -> str:
    """Read a spec as UTF-8 text; every failure is a located ArchError."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImportError_(f"{path} is a directory", span, where=str(path),
                               expected="a .arch file", hint="name a file inside it")
        if size > MAX_FILE_BYTES:
            raise LimitError(f"{path} is {size:,} bytes", span, where=str(path),
                             expected=f"a spec of at most {MAX_FILE_BYTES:,} bytes")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportError_(f"no such file: {path}", span, where=str(path), hint="check the path") from None
    except PermissionError:
        raise ImportError_(f"cannot read {path}: permission denied", span, where=str(path),
                           hint="check the file's permissions") from None
    except OSError as e:
        raise ImportError_(f"cannot read {path}: {e.strerror}", span, where=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ParseError("the file is not valid UTF-8 text", Span(str(path), line, col, col + 1, ""),
                         found=f"byte 0x{data[e.start]:02x}", expected="UTF-8 text") from None


class _Loader:
    def __init__(self, root: Path, max_depth: int):
        self.root, self.max_depth = root, max_depth
        self.program: Program | None = None
        self.loaded: set[Path] = set()
        self.stack: list[Path] = []

    def load_main(self, text: str, name: str) -> Program:
        module = parse(text, name)
        self.program = Program(module, files=[name])
        self._add_blocks(module)
        self._imports(module, self.root)
        return self.program

    def _imports(self, module: ast.Module, folder: Path):
        if len(self.stack) >= self.max_depth:
            raise LimitError(f"imports nest deeper than {self.max_depth}", module.imports[0].span if module.imports else None,
                             hint="raise the limit with --max-depth")
        for imp in module.imports:
            self._import(imp, folder)

    def _import(self, imp: ast.Import, folder: Path):
        raw = imp.path
        if os.path.isabs(raw) or raw.startswith("~"):
            raise ImportError_("imports must be relative paths", imp.span, found=repr(raw),
                               hint="write the path relative to this file, e.g. \"lib/blocks.arch\"")
        target = (folder / raw)
        if target.suffix != ".arch":
            raise ImportError_("only .arch files can be imported", imp.span, found=repr(raw),
                               expected="a path ending in .arch")
        real = Path(os.path.realpath(target))
        if not real.is_relative_to(self.root):
            raise ImportError_("import leaves the project root", imp.span, found=str(real),
                               expected=f"a file under {self.root}",
                               hint="keep imported files (and symlink targets) inside the main file's folder")
        if real in self.stack:
            cycle = " -> ".join(p.name for p in [*self.stack[self.stack.index(real):], real])
            raise ImportError_(f"import cycle: {cycle}", imp.span, hint="remove one of these imports")
        if real in self.loaded:
            return
        module = parse(read_source(real, imp.span), str(target))
        if module.name is not None or module.body:
            raise ImportError_(f"{raw} is not a library file", imp.span,
                               expected="a file of `block` definitions and imports only",
                               found="an `arch` header or network items",
                               hint="move the shared blocks into their own file")
        self.loaded.add(real)
        self.program.files.append(str(target))
        self.stack.append(real)
        try:
            self._add_blocks(module)
            self._imports(module, real.parent)
        finally:
            self.stack.pop()

    def _add_blocks(self, module: ast.Module):
        for b in module.blocks:
            prev = self.program.blocks.get(b.name)
            if prev is not None:
                raise ImportError_(f"block `{b.name}` is defined twice", b.span,
                                   found=f"also defined at {prev.span}", hint="rename one of them")
            self.program.blocks[b.name] = b


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
