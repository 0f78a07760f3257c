"""Code generation: the checked graph IR -> PyTorch (the only part of the compiler that imports torch).

    tree.py      each op's nn.Module at its node id, in Block containers (modules.py: which module)
    lower.py     IR -> flat torch.fx graph (lazy DenseNet concatenation, region-contiguous order)
    outline.py   checkpoint regions -> CheckpointRegion submodules (layers.py: the custom modules)
    generate.py  the fx GraphModule; comments.py adds shape comments to its code
    pysource.py  standalone Python source of the same model (``emit_python``)
    probe.py     run a built model and report every IR node's shape
"""
from archc.compiler.codegen.generate import ArchModule, generate
from archc.compiler.codegen.probe import record_shapes
from archc.compiler.codegen.pysource import emit_python

__all__ = ["ArchModule", "generate", "record_shapes", "emit_python"]
