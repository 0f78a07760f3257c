"""Language constructs, each against what it must mean: expression forms, labels, merges by
name, and the modern-CNN ops checked against torchvision's own modules (the reference)."""
from __future__ import annotations

import pytest
import torch
import torchvision

import archc
from archc.compiler.builder import build_graph
from archc.compiler.init import INITIALIZERS


def net(body: str, shape=(8, 6, 6), header: str = "arch t") -> str:
    return f"{header}\ninput [{', '.join(map(str, shape))}]\n{body}\n"


@pytest.mark.parametrize("expr, value", [("int(k) * 2", 6), ("min(k, 2) * 2", 4), ("len(xs) * 2", 4),
                                         ("max(xs) * k", 6), ("k * 2", 6)])
def test_calls_multiply(expr, value):
    """`*` after a call is multiplication (it was lexed as repetition)."""
    g = archc.check(net(f"let w = {expr}\nconv(w, 1)", header="arch t(k = 3, xs = [1, 2])"))
    assert g.shapes[g.output_id] == (value, 6, 6)


def test_a_dropped_item_claims_no_label():
    g = archc.check(net("a: relu if false\na: conv(4, 1)"))
    assert "a" in g and g.node("a").op == "conv"


def test_label_after_else():
    g = archc.check(net("relu if false else b: conv(4, 1)"))
    assert g.node("b").op == "conv"


def test_keyword_and_dash_labels_are_module_names():
    model = archc.build(net('block: conv(4, 1)\n"block1-0": conv(4, 1)\ninput_: relu'))
    assert {"block.weight", "block1-0.weight"} <= set(model.state_dict())
    assert model(torch.randn(1, 8, 6, 6)).shape == (1, 4, 6, 6)


def test_cr_only_line_endings_read_like_newlines():
    text = net("conv(4, 3, pad = 1)\nrelu")
    assert archc.check(text.replace("\n", "\r")).totals() == archc.check(text).totals()


# ---- modern-CNN ops against torchvision's modules --------------------------------------------------------
def same(built, reference, x, atol=1e-6):
    built.load_state_dict(reference.state_dict(), strict=True)
    built.eval(), reference.eval()
    with torch.no_grad():
        a, b = built(x), reference(x)
    assert a.shape == b.shape and (a - b).abs().max().item() <= atol * (1 + b.abs().max().item())


def test_squeeze_excitation_is_torchvision_s():
    from torchvision.ops import SqueezeExcitation
    body = """mul {
        identity
        { avgpool: gap; fc1: conv(4, 1); activation: relu; fc2: conv(16, 1); scale_activation: sigmoid }
    }"""
    g = archc.check(net(body, shape=(16, 5, 5)))
    same(build_graph(g), SqueezeExcitation(16, 4), torch.randn(2, 16, 5, 5))


def test_convnext_block_is_torchvision_s():
    from torchvision.models.convnext import CNBlock
    body = """add {
        identity
        { block: { "0": conv(16, 7, pad = 3, groups = 16); "2": layernorm(eps = 0.000001); "3": channel_linear(64)
                   "4": gelu; "5": channel_linear(16) }
          layer_scale: layer_scale(0.5) }
    }"""
    reference = CNBlock(16, 0.5, 0.0)
    with torch.no_grad():
        reference.layer_scale.normal_()  # a value other than the init, so a wrong lowering shows
    g = archc.check(net(body, shape=(16, 9, 9)))
    same(build_graph(g), reference, torch.randn(2, 16, 9, 9), atol=1e-5)


def test_shufflenet_units_are_torchvision_s():
    from torchvision.models.shufflenetv2 import InvertedResidual
    body = """concat {
        chunk(2, 0)
        { chunk(2, 1); branch2: { "0": conv(8, 1, bias = false); "1": bn; "2": relu
                                  "3": conv(8, 3, pad = 1, groups = 8, bias = false); "4": bn
                                  "5": conv(8, 1, bias = false); "6": bn; "7": relu } }
    }
    channel_shuffle(2)"""
    g = archc.check(net(body, shape=(16, 6, 6)))
    same(build_graph(g), InvertedResidual(16, 16, 1), torch.randn(2, 16, 6, 6))


