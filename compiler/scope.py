"""Scope paths: how graph nodes get their dotted, torchvision-style names.

Rules (README, "Names"): a label (``layer1:``) opens a scope of that name; an unlabeled block
instance opens one named after the block; ``X * n`` opens one whose copies are ``0 .. n-1``;
an op is named by its label, or by its kind (``conv``, ``conv_1`` ...) inside its scope.
A block, group or op that is the direct child of a label or a repetition index *owns* that
scope and adds no level of its own, so ``layer1: basic(64) * 2`` gives ``layer1.0.conv1``.

A name becomes a module path segment in the built model, so it takes what PyTorch's
``add_module`` takes (any text but '.', ``block1-0`` included) minus what would break the
model: Python keywords (the generated forward writes ``self.layer1.conv``) and the
attributes every ``nn.Module`` already has (``forward``, ``training`` ...; ``MODULE_ATTRIBUTES``,
checked against torch by tests/test_codegen.py).
"""
from __future__ import annotations

import keyword

from archc.dsl.errors import NameError_, Span

# Attributes of nn.Module, fx.GraphModule and archc's Block containers: a child module of one of
# these names cannot be added (or would hide the attribute). Dunder names are refused separately.
MODULE_ATTRIBUTES = frozenset("""
T_destination _apply _backward_hooks _backward_pre_hooks _boxed_call _buffers _call_impl _code
_compiled_call_impl _create_node_hooks _deepcopy_hooks _deepcopy_init _erase_node_hooks _forward_hooks
_forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks _forward_pre_hooks_with_kwargs
_get_backward_hooks _get_backward_pre_hooks _get_name _graph _is_full_backward_hook _lineno_map
_load_from_state_dict _load_state_dict_post_hooks _load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook
_modules _named_members _non_persistent_buffers_set _parameters _prologue_start _recompile_submodules
_register_create_node_hook _register_deepcopy_hook _register_erase_node_hook _register_load_state_dict_pre_hook
_register_replace_node_hook _register_state_dict_hook _replace_hooks _replicate_for_data_parallel
_save_to_state_dict _set_replace_hook _slow_forward _state_dict_hooks _state_dict_pre_hooks _tracer_cls
_tracer_extras _unregister_create_node_hook _unregister_deepcopy_hook _unregister_erase_node_hook
_unregister_replace_node_hook _version _wrapped_call _wrapped_call_impl add_module add_submodule apply
bfloat16 buffers call_super_init children code compile cpu cuda delete_all_unused_submodules
delete_submodule double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
get_submodule graph half ipu kind load_state_dict meta modules mtia named_buffers named_children
named_modules named_parameters parameters print_readable recompile register_backward_hook register_buffer
register_forward_hook register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module register_parameter
register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule
shape_env share_memory state_dict to to_empty to_folder train training type why xpu zero_grad
""".split())

GRAPH_ENDS = ("input", "output")  # the root scope's names for the network's ends
_QUOTING = frozenset(".\"'\\")  # '.' splits paths; quotes and backslashes would leave the generated code's strings


def check_name(name: str, span: Span, what: str = "label") -> str:
    """``name`` if it can be a module path segment; else a located NameError_ saying why."""
    if not name or not name.isprintable() or set(name) & _QUOTING:
        raise NameError_(f"{what} {name!r} cannot name a module", span,
                         expected="printable text without . \" ' \\, e.g. `layer1` or \"block1-0\"",
                         hint="dots separate scopes: nest labels instead (`a: { b: ... }`)" if "." in name else
                         "the built model's code quotes module names: leave quotes and backslashes out")
    if keyword.iskeyword(name):
        raise NameError_(f"{what} `{name}` is a Python keyword", span,
                         hint=f"rename it, e.g. `{name}_`: the built model's code names modules as attributes "
                              f"(self.{name} would not parse)")
    if name in MODULE_ATTRIBUTES or name.startswith("__"):  # dunders, and torch's own "__x"/"___x" marks
        raise NameError_(f"{what} `{name}` is an attribute of every PyTorch module", span,
                         hint=f"rename it, e.g. `{name}_`: a submodule named `{name}` would hide or clash with "
                              f"nn.Module.{name}")
    return name


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

    def claim(self, label: str, span: Span, env: dict | None = None) -> str:
        """Reserve a user label; two items may not share one name in a scope."""
        check_name(label, span)
        if label in self.used:
            where = self.join(label)
            if not self.parts and label in GRAPH_ENDS:
                raise NameError_(f"the name `{label}` is the network's {label} node", span,
                                 hint="choose another label for this item")
            hint = "give this item another label (labels must be unique within a block)"
            if env and label in env:  # `for j in ... { j: ... }`: the label is the text "j"
                hint = f'a bare label is literal text; to use the value of `{label}`, write "{{{label}}}":'
            raise NameError_(f"the name `{where}` is already used in this scope", span, hint=hint)
        self.used.add(label)
        return label

    def child(self, name: str) -> "Scope":
        return Scope((*self.parts, name), self)
