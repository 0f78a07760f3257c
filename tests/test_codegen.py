"""Code generation: built models equal torchvision's, emitted Python equals the built model,
checkpointing and drop_path keep their semantics, and the models survive the PyTorch tools
(export, trace, compile, deepcopy, pickle, channels_last)."""
import ast
import copy
import importlib.util
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from archc.compiler import check
from archc.compiler.builder import build, build_graph, emit_python
from archc.compiler.codegen import record_shapes
from archc.compiler.codegen.layers import CheckpointRegion, DropPath
from archc.compiler.passes import compile_file
from archc.dsl.errors import ArchError
ROOT = Path(__file__).resolve().parents[1]
RESNET18 = """\
arch resnet18(classes = 1000, widths = [64, 128, 256, 512])
input [3, 224, 224]

block basic(w, stride = 1) = {
    add {
        conv1: conv(w, 3, stride = stride, pad = 1, bias = false); bn1: bn; relu: relu; conv2: conv(w, 3, pad = 1, bias = false); bn2: bn
        downsample: { 0: conv(w, 1, stride = stride, bias = false); 1: bn } if stride != 1 or in.c != w else identity
    }
    relu
}

conv1: conv(64, 7, stride = 2, pad = 3, bias = false); bn1: bn; relu: relu; maxpool: maxpool(3, stride = 2, pad = 1)
for i, w in widths {
    "layer{i + 1}": { 0: basic(w, 1 if i == 0 else 2); 1: basic(w) }
}
avgpool: gap; flatten
fc: linear(classes)
"""

DENSENET121 = """\
arch densenet121(growth = 32, bn_size = 4, blocks = [6, 12, 24, 16], classes = 1000)
input [3, 224, 224]

block dense_layer(k) = concat {
    identity
    { norm1: bn; relu1: relu; conv1: conv(bn_size * k, 1, bias = false); norm2: bn; relu2: relu; conv2: conv(k, 3, pad = 1, bias = false) }
}
block transition = { norm: bn; relu: relu; conv: conv(in.c // 2, 1, bias = false); pool: avgpool(2) }

features: {
    conv0: conv(64, 7, stride = 2, pad = 3, bias = false); norm0: bn; relu0: relu; pool0: maxpool(3, stride = 2, pad = 1)
    for i, n in blocks {
        "denseblock{i + 1}": { for j in range(n) { "denselayer{j + 1}": dense_layer(growth) } }
        "transition{i + 1}": transition if i < len(blocks) - 1
    }
    norm5: bn
}
relu; gap; flatten
classifier: linear(classes)
"""


def at(text: str, size: int) -> str:
    """The spec at a smaller input resolution (the input is part of the arch)."""
    return text.replace("input [3, 224, 224]", f"input [3, {size}, {size}]")


def small_densenet(checkpoint: bool = False) -> str:
    text = at(DENSENET121, 32).replace("blocks = [6, 12, 24, 16]", "blocks = [2, 3]")
    return text.replace("dense_layer(k) =", "dense_layer(k) @checkpoint =") if checkpoint else text


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("text, reference", [(RESNET18, torchvision.models.resnet18),
                                             (DENSENET121, torchvision.models.densenet121)],
                         ids=["resnet18", "densenet121"])
def test_matches_torchvision(text, reference):
    torch.manual_seed(0)
    g = compile_file(text=at(text, 64)).graph
    model, ref = build_graph(g), reference()
    model.load_state_dict(ref.state_dict(), strict=True)
    assert list(model.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in model.parameters()) == g.totals().params
    x = torch.randn(2, 3, 64, 64)
    model.eval(), ref.eval()
    with torch.no_grad():
        assert max_diff(model(x), ref(x)) < 1e-5
    assert record_shapes(model, x) == {n: tuple(s) for n, s in g.shapes.items()}