def test_hard_activations_are_torch_s():
    g = archc.check(net("hardswish; hardsigmoid"))
    x = torch.randn(2, 8, 6, 6) * 4
    with torch.no_grad():
        assert torch.equal(build_graph(g)(x), torch.nn.functional.hardsigmoid(torch.nn.functional.hardswish(x)))


def test_affine_is_googlenet_s_transform_input():
    model = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    scale = [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5]
    shift = [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5]
    g = archc.check(net(f"affine({scale}, {shift})", shape=(3, 8, 8)))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert (build_graph(g)(x) - model._transform_input(x)).abs().max().item() <= 1e-6


# ---- auxiliary outputs -----------------------------------------------------------------------------------
AUX = """arch t(aux_logits = true)
input [3, 16, 16]
block head(n) = { pool: gap; flatten; fc: linear(n) }
conv1: conv(8, 3, pad = 1); relu
aux1: head(10) @aux(2) if aux_logits
conv2: conv(8, 3, pad = 1); relu
aux2: head(7) @aux(1) if aux_logits
gap; flatten; fc: linear(5)
"""


def test_aux_heads_run_in_training_only_in_their_order(tmp_path):
    from archc.compiler.builder import emit_python
    from torchcheck import load_emitted
    g = archc.check(AUX)
    assert [g.shapes[o] for o in g.output_ids] == [(5,), (7,), (10,)]
    assert g.totals(g.inference_nodes()).params == g.totals().params - (8 * 10 + 10) - (8 * 7 + 7)
    model, emitted = build_graph(g), load_emitted(emit_python(g), tmp_path).build()
    emitted.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    for m in (model, emitted):
        m.train()
        assert [o.shape[1] for o in m(x)] == [5, 7, 10]
        m.eval()
        assert m(x).shape == (2, 5)  # eval: the main output alone, heads not run
    with torch.no_grad():
        assert torch.equal(model(x), emitted(x))
    plain = archc.check(AUX, aux_logits=False)
    assert plain.aux_ids == () and plain.totals().params == g.totals(g.inference_nodes()).params


def test_aux_positions_must_number_the_heads():
    with pytest.raises(archc.ArchError, match="number the auxiliary outputs"):
        archc.check(AUX.replace("@aux(1)", "@aux(3)"))


# ---- init schemes ------------------------------------------------------------------------------------
INIT = """arch t(zero_last = true)
input [4, 8, 8]
init {
    conv: kaiming_normal(mode = "fan_out", nonlinearity = "relu"); conv.bias: zeros
    conv.weight in "b.*": normal(std = 0.5)
    conv.weight in "b.c2": zeros if zero_last
    bn.weight: constant(2.0)
    linear: uniform(-1 / sqrt(fan_out), 1 / sqrt(fan_out)); linear.bias: default
}
a: conv(16, 3, pad = 1); bn
b: { c1: conv(16, 3, pad = 1); c2: conv(16, 1) }
gap; flatten; fc: linear(400)
"""


def test_init_rules_last_match_wins_by_op_tensor_glob_and_condition(tmp_path):
    from archc.compiler.builder import emit_python
    from torchcheck import load_emitted
    torch.manual_seed(0)
    m = archc.build(INIT)
    assert abs(m.a.weight.std().item() - (2 / (16 * 9)) ** 0.5) < 0.02  # kaiming, fan_out = 16 * 3 * 3
    assert not m.a.bias.any() and torch.equal(m.bn.weight, torch.full((16,), 2.0))
    assert abs(m.b.c1.weight.std().item() - 0.5) < 0.03  # the glob's rule comes later and wins
    assert not m.b.c2.weight.any()  # and the conditional one after it
    bound = 1 / 400 ** 0.5  # fan_out of a 400×16 weight
    assert m.fc.weight.abs().max() <= bound and m.fc.weight.abs().max() > 0.9 * bound
    assert m.fc.bias.abs().max() <= 1 / 16 ** 0.5  # `default`: PyTorch's own Linear bias init
    assert not archc.build(INIT, zero_last=False).b.c2.weight.eq(0).all()
    torch.manual_seed(0)  # the emitted build() starts every tensor the same way
    emitted = load_emitted(emit_python(archc.check(INIT)), tmp_path).build()
    for (name, a), b in zip(m.state_dict().items(), emitted.state_dict().values()):
        assert torch.equal(a, b), name


