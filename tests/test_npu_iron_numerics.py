"""The amd/IRON AIE2 operators' numerics (npustream/npu/iron/numerics.py) against what their kernels
were read to compute: table entries, exact points, error bounds, the rounding modes."""

from __future__ import annotations

import numpy as np
import pytest

from npustream.bf16 import bf16_round, to_bf16_bits
from npustream.npu.iron import numerics as n
from npustream.npu.iron.emulate import ExactOps

FLOOR, EVEN = n.Rounding.FLOOR, n.Rounding.CONV_EVEN

# bf16 patterns stored in Xilinx/mlir-aie aie_runtime_lib/AIE2/lut_based_ops.cpp (exp_ilut_ab and
# exp_flut_ab, logical entries: each 8-entry group is stored twice for the bank gathers)
ILUT_STORED = {
    0: 16256,
    1: 16430,
    7: 17545,
    80: 31019,
    87: 32311,
    88: 32505,
    127: 32505,
    128: 0,
    164: 1,
    165: 3,
    166: 9,
    167: 24,
    168: 66,
    248: 14768,
    255: 16060,
}
FLUT_STORED = {0: 16256, 1: 16257, 2: 16257, 7: 16260, 248: 16425, 254: 16429, 255: 16429}


def test_exp_tables_reproduce_the_kernel_tables():
    for i, bits in ILUT_STORED.items():
        assert int(to_bf16_bits(n.EXP_ILUT[i : i + 1])[0]) == bits, i
    for j, bits in FLUT_STORED.items():
        assert int(to_bf16_bits(n.EXP_FLUT[j : j + 1])[0]) == bits, j


def test_exp_lut_is_exact_at_integers_and_within_its_quantisation_elsewhere():
    k = np.arange(-80, 80, dtype=np.float32)
    np.testing.assert_array_equal(
        n.exp_lut(k, FLOOR), bf16_round(np.exp(k.astype(np.float64)).astype(np.float32))
    )
    x = bf16_round(np.linspace(-30, 30, 20001, dtype=np.float32))
    rel = np.abs(n.exp_lut(x, FLOOR) / np.exp(x.astype(np.float64)) - 1)
    # Q8.8 floor (up to 1/256 in x: 0.39 %) and two bf16 table roundings (0.39 % each)
    assert rel.max() < 0.012
    assert rel.max() > 0.004  # and the quantisation is really there
    # saturation: the integer table repeats exp(88) above 88; -65504 (the mask) gives 0
    assert n.exp_lut(np.float32([120.0]), FLOOR)[0] == n.EXP_ILUT[88]
    assert n.exp_lut(n.MASK_VALUE[None], FLOOR)[0] == 0.0


def test_softmax_masks_sums_to_one_and_has_no_max_subtraction():
    rng = np.random.default_rng(0)
    x = bf16_round(rng.normal(0, 3, (64, 256)).astype(np.float32))
    p = n.softmax(x, valid=200)
    assert (p[:, 200:] == 0).all()
    want = ExactOps.softmax(x, 200)
    assert np.abs(p.sum(-1) - 1).max() < 0.03  # bf16 reciprocal, floor roundings
    assert np.abs(p - want).max() < 0.02 * want.max()
    # without the max subtraction a row of logits above 88 saturates and its sum overflows
    big = np.full((1, 2048), 100.0, np.float32)
    assert (n.softmax(big) == 0).all()


def test_tanh_linear_is_odd_and_close_to_tanh():
    x = bf16_round(np.linspace(-6, 6, 4801, dtype=np.float32))
    x = x[(x * 4) % 1 != 0]  # segment boundaries belong to the segment above: odd elsewhere
    t = n.tanh_linear(x, EVEN)
    np.testing.assert_array_equal(t, -n.tanh_linear(-x, EVEN))
    assert np.abs(t - np.tanh(x)).max() < 0.02
    assert (n.tanh_linear(np.float32([4.0, 10.0]), FLOOR) == 1).all()


def test_gelu_tanh_form_against_erf_gelu():
    x = bf16_round(np.linspace(-8, 8, 8001, dtype=np.float32))
    g = n.gelu(x)
    assert np.abs(g - ExactOps.gelu(x)).max() < 0.03
    big = bf16_round(np.float32([4.0, 5.5, 100.0]))
    np.testing.assert_array_equal(n.gelu(big), big)  # tanh segment 31 is exactly 1
    assert (n.gelu(-big) == 0).all()
    assert n.gelu(np.float32([0.0]))[0] == 0


def test_invsqrt_one_newton_step():
    v = np.float32(np.logspace(-5, 5, 1001))
    rel = np.abs(n.invsqrt(v) * np.sqrt(v.astype(np.float64)) - 1)
    assert rel.max() < 2e-3 and rel.max() > 1e-4


def test_layernorm_bf16_sums_against_exact():
    rng = np.random.default_rng(1)
    x = bf16_round(rng.normal(0.5, 2.0, (32, 512)).astype(np.float32))
    got, want = n.layernorm(x), ExactOps.layernorm(x)
    cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cos.min() > 0.9999
    # a large common offset: the bf16 running sum of x gets the mean wrong, the f32 one would not
    off = bf16_round(x + np.float32(300.0))
    assert np.abs(n.layernorm(off) - ExactOps.layernorm(off)).max() > 0.05


def test_rounding_modes():
    x = np.float32([1.0 + 2**-9, -(1.0 + 2**-9), 1.0 + 3 * 2**-9, -(1.0 + 3 * 2**-9)])
    np.testing.assert_array_equal(n.to_bf16(x, EVEN), bf16_round(x))
    np.testing.assert_array_equal(n.to_bf16(x, FLOOR), np.float32([1.0, -(1 + 2**-7), 1.0, -(1 + 2**-7)]))


def test_gemm_bf16_between_k_steps_unless_prio_accuracy():
    rng = np.random.default_rng(2)
    a = bf16_round(rng.normal(0, 1, (64, 2048)).astype(np.float32))
    b = bf16_round(rng.normal(0, 2048**-0.5, (2048, 64)).astype(np.float32))
    exact = a.astype(np.float64) @ b
    prio = n.gemm(a, b, n.IronNumerics(prio_accuracy=True))
    stepped = n.gemm(a, b, n.IronNumerics(prio_accuracy=False))
    err_prio, err_step = np.abs(prio - exact).mean(), np.abs(stepped - exact).mean()
    assert err_prio < 2**-9 * np.abs(exact).mean() * 2
    assert err_step > 2 * err_prio  # 32 bf16 roundings of C instead of one
    np.testing.assert_array_equal(prio, bf16_round((a @ b).astype(np.float32)))


@pytest.mark.parametrize("mode", [FLOOR, EVEN])
def test_add_is_one_rounding(mode):
    a = bf16_round(np.float32([1.0, -1.0, 300.0]))
    b = bf16_round(np.float32([2**-9, -(2**-9), 0.7]))
    np.testing.assert_array_equal(n.add(a, b, n.IronNumerics(add_rounding=mode)), n.to_bf16(a + b, mode))


def test_layernorm_f32_entry_fixes_the_offset_case():
    """layer_norm.cc's other entry (f32 sums, f32 statistics): what IronNumerics.layernorm_f32 selects."""
    rng = np.random.default_rng(1)
    off = bf16_round(rng.normal(300.5, 2.0, (32, 512)).astype(np.float32))
    exact = ExactOps.layernorm(off)
    stock = np.abs(n.layernorm(off) - exact).max()
    f32 = np.abs(n.layernorm(off, n.IronNumerics(layernorm_f32=True)) - exact).max()
    assert f32 < 0.05 < stock
