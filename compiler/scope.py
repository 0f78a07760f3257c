"""Scope paths: how graph nodes get their dotted, torchvision-style names.

Rules (README, "Names"): a label (``layer1:``) opens a scope of that name; an unlabeled block
instance opens one named after the block; ``X * n`` opens one whose copies are ``0 .. n-1``;
an op is named by its label, or by its kind (``conv``, ``conv_1`` ...) inside its scope.
A block, group or op that is the direct child of a label or a repetition index *owns* that
scope and adds no level of its own, so ``layer1: basic(64) * 2`` gives ``layer1.0.conv1``.
"""
from __future__ import annotations

import keyword
import re

from archc.dsl.errors import NameError_, Span

_SEGMENT = re.compile(r"[A-Za-z0-9_]+")


class Scope:
    __slots__ = ("parts", "used", "counters", "parent")

    def __init__(self, parts: tuple = (), parent: "Scope | None" = None):
        self.parts, self.used, self.counters, self.parent = parts, set(), {}, parent

    @property
    def path(self) -> str:
        return ".".join(self.parts)

    def join(self, name: str) -> str:
        return ".".join((*self.parts, name))

    def fresh(self, base: str) -> str:
        """An unused name for an unlabeled item: ``conv``, then ``conv_1``, ``conv_2`` ..."""
        n = self.counters.get(base, 0)
        name = base if n == 0 else f"{base}_{n}"
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.counters[base] = n + 1
        self.used.add(name)
        return name

    def claim(self, label: str, span: Span) -> str:
        """Reserve a user label; two items may not share one name in a scope."""
        if not _SEGMENT.fullmatch(label):
            raise NameError_(f"label {label!r} is not a valid name", span,
                             expected="letters, digits and '_' only (no dots or spaces)")
        if keyword.iskeyword(label):  # the built model's code names modules by label
            raise NameError_(f"label {label!r} is a Python keyword", span,
                             hint=f"rename it, e.g. `{label}_`: labels become attribute names in PyTorch")
        if label in self.used:
            where = self.join(label)
            raise NameError_(f"the name `{where}` is already used in this scope", span,
                             hint="give this item another label (labels must be unique within a block)")
        self.used.add(label)
        return label

    def child(self, name: str) -> "Scope":
        return Scope((*self.parts, name), self)