def test_print_and_code_read_like_torchvision():
    model = build(at(RESNET18, 64))
    text = str(model)
    assert text.startswith("resnet18(") and "(layer1): Block(" in text and "(0): Basic(" in text
    assert "(downsample): Block(\n        (0): Conv2d(64, 128, kernel_size=(1, 1), stride=(2, 2), bias=False)" in text
    assert "def forward" not in text  # the code lives in model.code
    assert model.layer1[0].conv1 is model.get_submodule("layer1.0.conv1")
    assert "layer1 = self.layer1(maxpool)" in model.code  # stages are called as modules
    assert "layer1_0_conv1 = self.conv1(x)" in model.layer1[0].code
    assert "# 64×16×16" in model.code and "# 1000" in model.code


def test_dense_block_concatenates_once_per_layer():
    model = build(at(DENSENET121, 64))
    nodes = [n for m in model.modules() if isinstance(m, torch.fx.GraphModule) for n in m.graph.nodes]  # scopes too
    cats = [n for n in nodes if n.target is torch.cat]
    assert len(cats) == 6 + 12 + 24 + 16  # each layer's input, plus each block's output
    assert not any(a.target is torch.cat for n in cats for a in n.all_input_nodes)  # no cat of a cat


MULTI_OUTPUT_REGION = """\
arch multi
input [3, 8, 8]
{ concat {
    identity
    { bn; conv(4, 3, pad = 1) }
  }
  concat {
    identity
    { bn; conv(4, 3, pad = 1) }
  } } @checkpoint
0: conv(5, 1)
"""


@pytest.mark.parametrize("text", [at(RESNET18, 64), small_densenet(checkpoint=True), MULTI_OUTPUT_REGION,
                                  ROOT / "archs/resnet20.arch"],
                         ids=["resnet18", "densenet-checkpoint", "multi-output-region", "resnet20-option-a"])
def test_emit_python_round_trip(text, tmp_path):
    g = check(text)  # the spec's text, or the path of an arch file
    src = emit_python(g)
    assert "import compiler" not in src and "from compiler" not in src and "×" in src
    assert not _unused_imports(src)
    (tmp_path / "emitted.py").write_text(src)
    spec = importlib.util.spec_from_file_location(f"emitted_{g.name}", tmp_path / "emitted.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built, emitted = build_graph(g), module.build()
    emitted.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, *g.input_shape)
    built.eval(), emitted.eval()
    with torch.no_grad():
        assert torch.equal(built(x), emitted(x))
    _train_step(built, x), _train_step(emitted, x)
    for (name, p), q in zip(built.named_parameters(), emitted.parameters()):
        assert torch.equal(p.grad, q.grad), name


