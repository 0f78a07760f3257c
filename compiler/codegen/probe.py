"""Run a built model and report the shape of every IR node, for checking against static shapes."""
from __future__ import annotations

import torch
import torch.fx as fx

from archc.compiler.codegen.layers import AuxHeads, CheckpointRegion
from archc.compiler.codegen.lower import NHWC


class _Recorder(fx.Interpreter):
    """Runs a GraphModule node by node, descending into regions and callable scopes."""

    def __init__(self, module: fx.GraphModule, seen: dict, nested: bool = False):
        super().__init__(module)
        self.seen = seen  # fx name -> shape (batch excluded); names are unique across regions
        self.nested = nested  # a region's or scope's inputs are values its caller recorded

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor) and not (self.nested and n.op == "placeholder"):
            shape = tuple(out.shape[1:])
            self.seen[n.name] = (shape[-1], *shape[:-1]) if n.meta.get(NHWC) else shape
        return out

    def call_module(self, target, args, kwargs):
        mod = self.fetch_attr(target)
        if isinstance(mod, (CheckpointRegion, AuxHeads)):  # heads too: their shapes, in eval mode as well
            return _Recorder(mod.fn, self.seen, True).run(*args)
        if isinstance(mod, fx.GraphModule):  # a callable scope: its own part of the graph
            return _Recorder(mod, self.seen, True).run(*args)
        return super().call_module(target, args, kwargs)


def record_shapes(model: fx.GraphModule, x: torch.Tensor) -> dict[str, tuple]:
    """IR node id -> the shape torch computed for it on input ``x`` (batch excluded)."""
    seen: dict = {}
    with torch.no_grad():
        _Recorder(model, seen).run(x)
    out = {}
    for node_id, v in model.meta["archc"]["values"].items():
        if isinstance(v, tuple):  # a lazy concat: the shape torch.cat would give its pieces
            metas = [torch.empty((1, *seen[p]), device="meta") for p in v]
            out[node_id] = tuple(torch.cat(metas, 1).shape[1:])
        else:
            out[node_id] = seen[v]
    return out
