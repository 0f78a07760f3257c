"""torchvision's classification CNNs as .arch files, checked against torchvision itself.

One row of ``ZOO`` per model: the arch file, torchvision's builder name and keyword arguments,
the input size for the torch checks (the smallest the model takes, about; every arch has a
`size` parameter), and whether those checks are slow. For each row:

1. static params (``archc.check``, torch-free) == torchvision's parameter count (meta device),
   auxiliary heads included;
2. static MACs at the default size of an eval forward (``g.inference_nodes()``: no aux heads)
   within 0.5% of torchvision's published ``_ops`` (GMACs);
3. torchvision's state dict loads strictly into the built module;
4. eval outputs equal torchvision's (relative 1e-5) with real BN statistics;
5. one train-mode forward/backward (same seed, so the same dropout masks) gives the same
   outputs (with aux heads the tuple (main, aux...)), loss, gradients and BN running statistics;
6. ``archc compile FILE --weights torchvision:NAME`` loads (from a pre-seeded torch cache);
7. ``archc list`` shows every arch;
8. for the families whose arch states torchvision's init scheme (``SAME_INIT``), the same seed
   gives bitwise the same initial state dict as torchvision's builder;
9. every row's initial tensors are drawn like torchvision's: constants equal, random tensors'
   mean, std and kurtosis within bounds derived from their size.
The static checks (1, 2) run for every row in the default profile; the torch checks only for
the cheap models, the rest are ``@pytest.mark.slow``.
"""
from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.googlenet import InceptionAux as GoogLeNetAux
from torchvision.models.inception import InceptionAux as InceptionV3Aux

import archc
from archc.dsl.loader import load
from archc.runtime.cli import main
from archc.runtime.weights import meta_model
from torchcheck import one_thread  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
MAC_TOLERANCE = 0.005  # relative, against torchvision's 3-decimal GMACs
PUBLISHED_DIGIT = 0.0005  # GMACs: half the last digit torchvision publishes (mobilenet_v3_small's 0.0565 is its 0.057)
OUT_TOLERANCE = 1e-5   # eval outputs, relative to the largest output
BATCH = 2  # smallest that BN can train on at 1x1 maps and that shows outputs depend on the input
GRAD_TOLERANCE = 1e-4  # per parameter, relative to its largest gradient (summation order may differ)
# GoogLeNet and Inception-v3: init_weights=True is what their default (None) becomes, without
# its FutureWarning; the rows with `sets` vary other defaults (the arch parameters of the same name).
INCEPTION = {"init_weights": True}
NO_AUX = {"aux_logits": False}
TRANSFORM_NO_DROPOUT = {"transform_input": True, "dropout": 0.0, "dropout_aux": 0.0}


@dataclass(frozen=True)
class Model:
    arch: str                  # archs/<arch>.arch
    builder: str               # torchvision.models.get_model name
    size: int                  # input size of the torch checks
    slow: bool = True          # torch checks only under `-m slow`
    kwargs: dict = field(default_factory=dict)  # builder keyword arguments
    sets: dict = field(default_factory=dict)    # arch parameters matching `kwargs`
    published: bool = True     # torchvision has weights (and so published MACs) for it

    @property
    def path(self) -> str:
        return str(ROOT / "archs" / f"{self.arch}.arch")

    @property
    def id(self) -> str:
        return "-".join([self.arch, *(f"{k}={v}" for k, v in self.sets.items())])


def _family(names, size, cheap=(), **kw):
    return [Model(n, n, size, slow=n not in cheap, **kw) for n in names]


