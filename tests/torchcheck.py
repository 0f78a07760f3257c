"""Torch-side checks shared by the property, registry and codegen tests (torch is the reference)."""
from __future__ import annotations

import copy
import importlib.util
from unittest import mock

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archc.compiler.builder import build_graph
from archc.compiler.codegen import inplace, record_shapes


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny batches at small sizes, where a second intra-op thread costs more than it saves, and on
    a loaded machine OpenMP's spin-waiting multiplies the CPU time (measured: 20x on the 2-core CI
    machine under load). Autouse in each module that imports it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def static_costs_match(g, model, x) -> None:
    """The static shapes, learned tensors, parameter count and MACs equal what torch computes
    (FlopCounterMode: 2 FLOPs per multiply-add, per sample) on a batch ``x``."""
    assert record_shapes(model, x) == {n: tuple(s) for n, s in g.shapes.items()}
    assert static_tensors(g) == {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert sum(p.numel() for p in model.parameters()) == g.totals().params
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert counter.get_total_flops() == 2 * len(x) * g.totals().macs


def static_tensors(g) -> dict[str, tuple]:
    """Every node's learned tensors (``Op.tensors``) by their state-dict name, with static shapes."""
    out = {}
    for n in g.topo():
        node = g.node(n)
        for t, shape in node.spec.tensors(node.args, [g.shapes[i] for i in g.inputs(n)]).items():
            out[f"{n}.{t}" if t else n] = tuple(shape)
    return out


def close(a, b) -> bool:
    """Equal up to float rounding; checkpointing may sum a gradient's parts in another order."""
    return (a - b).abs().max().item() <= 1e-5 * (1 + b.abs().max().item())


def check_in_place(g, model, x):
    """Activations and merges that overwrite an input change nothing: a training step equals one
    of an out-of-place twin (every ``overwritable`` answered no)."""
    with mock.patch.object(inplace, "overwritable", return_value=False):
        plain = build_graph(g)
    assert not any(getattr(m, "inplace", False) for m in plain.modules())  # (partial sums stay in place)
    plain.load_state_dict(model.state_dict(), strict=True)
    same_training_step(model, plain, x)


def same_training_step(model, plain, x):
    """Outputs, input and parameter gradients, and updated buffers of one training step agree.

    Both run in float64 on copies: a norm over a near-constant tensor (layernorm over 2 channels,
    then batchnorm) turns float32 rounding-order differences into large ones."""
    model, plain, x = copy.deepcopy(model).double(), copy.deepcopy(plain).double(), x.double()
    outs, grads = [], []
    with mock.patch.object(torch.nn.functional, "dropout", logical_dropout):
        for m in (model, plain):
            m.train()
            m.zero_grad(set_to_none=True)  # a step taken by an earlier check must not add to these
            xs = x.clone().requires_grad_()  # a gradient to compare even when there are no parameters
            torch.manual_seed(0)  # same dropout and drop_path draws (checkpoint replays the RNG)
            outs.append(m(xs))
            outs[-1].square().sum().backward()
            grads.append(xs.grad)
    assert close(*outs) and close(*grads)
    params, twins = dict(model.named_parameters()), dict(plain.named_parameters())
    assert list(params) == list(twins)  # the same order too: an optimizer's state is matched by position
    for name, p in params.items():
        assert close(p.grad, twins[name].grad), name
    states, twin_states = model.state_dict(), plain.state_dict()
    assert list(states) == list(twin_states)
    for name, a in states.items():
        assert torch.allclose(a.double(), twin_states[name].double()), name


def logical_dropout(input, p=0.5, training=True, inplace=False):
    """F.dropout with its mask drawn in the tensor's logical order, not its memory order: an in-place
    model and its twin may hand dropout the same values in different layouts (channels_last or not),
    and torch's own mask would then differ between them."""
    if not training or p == 0:
        return input
    scale = (torch.rand(input.shape, dtype=input.dtype, device=input.device) >= p) / (1 - p)
    return input.mul_(scale) if inplace else input * scale


def load_emitted(src: str, folder, name: str = "emitted"):
    """Import the source ``emit_python`` wrote, as a module of its own."""
    path = folder / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