def test_schemes_are_defined_in_library_files_and_extended(tmp_path):
    (tmp_path / "lib.arch").write_text('init mine = {\n conv: constant(0.25)\n}\n')
    (tmp_path / "net.arch").write_text('import "lib.arch"\narch n\ninput [3, 4, 4]\ninit mine { conv.bias: ones }\n'
                                       "conv(2, 1)\n")
    m = archc.build(tmp_path / "net.arch")
    assert torch.equal(m.conv.weight, torch.full((2, 3, 1, 1), 0.25)) and torch.equal(m.conv.bias, torch.ones(2))


@pytest.mark.parametrize("rule, message", [
    ("conv: kaiming_nromal", "unknown initializer `kaiming_nromal`"),
    ("cnv: zeros", "unknown op `cnv`"),
    ("conv.wieght: zeros", "`conv` has no tensor `wieght`"),
    ("relu: zeros", "`relu` has no learned tensors"),
    ('conv: kaiming_normal(mode = "fan_up")', "bad value for `mode`"),
])
def test_bad_init_rules_are_located_errors(rule, message):
    with pytest.raises(archc.ArchError, match=message.replace("(", r"\(")) as err:
        archc.check(f"arch t\ninput [3, 4, 4]\ninit {{ {rule} }}\nconv(2, 1)\n")
    assert err.value.span is not None


@pytest.mark.parametrize("fn", sorted(INITIALIZERS))
@pytest.mark.parametrize("target, shape", [("conv.bias", (2,)), ("linear.weight", (5, 2)), ("conv.weight", (2, 3, 1, 1)),
                                           ("conv", (2,))])  # a rule without .TENSOR meets the bias too
def test_init_rules_torch_cannot_apply_are_refused_by_check(fn, target, shape):
    """`check` refuses exactly what torch.nn.init would refuse when the model is built."""
    spec = f"arch t\ninput [3, 4, 4]\ninit {{ {target}: {fn} }}\nconv(2, 1); gap; flatten; linear(5)\n"
    try:
        getattr(torch.nn.init, fn + "_")(torch.empty(shape), **{a.name: a.default for a in INITIALIZERS[fn].args})
        torch_takes_it = True
    except ValueError:
        torch_takes_it = False
    if torch_takes_it:
        archc.build(spec)
    else:
        with pytest.raises(archc.ArchError, match=f"`{fn}` cannot start") as err:
            archc.check(spec)
        assert err.value.span is not None and err.value.span.line == 3


# ---- functions, library values, chained conditions, math builtins ----------------------------------------
def _make_divisible(v, divisor=8):  # torchvision's, the reference for the .arch function below
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


MD = "let md(v, d = 8) = max(d, int(v + d / 2) // d * d) + (d if max(d, int(v + d / 2) // d * d) < 0.9 * v else 0)"


@pytest.mark.parametrize("v, d", [(30, 8), (12, 8), (67.2, 8), (100, 16), (3, 8), (37.5, 4)])
def test_functions_compute_like_python(v, d):
    g = archc.check(net(f"{MD}\nconv(md({v}, d = {d}), 1)"))
    assert g.shapes[g.output_id][0] == _make_divisible(v, d)