ZOO = [
    *_family(["alexnet"], 64),
    *_family([f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")], 32),
    *_family(["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
              "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"], 32, cheap={"resnet18"}),
    *_family(["densenet121", "densenet161", "densenet169", "densenet201"], 32),
    *_family(["squeezenet1_0", "squeezenet1_1"], 32, cheap={"squeezenet1_0", "squeezenet1_1"}),
    *_family(["mobilenet_v2"], 32, cheap={"mobilenet_v2"}),
    Model("mobilenet_v2", "mobilenet_v2", 32, kwargs={"width_mult": 0.5}, sets={"width_mult": 0.5}, published=False),
    Model("mobilenet_v2", "mobilenet_v2", 32, kwargs={"width_mult": 1.4}, sets={"width_mult": 1.4}, published=False),
    *_family(["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"], 32, cheap={"mnasnet0_5"}),
    # torchvision's defaults: auxiliary heads (returned in training), no input renormalisation
    *_family(["googlenet"], 32, cheap={"googlenet"}, kwargs=INCEPTION),
    *_family(["inception_v3"], 299, kwargs=INCEPTION),  # its aux head takes Mixed_6e's 17x17 map of 299x299 only
    Model("googlenet", "googlenet", 32, slow=False, kwargs={**INCEPTION, **NO_AUX}, sets=NO_AUX),
    Model("inception_v3", "inception_v3", 75, kwargs={**INCEPTION, **NO_AUX}, sets=NO_AUX),
    # affine() as transform_input; no dropout, so the training outputs of the aux heads compare
    # despite the heads' dropout masks drawn in another order (test_train_step_equal)
    Model("googlenet", "googlenet", 32, slow=False, kwargs={**INCEPTION, **TRANSFORM_NO_DROPOUT},
          sets=TRANSFORM_NO_DROPOUT, published=False),
    # ---- the modern families (ZOO-2) ----
    *_family(["mobilenet_v3_small", "mobilenet_v3_large"], 32, cheap={"mobilenet_v3_small"}),
    Model("mobilenet_v3_large", "mobilenet_v3_large", 32, kwargs={"width_mult": 0.75, "reduced_tail": True},
          sets={"width_mult": 0.75, "reduced_tail": True}, published=False),
    Model("mobilenet_v3_small", "mobilenet_v3_small", 32, kwargs={"dilated": True}, sets={"dilated": True},
          published=False),
    *_family([f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")], 32, cheap={"shufflenet_v2_x0_5"}),
    *_family([f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_v2_{s}" for s in "sml"], 32,
             cheap={"efficientnet_b0"}),
    # stochastic depth that drops often: the train step compares the drop masks
    Model("efficientnet_b0", "efficientnet_b0", 32, kwargs={"stochastic_depth_prob": 0.5},
          sets={"stochastic_depth_prob": 0.5}, published=False),
    *_family([f"regnet_{k}_{s}" for k in "xy" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")]
             + ["regnet_y_128gf"], 32, cheap={"regnet_x_400mf"}),
    *_family([f"convnext_{s}" for s in ("tiny", "small", "base", "large")], 32, cheap={"convnext_tiny"}),
    Model("convnext_tiny", "convnext_tiny", 32, kwargs={"stochastic_depth_prob": 0.5},
          sets={"stochastic_depth_prob": 0.5}, published=False),
]



def _params(models, torch_check=False):
    return [pytest.param(m, id=m.id, marks=[pytest.mark.slow] if torch_check and m.slow else [])
            for m in models]


def torchvision_model(m: Model, **extra):
    return torchvision.models.get_model(m.builder, **{**m.kwargs, **extra})


# ---- 1, 2: static counts -----------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _check(path: str, sets: tuple):
    """(totals of every node, totals of what an eval forward runs): the parameters include the
    auxiliary heads, as torchvision's modules do; its published MACs are of inference, without them."""
    g = archc.check(path, **dict(sets))
    return g.totals(), g.totals(g.inference_nodes())


def _totals(m: Model, inference: bool = False):
    return _check(m.path, tuple(m.sets.items()))[inference]


@pytest.mark.parametrize("m", _params(ZOO))
def test_params_equal_torchvision(m):
    want = sum(p.numel() for p in meta_model(m.builder, **m.kwargs).parameters())  # shapes only: no memory, no init
    assert _totals(m).params == want


@pytest.mark.parametrize("m", _params([m for m in ZOO if m.published]))
def test_macs_match_published(m):
    """torchvision's ``_ops`` are GMACs (one multiply-add = 1), as archc counts them."""
    want = torchvision.models.get_model_weights(m.builder).DEFAULT.meta["_ops"]
    got = _totals(m, inference=True).macs / 1e9
    assert abs(got - want) <= max(MAC_TOLERANCE * want, PUBLISHED_DIGIT), f"{got:.4f} GMACs vs published {want}"


# ---- 3, 4, 5: the built module against torchvision's ---------------------------------------------
def _realistic(ref: torch.nn.Module, size: int) -> None:
    """Non-trivial BN affine terms, and running statistics of real batches: with the default
    statistics (mean 0, var 1) deep nets' eval outputs vanish or explode, and a comparison of
    outputs near 1e-9 proves nothing. Cumulative averages (momentum None) for the warm-up, so
    MNASNet's momentum of 3e-4 gets real statistics too; each BN's momentum is restored after."""
    bns = [m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = [bn.momentum for bn in bns]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.2, 0.2)
            bn.momentum = None
            bn.reset_running_stats()
        # ConvNeXt: non-trivial LayerNorm affine terms too, and layer scales well above their
        # initial 1e-6, which would hide every block's branch from the output comparison
        for ln in (m for m in ref.modules() if isinstance(m, torch.nn.LayerNorm)):
            ln.weight.uniform_(0.5, 1.5), ln.bias.uniform_(-0.2, 0.2)
        for name, p in ref.named_parameters():
            if name.endswith("layer_scale"):
                p.uniform_(0.1, 0.5)
        ref.train()
        for _ in range(2):
            ref(torch.randn(BATCH, 3, size, size))
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum


@pytest.fixture(scope="class", params=_params(ZOO, torch_check=True))
def pair(request):
    """(torchvision model, archc model with its state dict, the row); built once per row."""
    m = request.param
    torch.manual_seed(0)
    ref = torchvision_model(m)
    _realistic(ref, m.size)
    ours = archc.build(m.path, size=m.size, **m.sets)
    ours.load_state_dict(ref.state_dict(), strict=True)  # check 3: raises on any missing/extra/misshaped key
    yield ref, ours, m


class TestAgainstTorchvision:
    def test_state_dict_names_and_shapes_equal(self, pair):
        ref, ours, _ = pair
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}

    def test_eval_outputs_equal(self, pair):
        ref, ours, m = pair
        ref.eval(), ours.eval()
        x = torch.randn(BATCH, 3, m.size, m.size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want, got = ref(x), ours(x)
        scale = want.abs().max().item()
        # the outputs must mean something: not denormal-small, and different per input
        assert scale > 1e-4 and (want - want.mean(0)).abs().max().item() > 1e-2 * scale, scale
        assert got.shape == want.shape
        err = (got - want).abs().max().item()
        assert err <= OUT_TOLERANCE * scale, f"max error {err:.3g} at output scale {scale:.3g}"

    def test_train_step_equal(self, pair):
        ref, ours, m = pair
        ref.train(), ours.train()
        x = torch.randn(BATCH, 3, m.size, m.size, generator=torch.Generator().manual_seed(2))
        y = torch.arange(BATCH)
        losses, outputs = [], []
        for net in (ref, ours):
            net.zero_grad(set_to_none=True)
            torch.manual_seed(3)  # the same dropout masks on both sides
            out = net(x)  # with aux heads (main, aux...): torchvision's are namedtuples
            out = tuple(out) if isinstance(out, tuple) else (out,)
            loss = sum(F.cross_entropy(o, y) for o in out)  # every head gets gradients
            loss.backward()
            losses.append(loss.item()), outputs.append(out)
        assert len(outputs[1]) == len(outputs[0])
        for i, (want, got) in enumerate(zip(*outputs)):
            assert (got - want).abs().max().item() <= OUT_TOLERANCE * want.abs().max().item(), f"output {i}"
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)
        theirs = dict(ref.named_parameters())
        for name, p in ours.named_parameters():
            want = theirs[name].grad
            tol = GRAD_TOLERANCE * want.abs().max().item() + 1e-12
            assert (p.grad - want).abs().max().item() <= tol, name
        our_buffers = dict(ours.named_buffers())  # BN momentum: the running statistics moved alike
        for name, b in ref.named_buffers():  # (affine's constants are ours alone, and not in the state dict)
            torch.testing.assert_close(our_buffers[name], b, rtol=1e-4, atol=1e-6, msg=name)


# ---- 8: initialisation -------------------------------------------------------------------------
# Families whose lib file defines torchvision's scheme (`init NAME = { ... }`): the same
# initializers, drawn in the same order, so the same seed starts both models bitwise alike.
SAME_INIT = ("mobilenet_v3", "shufflenet_v2", "efficientnet", "regnet", "convnext")


@pytest.mark.parametrize("m", _params([m for m in ZOO if m.arch.startswith(SAME_INIT)], torch_check=True))
def test_initialisation_equals_torchvision(m):
    torch.manual_seed(0)
    want = torchvision_model(m).state_dict()
    torch.manual_seed(0)
    got = archc.build(m.path, size=m.size, **m.sets).state_dict()
    assert [k for k, v in want.items() if not torch.equal(got[k], v)] == []


# ---- 9: initial distributions --------------------------------------------------------------------
# Every row, both models built fresh (no forward: init does not depend on the input size): each
# state-dict tensor starts from torchvision's distribution, whatever order the draws came in.
# Constant starts (zeros, ones, constants, BN buffers) must be equal. A random tensor's mean, std
# and kurtosis (which tells a uniform from a normal of the same std) must agree within Z standard
# errors of the difference of two samples of its n draws: sqrt(2/n) std for the mean, 1/sqrt(n)
# relative for the std (each sample's ~1/sqrt(2n)), sqrt(48/n) for the kurtosis (each 24/n): a
# normal's errors, the largest of torch.nn.init's light-tailed draws (a uniform's are smaller).
# The draws are i.i.d., so the first DRAWS of a bigger tensor are a sample as good as any.
Z = 6  # seeded, so it cannot flake; and a right scheme has < 1e-8 odds per tensor of failing
DRAWS = 1 << 20  # VGG's 100M-element fc would cost seconds; 1M gives the kurtosis a +-0.04 bound


def _moments(t: torch.Tensor) -> tuple[float, float, float]:
    x = t.detach().flatten()[:DRAWS].double()
    c = x - x.mean()
    var = c.pow(2).mean()
    return x.mean().item(), var.sqrt().item(), (c.pow(4).mean() / var ** 2).item()


def _constant(t: torch.Tensor) -> bool:
    x = t.flatten()
    return bool((x[:DRAWS] == x[0]).all()) and bool((x == x[0]).all())  # a random tensor stops at its sample


def _init_difference(got: torch.Tensor, want: torch.Tensor) -> str | None:
    """Why ``got`` does not look drawn like ``want``, or None."""
    if _constant(got) or _constant(want):
        if torch.equal(got, want):
            return None
        show = lambda t: f"all {t.flatten()[0].item():g}" if _constant(t) else "mean {:.3g} std {:.3g}".format(*_moments(t))
        return f"{show(got)}, torchvision {show(want)}"
    n = min(want.numel(), DRAWS)
    (mean, std, kurt), (want_mean, want_std, want_kurt) = _moments(got), _moments(want)
    for stat, a, b, tol in (("mean", mean, want_mean, Z * want_std * (2 / n) ** 0.5),
                            ("std", std, want_std, Z * want_std / n ** 0.5),
                            ("kurtosis", kurt, want_kurt, Z * (48 / n) ** 0.5)):
        if abs(a - b) > tol:
            return f"{stat} {a:.4g}, torchvision {b:.4g} (tolerance {tol:.2g} at {n} draws)"
    return None


def _init_rows():
    """By default the torch checks' cheap rows without variations (their schemes are the same)
    and outside SAME_INIT (checked bitwise above), and DenseNet-121, whose fan-in convs no cheap
    row has (1 s to build; VGG's 133M parameters take 4 s of CPU, left to `-m slow`)."""
    cheap = [m for m in ZOO if not (m.slow or m.sets or m.arch.startswith(SAME_INIT)) or m.arch == "densenet121"]
    return [pytest.param(m, id=m.id, marks=[] if m in cheap else [pytest.mark.slow]) for m in ZOO]


@pytest.mark.parametrize("m", _init_rows())
def test_initial_distributions_equal_torchvision(m, request):
    if load(m.path).main.init is None:  # the built-in preset: Kaiming fan-out convs, BN 1/0, zero biases
        family = torchvision.models.get_model_builder(m.builder).__module__.rsplit(".", 1)[-1]
        request.applymarker(pytest.mark.xfail(reason=f"{m.arch}: no init scheme states torchvision's {family} init yet"))
    torch.manual_seed(0)
    want = torchvision_model(m).state_dict()
    torch.manual_seed(0)
    got = archc.build(m.path, size=m.size, **m.sets).state_dict()
    assert [f"{k}: {why}" for k, v in want.items() if (why := _init_difference(got[k], v))] == []


# ---- 6, 7: the CLI -------------------------------------------------------------------------------
@pytest.mark.parametrize("m", _params([m for m in ZOO if not m.sets], torch_check=True))
def test_compile_loads_torchvision_weights(m, monkeypatch, capsys, tmp_path):
    """No download here: a random torchvision model's state dict is put in torch's cache under the
    pretrained file's name (a fresh TORCH_HOME), where the loader looks before downloading."""
    weights = torchvision.models.get_model_weights(m.builder).DEFAULT
    cached = tmp_path / "hub/checkpoints" / Path(urlparse(weights.url).path).name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision_model(m).state_dict(), cached)  # googlenet's and inception_v3's hold their aux heads
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    try:
        code = main(["compile", m.path, "--weights", f"torchvision:{m.builder}"])
    finally:
        cached.unlink()  # VGG's is half a gigabyte
    err = capsys.readouterr().err
    assert code == 0, err


def test_list_shows_the_zoo(capsys):
    assert main(["list"]) == 0
    shown = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert sorted({m.arch for m in ZOO} - shown) == []


# ---- the auxiliary classifiers of lib/inception.arch, alone ----------------------------------------
@pytest.mark.parametrize("block, shape, reference", [
    ("googlenet_aux", (512, 14, 14), lambda: GoogLeNetAux(512, 10)),
    ("inception_v3_aux", (768, 17, 17), lambda: InceptionV3Aux(768, 10)),
])
def test_aux_head_blocks_equal_torchvision(block, shape, reference, tmp_path):
    """Each aux block, compiled as a network of its own, against torchvision's InceptionAux."""
    (tmp_path / "lib").mkdir()
    shutil.copy(ROOT / "archs/lib/inception.arch", tmp_path / "lib")
    spec = tmp_path / "aux.arch"
    spec.write_text(f'# probe\nimport "lib/inception.arch"\narch aux\ninput {list(shape)}\nhead: {block}(10)\n')
    torch.manual_seed(0)
    ref = reference()
    ours = archc.build(str(spec))
    ours.load_state_dict({f"head.{k}": v for k, v in ref.state_dict().items()}, strict=True)
    ref.eval(), ours.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert (got - want).abs().max().item() <= OUT_TOLERANCE * want.abs().max().item()
