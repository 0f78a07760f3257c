"""The fixes that merge shape errors propose are right: applied to the spec, it compiles.

An `add` whose branches disagree gets a 1×1 projection computed from the two shapes, always
for the identity shortcut when there is one (never replacing the branch that does the work);
a `concat` whose branches disagree in size names the odd branch out and the node in it that
changed the size. Each case below applies the proposed fix to the spec and compiles it.
"""
from __future__ import annotations

import re

import pytest

from archc import compiler
from archc.compiler.merge_hints import projection_stride
from archc.dsl.errors import ShapeError

RESIDUAL = """arch net
input [3, {size}, {size}]
conv({c_in}, 3, pad = 1)
add {{
    {branch0}
    {branch1}
}}
"""


def _hint(spec: str) -> str:
    with pytest.raises(ShapeError) as err:
        compiler.check(spec)
    return err.value.hint


def _apply(spec: str, hint: str) -> str:
    """The spec with every projection the hint proposes put in place (branches are one line each)."""
    lines = spec.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(("add {", "concat {"))) + 1
    fixes = re.findall(r"(replace|end) branch (\d+) with the projection `(.+?)`(?:;|$)", hint)
    assert fixes, f"no projection proposed: {hint}"
    for how, i, proj in fixes:
        line = lines[first + int(i)]
        body = line.strip()
        if how == "replace":
            new = proj
        elif body.endswith("}"):
            new = body[:-1].rstrip() + f"; {proj} }}"
        else:
            new = f"{{ {body}; {proj} }}"
        lines[first + int(i)] = "    " + new
    return "\n".join(lines) + "\n"


def _fixed(spec: str) -> tuple[str, str]:
    hint = _hint(spec)
    fixed = _apply(spec, hint)
    compiler.check(fixed)  # raises if the proposed projection does not fit
    return hint, fixed


def test_identity_narrower_than_the_conv_branch_is_projected():
    spec = RESIDUAL.format(size=32, c_in=64, branch1="identity",
                           branch0="{ conv(128, 3, stride = 2, pad = 1, bias = false); bn; relu; "
                                   "conv(128, 3, pad = 1, bias = false); bn }")
    hint, fixed = _fixed(spec)
    assert "replace branch 1 with the projection `{ conv(128, 1, stride = 2, bias = false); bn }`" in hint
    assert "conv(128, 3, stride = 2" in fixed  # the working branch is left alone


def test_same_channels_with_a_strided_conv_branch_projects_the_empty_shortcut():
    spec = RESIDUAL.format(size=32, c_in=64, branch0="{}", branch1="{ conv(64, 3, stride = 2, pad = 1); bn }")
    hint, _ = _fixed(spec)
    assert "replace branch 0 with the projection `{ conv(64, 1, stride = 2, bias = false); bn }`" in hint


def test_conv_branch_narrower_than_identity_projects_the_identity_down():
    spec = RESIDUAL.format(size=16, c_in=128, branch0="identity", branch1="{ conv(64, 3, pad = 1); bn }")
    hint, fixed = _fixed(spec)
    assert "replace branch 0 with the projection `{ conv(64, 1, bias = false); bn }`" in hint
    assert "stride" not in hint.split("projection")[1]  # only channels differ
    assert "conv(64, 3, pad = 1)" in fixed


def test_odd_size_uses_the_ceiling_stride():
    spec = RESIDUAL.format(size=7, c_in=16, branch0="{ conv(32, 3, stride = 2, pad = 1); bn }", branch1="identity")
    hint, _ = _fixed(spec)  # 7 -> 4: (7 - 1) // 2 + 1
    assert "`{ conv(32, 1, stride = 2, bias = false); bn }`" in hint


def test_unequal_strides_per_dimension_give_a_stride_pair():
    spec = RESIDUAL.format(size=8, c_in=16, branch0="{ conv(16, 3, stride = [2, 1], pad = 1); bn }",
                           branch1="identity")
    hint, _ = _fixed(spec)
    assert "stride = [2, 1]" in hint


def test_no_1x1_projection_fits_says_so():
    spec = RESIDUAL.format(size=9, c_in=16, branch0="{ conv(16, 3, stride = 2); bn }", branch1="identity")
    hint = _hint(spec)  # 9 -> 4 needs stride 3 (gives 3) or 2 (gives 5)
    assert "no 1×1 projection takes 9×9 to 4×4" in hint and "matching strides and padding" in hint
    assert "`" not in hint.split("no 1×1")[1]


def test_working_branches_that_disagree_change_the_narrower_one():
    spec = """arch net
input [3, 32, 32]
conv(16, 3, pad = 1)
add {
    a: { conv(32, 3, stride = 2, pad = 1); bn }
    b: { conv(16, 3, pad = 1); bn }
    identity
}
"""
    hint, fixed = _fixed(spec)
    assert "end branch 1 with the projection `conv(32, 1, stride = 2, bias = false); bn`" in hint
    assert "replace branch 2 with the projection" in hint
    assert not re.search(r"(replace|end) branch 0 ", hint) and "a: { conv(32, 3, stride = 2" in fixed


def test_flat_and_map_branches_are_named_as_such():
    spec = RESIDUAL.format(size=8, c_in=16, branch0="{ gap; flatten }", branch1="identity")
    hint = _hint(spec)
    assert "branch 0 (`flatten`) is flat (16)" in hint and "feature map (16×8×8)" in hint


@pytest.mark.parametrize("size", range(1, 40))
def test_the_stride_is_found_whenever_one_exists(size):
    for want in range(1, size + 3):
        fits = [s for s in range(1, size + 2) if (size - 1) // s + 1 == want]
        assert projection_stride(size, want) == (fits[0] if fits else None), (size, want)


# ---- concat -------------------------------------------------------------------------------
INCEPTION = """arch net
input [3, 32, 32]
conv(16, 3, pad = 1)
concat {{
    b0: conv(8, 1)
    b1: {{ pool: {pool}; conv(8, 1) }}
    b2: {{ conv(8, 1); c3: {conv} }}
}}
"""


def test_concat_names_the_one_downsampled_branch_and_its_pool():
    spec = INCEPTION.format(pool="maxpool(3, stride = 2, pad = 1)", conv="conv(16, 3, pad = 1)")
    hint = _hint(spec)
    assert hint.startswith("branch 1 (`b1.conv`) is 16×16 while branches 0, 2 keep 32×32: ")
    assert "maxpool `b1.pool` at line 6 downsampled 32×32 → 16×16 with stride 2: give it stride 1" in hint
    compiler.check(spec.replace("stride = 2", "stride = 1"))


def test_concat_names_the_conv_that_lost_its_padding():
    spec = INCEPTION.format(pool="maxpool(3, stride = 1, pad = 1)", conv="conv(16, 3)")
    hint = _hint(spec)
    assert hint.startswith("branch 2 (`b2.c3`) is 30×30 while branches 0, 1 keep 32×32: ")
    pad = re.search(r"its conv `b2.c3` at line 7 shrank 32×32 → 30×30: `pad = (\d+)` keeps the size", hint)
    assert pad, hint
    compiler.check(spec.replace("conv(16, 3)", f"conv(16, 3, pad = {pad.group(1)})"))


def test_concat_names_the_branch_that_kept_its_size_when_the_others_downsampled():
    spec = INCEPTION.format(pool="maxpool(2)", conv="conv(16, 3, stride = 2, pad = 1)").replace(
        "b0: conv(8, 1)", "b0: identity")
    hint = _hint(spec)
    assert hint.startswith("branch 0 (`b0`) keeps 32×32 while branches 1, 2 are 16×16")
