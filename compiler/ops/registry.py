"""The op registry: every op and merge by name, and ``register_op`` to add one.

A definition is checked when it is registered, so an op with a missing piece fails at import
(or at the user's ``register_op`` call), never as a traceback in someone's build; the registry
test (tests/test_registry.py) then proves each registered op against torch.
"""
from __future__ import annotations

import keyword

from archc.compiler.ops.base import FAMILIES, KINDS, REQUIRED, Arg, Op
from archc.compiler.scope import MODULE_ATTRIBUTES

OPS: dict[str, Op] = {}

# Words of the language itself: an op cannot take one of these names.
RESERVED = frozenset({"arch", "input", "output", "init", "import", "block", "let", "for", "in", "if",
                      "else", "and", "or", "not", "true", "false"})
BUILTIN_IO = ("input", "output")  # registered ops that .arch files cannot call


class OpDefinitionError(TypeError):
    """An op definition is incomplete or inconsistent (a programming error in the definition)."""


def register_op(cls: type[Op] | None = None, *, replace: bool = False):
    """Register an ``Op`` subclass (usable as a decorator); returns the class.

    ``replace=True`` lets a user's definition take over an existing name on purpose."""
    if cls is None:
        return lambda c: register_op(c, replace=replace)
    op = _checked(cls)
    if op.name in OPS and not replace:
        raise OpDefinitionError(f"op `{op.name}` is already registered (pass replace=True to override it)")
    OPS[op.name] = op
    return cls


def _checked(cls) -> Op:
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise OpDefinitionError(f"register_op takes an Op subclass, not {cls!r}")
    name = cls.name
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
        raise OpDefinitionError(f"{cls.__name__}.name must be an identifier, not {name!r}")
    if name in RESERVED and name not in BUILTIN_IO:
        raise OpDefinitionError(f"`{name}` is a word of the .arch language; choose another op name")
    if name in MODULE_ATTRIBUTES:  # an unlabeled op is named by its kind: it would clash with nn.Module.<name>
        raise OpDefinitionError(f"`{name}` is an attribute of every PyTorch module; choose another op name")
    problems = [
        "doc (one line saying what it computes)" if not cls.doc else "",
        f"family (one of {', '.join(FAMILIES)})" if cls.family not in FAMILIES else "",
        "example (an .arch item using it)" if not cls.example and cls.family != "io" else "",
        "lower() (how it becomes torch)" if cls.lower is Op.lower and not cls.merge else "",
        "tensors() (the shapes of its `weights`)" if cls.weights and cls.tensors is Op.tensors else "",
    ]
    for a in cls.args:
        if not isinstance(a, Arg) or a.kind not in KINDS or (a.kind == "choice" and not a.choices):
            problems.append(f"args: {a!r} is not an Arg of a known kind ({', '.join(KINDS)})")
    missing = [p for p in problems if p]
    if missing:
        raise OpDefinitionError(f"op `{name}` ({cls.__name__}) lacks " + "; ".join(missing))
    return cls()


def callable_ops() -> list[str]:
    """Names an .arch file can call as ``NAME(args)``."""
    return [n for n, op in OPS.items() if not op.merge and n not in BUILTIN_IO]


def merges() -> list[str]:
    """Names an .arch file can use as ``NAME { branches }``."""
    return [n for n, op in OPS.items() if op.merge]


def signature(op: Op) -> str:
    """How the op is written: ``conv(out, kernel, stride = 1, ...)``, or ``add { branches }``."""
    if op.merge:
        return f"{op.name} {{ branches }}"
    parts = [a.name if a.default is REQUIRED else f"{a.name} = {_value(a.default)}" for a in op.args]
    return f"{op.name}({', '.join(parts)})" if parts else op.name


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return str(v[0])
    return "none" if v is None else f'"{v}"' if isinstance(v, str) else str(list(v) if isinstance(v, tuple) else v)


def ops_markdown() -> str:
    """The registry as a Markdown table (``archc ops --markdown``; the README's op table is this)."""
    rows = ["| op | family | what it computes |", "|---|---|---|"]
    for name, op in sorted(OPS.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])):
        if name not in BUILTIN_IO:
            rows.append(f"| `{signature(op)}` | {op.family} | {op.doc.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