def test_library_files_export_values_and_functions(tmp_path):
    (tmp_path / "lib.arch").write_text(f"{MD}\nlet WIDTHS = [16, 24]\nblock b(c) = conv(md(c), 1)\n")
    (tmp_path / "net.arch").write_text('import "lib.arch"\narch n\ninput [3, 4, 4]\nb(WIDTHS[1] + 5)\nconv(md(9), 1)\n')
    g = archc.check(tmp_path / "net.arch")
    assert [g.shapes[n][0] for n in ("b", "conv")] == [_make_divisible(29), _make_divisible(9)]


@pytest.mark.parametrize("body, message", [
    ("let f(x) = f(x)\nconv(f(1), 1)", "`f` calls itself: functions cannot recurse"),
    ("let f(g) = g(g)\nconv(f(f), 1)", "function calls nest deeper than"),
    ("let f(x) = x\nconv(f(1, 2), 1)", "`f` takes 1 arguments"),
    ("let f(x) = x\nconv(f(y = 1), 1)", "`f` has no parameter `y`"),
    ("let f(x) = x\nconv(f(), 1)", "`f` needs its `x` argument"),
])
def test_function_errors_are_located(body, message):
    with pytest.raises(archc.ArchError, match=message) as err:
        archc.check(net(body))
    assert err.value.span is not None


def test_chained_conditions_and_math_builtins():
    chain = 'a: relu if act == "relu" else silu if act == "silu" else gelu'
    for act, op in [("relu", "relu"), ("silu", "silu"), ("tanh", "gelu")]:
        g = archc.check(net(chain, header=f'arch t(act = "{act}")'))
        assert g.node("a").op == op
    g = archc.check(net("conv(ceil(2.1) + floor(2.9) + int(log(8, 2)) + int(log(1)), 1)"))
    assert g.shapes[g.output_id][0] == 3 + 2 + 3 + 0


def test_front_end_shows_every_output_and_its_cost(capsys):
    from archc.compiler.summary import outputs
    from archc.runtime.cli import main
    g = archc.check(AUX)
    main_out, aux2, aux1 = outputs(g)
    assert (main_out.shape, aux2.shape, aux1.shape) == ((5,), (7,), (10,)) and (aux2.name, aux1.name) == ("aux2", "aux1")
    assert (aux1.params, aux2.params) == (8 * 10 + 10, 8 * 7 + 7) and main_out.macs == g.totals(g.inference_nodes()).macs
    assert main(["check", "googlenet"]) == 0  # a name: found in the bundled registry
    assert "aux 1000, 1000" in capsys.readouterr().out


# ---- merges written with one branch ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["add", "concat", "mul"])
def test_a_merge_written_with_one_branch_is_refused_where_it_is(kind):
    """`add { conv(8, 3, pad = 1); identity }` is one branch of two items (a plain chain), not a residual."""
    with pytest.raises(archc.ArchError, match=f"`{kind}` is written with one branch") as err:
        archc.check(net(f"relu\n{kind} {{ conv(8, 3, pad = 1); identity }}"))
    assert (err.value.span.line, err.value.span.col) == (4, 1) and "a line per branch" in err.value.hint


def test_one_written_loop_or_a_branch_dropped_by_its_condition_still_merge():
    g = archc.check(net("concat { for i in range(3) { conv(2, 1) } }"))
    assert g.shapes[g.output_id] == (6, 6, 6)  # three branches from one written loop
    plain = archc.check(net("add {\n relu\n identity if false\n}"))
    assert "add" not in {plain.node(n).op for n in plain.topo()}  # a merge left with one branch is that branch


def test_a_function_calling_itself_is_refused_as_recursion_but_may_call_an_earlier_one_of_its_name():
    with pytest.raises(archc.ArchError, match="`f` calls itself: functions cannot recurse") as err:
        archc.check(net("let f(n) = 1 if n == 0 else f(n - 1)\nconv(f(3), 1)"))
    assert (err.value.span.line, err.value.span.col) == (3, 29)
    g = archc.check(net("let f(n) = n + 1\nlet f(n) = f(n) * 2\nconv(f(3), 1)"))
    assert g.shapes[g.output_id][0] == 8