def _unused_imports(src: str) -> set:
    tree = ast.parse(src)
    imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    return imported - {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _train_step(model, x):
    model.train()
    model.zero_grad()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        out = model(x)
    out.square().mean().backward()
    return out, sum(saved)


def test_checkpoint_gives_equal_gradients_and_stats():
    torch.manual_seed(0)
    ck, plain = build(small_densenet(checkpoint=True)), build(small_densenet())
    assert sum(isinstance(m, CheckpointRegion) for m in ck.modules()) == 5
    plain.load_state_dict(ck.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32)
    (out_ck, kept_ck), (out_plain, kept_plain) = _train_step(ck, x), _train_step(plain, x)
    assert kept_ck < kept_plain / 2  # the regions' activations were not kept for backward
    assert torch.equal(out_ck, out_plain)
    for (name, p), q in zip(ck.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    for (name, a), b in zip(ck.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name  # running stats updated once, not again in the recompute


@pytest.mark.parametrize("arch, sets, x", [
    ("densenet121", {"blocks": [2, 2, 2, 2]}, (2, 3, 64, 64)),
    ("densenet_bc100_k12", {"depth": 16}, (2, 3, 32, 32)),
    ("densenet40_k12", {"depth": 10}, (2, 3, 32, 32)),
    ("densenet_uva", {"layers": [2, 2]}, (2, 3, 32, 32)),
])
def test_efficient_densenets_train_like_the_plain_ones(arch, sets, x):
    """The zoo's `efficient = true`: each layer checkpointed, same step as without (and as torchvision's flag does)."""
    path = ROOT / "archs" / f"{arch}.arch"
    ck, plain = build(path, efficient=True, **sets), build(path, **sets)
    layers = sum(1 for n, _ in plain.named_modules() if n.endswith(("norm1", ".net.0")))  # each layer's first BN
    assert sum(isinstance(m, CheckpointRegion) for m in ck.modules()) == layers > 0
    plain.load_state_dict(ck.state_dict(), strict=True)
    x = torch.randn(*x)
    (out_ck, kept_ck), (out_plain, kept_plain) = _train_step(ck, x), _train_step(plain, x)
    assert kept_ck < kept_plain and torch.allclose(out_ck, out_plain)
    for (name, p), q in zip(ck.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def test_drop_path_semantics():
    text = "arch dp\ninput [4, 6, 6]\nadd {\n    identity\n    { conv(4, 3, pad = 1) } @drop_path(0.5)\n}\n"
    model = build(text)
    x = torch.randn(256, 4, 6, 6)
    branch = model.conv(x).detach()
    model.eval()
    assert torch.equal(model(x), x + branch)
    model.train()
    torch.manual_seed(1)
    delta = (model(x) - x).detach()
    dropped = delta.flatten(1).abs().amax(1) == 0
    kept = torch.isclose(delta, 2 * branch, atol=1e-5).flatten(1).all(1)
    assert (dropped | kept).all() and 60 < dropped.sum() < 196  # per sample, about half each
    assert torch.equal(DropPath(1.0).train()(x), torch.zeros_like(x))


def test_build_from_path_with_overrides(tmp_path):
    path = tmp_path / "densenet.arch"
    path.write_text(small_densenet())
    model = build(str(path), growth=12, classes=10)
    expected = compile_file(path, overrides={"growth": 12, "classes": 10}).graph.totals().params
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # a Python list is the language's list: torchvision's DenseNet with the same block config
    ours = build(ROOT / "archs/densenet121.arch", blocks=[2, 2, 2, 2])
    theirs = torchvision.models.DenseNet(32, (2, 2, 2, 2), 64)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_initialisation():
    tv = build(at(DENSENET121, 64).replace("blocks = [6, 12, 24, 16]", "blocks = [1, 1]"))
    conv = tv.features.conv0.weight
    assert abs(conv.std().item() - (2 / (64 * 49)) ** 0.5) < 0.001  # Kaiming fan_out
    assert torch.equal(tv.features.norm0.weight, torch.ones(64)) and not tv.classifier.bias.any()
    default = build(at(RESNET18, 64).replace("input [3, 64, 64]", "input [3, 64, 64]\ninit pytorch"))
    assert default.fc.bias.abs().sum() > 0


@pytest.mark.filterwarnings("ignore:`torch.jit.trace")
def test_export_trace_deepcopy_pickle_channels_last():
    model = build(small_densenet(checkpoint=True)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(torch.export.export(model, (x,)).module()(x), ref, atol=1e-6)
        assert torch.allclose(torch.jit.trace(model, (x,))(x), ref, atol=1e-6)
        for twin in (copy.copy(model), copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert list(twin.state_dict()) == list(model.state_dict())
            assert torch.equal(twin(x), ref)
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
        assert torch.allclose(fast(x.to(memory_format=torch.channels_last)), ref, atol=1e-5)
    assert type(copy.deepcopy(model)).__name__ == "densenet121"


def test_compile_traces_the_model():
    model = build("arch tiny\ninput [3, 8, 8]\nconv(4, 3, pad = 1); bn; relu; gap; flatten; linear(2)").eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(torch.compile(model, backend="aot_eager")(x), model(x), atol=1e-6)


@pytest.mark.slow
def test_compile_inductor_trains_through_checkpoints():
    torch.manual_seed(0)
    ck, plain = build(small_densenet(checkpoint=True)), build(small_densenet())
    plain.load_state_dict(ck.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32)
    _train_step(torch.compile(ck), x), _train_step(plain, x)
    for p, q in zip(ck.parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5)
    for a, b in zip(ck.state_dict().values(), plain.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), atol=1e-5)


def test_macs_match_flop_counter():
    g = compile_file(text=at(RESNET18, 64)).graph
    with FlopCounterMode(display=False) as counter:
        build_graph(g).eval()(torch.randn(1, 3, 64, 64))
    assert counter.get_total_flops() == 2 * g.totals().macs


def test_python_keyword_labels_are_refused():
    with pytest.raises(ArchError, match="Python keyword"):
        build("arch k\ninput [3, 8, 8]\nclass: conv(4, 1)")


def test_drop_path_on_a_labelled_op_sits_beside_it():
    model = build("arch t\ninput [3, 8, 8]\nadd {\n identity\n c: conv(3, 3, pad = 1) @drop_path(0.1)\n}\n")
    assert isinstance(model.c_drop_path, DropPath) and not list(model.c.children())


def test_scopes_are_callable_modules_like_torchvision_s():
    """`model.features(x)`, `model.layer1(x)`, a stage list as a feature extractor, hooks per block."""
    torch.manual_seed(0)
    ours, ref = build(at(RESNET18, 64)).eval(), torchvision.models.resnet18().eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        stem = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        assert max_diff(ours.layer1(stem), ref.layer1(stem)) < 1e-5
        trunk = torch.nn.Sequential(*list(ours.children())[:-2])  # the fine-tuning recipe's feature extractor
        assert max_diff(trunk(x), torch.nn.Sequential(*list(ref.children())[:-2])(x)) < 1e-5
    seen = {}

    def record(name):
        def hook(module, inputs, out):
            seen[name] = tuple(out.shape[1:])
        return hook
    for name, m in ours.named_modules():
        if hasattr(m, "kind"):
            m.register_forward_hook(record(name))
    g = check(at(RESNET18, 64))
    with torch.no_grad():
        ours(x)
    last = {s: [n for n in g.topo() if n.startswith(s + ".")][-1] for s in ("layer1", "layer2.0", "layer4")}
    assert all(seen[s] == g.shapes[n] for s, n in last.items())  # torchinfo's per-block shapes
    dense = build(small_densenet())
    with torch.no_grad():
        assert dense.features(torch.randn(2, 3, 32, 32)).shape[1:] == check(small_densenet()).shapes["features.norm5"]
    with pytest.raises(NotImplementedError, match="reads 3 values from outside"):  # its pieces
        dense.features.denseblock1.denselayer2(torch.randn(1, 8, 8, 8))


def test_replaced_submodules_are_used_by_their_scope():
    """Fine-tuning recipes replace a layer inside a stage; the stage must call the new one."""
    model = build(at(RESNET18, 64)).eval()
    model.layer4[1].conv2 = torch.nn.Identity()
    model.fc = torch.nn.Linear(512, 3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert model.layer4[1].conv2.__class__ is torch.nn.Identity


def test_compiled_efficient_densenet_is_one_graph():
    """Checkpoint regions are traced, not graph breaks: one frame, no recompiles per layer."""
    from torch._dynamo.testing import CompileCounterWithBackend
    torch._dynamo.reset()
    model = build(small_densenet(checkpoint=True))
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(2):
        compiled(x).sum().backward()
    assert counter.frame_count == 1


def test_refused_labels_cover_every_module_attribute():
    """compiler/scope.py's torch-free list holds every attribute a built container has."""
    from archc.compiler.codegen.generate import Scope
    from archc.compiler.codegen.layers import Block
    from archc.compiler.scope import MODULE_ATTRIBUTES
    model = build(at(RESNET18, 64))
    names = set(dir(model)) | set(vars(model)) | set(dir(Block())) | set(vars(Block()))
    names |= set(dir(model.layer1)) | set(vars(model.layer1)) | set(dir(Scope))
    names -= set(model._modules)  # the model's own children are labels, not attributes
    assert {n for n in names if not n.startswith("__")} <= MODULE_ATTRIBUTES  # "__..." is refused as a whole
