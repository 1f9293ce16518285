"""The NPU numeric contract (npustream/npu/ops/numerics.py), tiles and op graph, against float64
references computed here from first principles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npustream.errors import ConfigError
from npustream.model.dims import PUBLISHED_SHAPES, WhisperDims
from npustream.npu.ops import numerics as nx
from npustream.npu.ops.graph import encoder_ops
from npustream.npu.ops.tiles import (
    DEFAULT_TILES,
    L1_BYTES,
    Tiles,
    c_header,
    check_l1,
    l1_footprints,
)

RNG = np.random.default_rng(20240601)

SHAPES = PUBLISHED_SHAPES  # d_model, heads, layers of tiny, base, small, medium, large


def dims_of(size: str, n_ctx: int = 1500) -> WhisperDims:
    d, h, layers = SHAPES[size]
    return WhisperDims(80, n_ctx, d, h, layers, 51865, 448, d, h, layers)


def bf16(shape, scale=1.0) -> np.ndarray:
    return nx.bf16_round((RNG.standard_normal(shape) * scale).astype(np.float32))


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in bf16 steps between two arrays of bf16 values of the same sign."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32)) >> 16


def rne_reference(x: np.ndarray) -> np.ndarray:
    """Nearest bf16 by comparing the two bf16 neighbours in float64; ties to the even one."""
    lo = (x.view(np.uint32) & 0xFFFF0000).view(np.float32)
    hi = ((x.view(np.uint32) & 0xFFFF0000) + 0x10000).view(np.float32)
    d_lo = np.abs(x.astype(np.float64) - lo)
    d_hi = np.abs(hi.astype(np.float64) - x)
    even_lo = ((lo.view(np.uint32) >> 16) & 1) == 0
    return np.where(d_lo < d_hi, lo, np.where(d_hi < d_lo, hi, np.where(even_lo, lo, hi)))


def test_bf16_round_is_round_to_nearest_even():
    x = (RNG.standard_normal(200_000) * 10.0 ** RNG.uniform(-30, 30, 200_000)).astype(np.float32)
    ties = ((RNG.integers(0, 0x7F00, 1000, dtype=np.uint32) << 16) | 0x8000).astype(np.uint32)
    x = np.concatenate([x, ties.view(np.float32)])
    np.testing.assert_array_equal(nx.bf16_round(x), rne_reference(x))
    # exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even 1.0
    assert nx.bf16_round(np.float32([1 + 2**-8, 1 + 3 * 2**-8])).tolist() == [1.0, 1 + 2**-6]


def test_bf16_special_values():
    x = np.float32([np.inf, -np.inf, np.nan, -0.0, 3.4e38, 1e-40])
    r = nx.bf16_round(x)
    assert r[0] == np.inf and r[1] == -np.inf and np.isnan(r[2])
    assert r[3] == 0 and np.signbit(r[3])
    assert r[4] == np.inf  # beyond bf16's largest finite value: rounds to inf
    assert r[5] == nx.from_bf16_bits(np.uint16([1]))[0]  # subnormals are kept
    # a NaN whose payload sits only in the low bits must not become inf, nor lose its sign
    nans = np.uint32([0x7F800001, 0xFF800001, 0x7FFFFFFF]).view(np.float32)
    assert np.isnan(nx.bf16_round(nans)).all()
    assert nx.to_bf16_bits(nans)[1] >> 15 == 1


def test_bf16_bits_round_trip_all_patterns():
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    values = nx.from_bf16_bits(bits)
    back = nx.to_bf16_bits(values)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(back[finite], bits[finite])
    assert np.isnan(nx.from_bf16_bits(back[~finite])).all()


def test_gelu_erf_matches_exact_gelu():
    x = np.linspace(-12, 12, 100_001, dtype=np.float32)
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x.astype(np.float64)])
    got = nx.gelu_erf(x).astype(np.float64)
    assert np.max(np.abs(got - exact)) < 1e-6
    # the negative side is x * erfc(|x|/sqrt2)/2 computed directly (no 1 - erf cancellation):
    # relative error below 1e-4 down to x = -2 (A&S's bound is absolute, so it grows beyond)
    side = (x < 0) & (x >= -2)
    assert np.max(np.abs(got[side] / exact[side] - 1)) < 1e-4
    # the tanh approximation is the alternative the docs measure; it differs by about 5e-4
    assert 1e-4 < np.max(np.abs(nx.gelu_tanh(x) - exact)) < 1e-3


def sequential_matmul(a, b, bias, gelu, residual):
    """The kernel's order: one fp32 accumulator per output, adding k = 0, 1, ... in turn."""
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for k in range(a.shape[1]):
        acc += a[:, k : k + 1] * b[k : k + 1, :]
    acc += bias
    if gelu:
        acc = nx.gelu(acc)
    if residual is not None:
        acc += residual
    return nx.bf16_round(acc)


@pytest.mark.parametrize("gelu,with_residual", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_tile_order_and_rounding(gelu, with_residual):
    m, k, n = 64, 192, 32
    a, b = bf16((m, k)), bf16((k, n), 0.1)
    bias = (RNG.standard_normal(n) * 0.5).astype(np.float32)
    residual = bf16((m, n), 4.0) if with_residual else None
    got = nx.matmul_tile(a, b, bias, gelu=gelu, residual=residual)
    np.testing.assert_array_equal(got, nx.bf16_round(got))  # bf16 values
    # the kernel's sequential order: equal up to fp32 summation order, so <= 1 bf16 ulp
    seq = sequential_matmul(a, b, bias, gelu, residual)
    assert ulps(got, seq).max() <= 1 and np.mean(got == seq) > 0.99
    # and against float64 with the same epilogue order, rounded once
    exact = a.astype(np.float64) @ b + bias
    if gelu:
        exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in exact.ravel()]).reshape(exact.shape)
    if residual is not None:
        exact = exact + residual
    assert ulps(got, nx.bf16_round(exact.astype(np.float32))).max() <= 1


def test_matmul_tile_large_magnitudes():
    a, b = bf16((8, 64), 1e18), bf16((64, 8), 1e18)  # products near fp32's range, no inf
    got = nx.matmul_tile(a, b)
    exact = nx.bf16_round((a.astype(np.float64) @ b).astype(np.float32))
    assert np.isfinite(got).all() and ulps(got, exact).max() <= 1


def test_layernorm_rows_against_float64():
    x = bf16((16, 512), 3.0) + nx.bf16_round(np.float32(100.0))  # a large common offset
    gamma, beta = RNG.uniform(0.5, 1.5, 512).astype(np.float32), RNG.standard_normal(512).astype(np.float32)
    got = nx.layernorm_rows(x, gamma, beta)
    x64 = x.astype(np.float64)
    exact = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5) * gamma + beta
    # one rounding (half a bf16 step: at most 2^-8 relative) plus fp32 error where + beta cancels
    assert np.all(np.abs(got - exact) <= 2**-8 * np.abs(exact) + 1e-5)


def test_layernorm_constant_rows_give_beta():
    x = np.full((4, 384), 7.5, np.float32)
    beta = bf16(384)
    got = nx.layernorm_rows(x, np.ones(384, np.float32), beta)
    np.testing.assert_array_equal(got, np.broadcast_to(beta, got.shape))


def flash(q, k, v, scale, kv):
    state = nx.attn_init(q.shape[0], q.shape[1])
    for start in range(0, k.shape[0], kv):
        state = nx.attn_update(state, q, k[start : start + kv], v[start : start + kv], scale)
    return nx.attn_finish(state)


def softmax_attention64(q, k, v, scale):
    s = q.astype(np.float64) @ k.T.astype(np.float64) * scale
    p = np.exp(s - s.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)) @ v


@pytest.mark.parametrize("t,kv", [(100, 32), (1500, 32), (64, 64), (33, 32)])
def test_flash_attention_matches_softmax(t, kv):
    q, k, v = bf16((32, 64), 2.0), bf16((t, 64), 2.0), bf16((t, 64))
    got = flash(q, k, v, 0.125, kv)
    np.testing.assert_array_equal(got, nx.bf16_round(got))
    exact = softmax_attention64(q, k, v, 0.125)
    # P is rounded to bf16 (relative 2^-9), outputs are averages of v: absolute error ~1e-2 |v|
    assert np.max(np.abs(got - exact)) < 0.02


def test_flash_attention_hard_scores():
    q = bf16((32, 64))
    k = bf16((96, 64))
    v = bf16((96, 64))
    # very negative and huge scores: max subtraction keeps exp finite, no NaN
    got = flash(q * 256.0, k * 256.0, v, 0.125, 32)
    assert np.isfinite(got).all()
    exact = softmax_attention64(q * 256.0, k * 256.0, v, 0.125)
    assert np.max(np.abs(got - exact)) < 0.02
    # all-equal scores: every key weighs the same, the output is the mean of v
    same = flash(np.zeros_like(q), k, v, 0.125, 32)
    assert (
        ulps(same, nx.bf16_round(v.astype(np.float64).mean(0).astype(np.float32))[None].repeat(32, 0)).max()
        <= 1
    )


@pytest.mark.parametrize("size", list(SHAPES))
def test_default_tiles_fit_l1_for_every_whisper_size(size):
    footprints = check_l1(DEFAULT_TILES, dims_of(size))
    assert all(0 < used <= L1_BYTES for used in footprints.values())


def test_l1_footprint_counts_and_refusal():
    # matmul 64x64x32: A 2*64*64*2, B 2*64*32*2, bias 2*32*4, residual 2*64*32*2, acc 64*32*4, out 2*64*32*2
    assert l1_footprints(DEFAULT_TILES, dims_of("base"))["matmul"] == 16384 + 8192 + 256 + 8192 + 8192 + 8192
    with pytest.raises(ConfigError, match="attention"):
        check_l1(Tiles(attn_q_rows=64, attn_kv_rows=64), dims_of("base"))
    with pytest.raises(ConfigError, match="layernorm"):
        check_l1(Tiles(layernorm_rows=8), dims_of("large"))
    with pytest.raises(ConfigError):
        Tiles(matmul_m=30)
    assert "#define NPU_MATMUL_M 64" in c_header()


@pytest.mark.parametrize("size", ["tiny", "base", "small"])
def test_encoder_ops_counts(size):
    dims = dims_of(size)
    ops = encoder_ops(dims)
    assert len(ops) == 2 + 7 * dims.n_audio_layer + 1
    d, t, f = dims.n_audio_state, dims.n_audio_ctx, dims.n_ff
    # every input is produced earlier (or is the host's mel / the constant positional table)
    produced = {"mel", "pos_emb"}
    for op in ops:
        assert set(op.inputs) <= produced, op
        produced.add(op.name)
    # MACs: rows padded to 64 (1500 -> 1536, 3000 -> 3008), conv1's K 240 -> 256; attention
    # pads keys and queries to 32 (1504)
    per_layer = 1536 * d * (3 * d + d + f + f) + dims.n_audio_head * 1504 * 1504 * dims.d_head * 2
    stem = 3008 * 256 * d + 1536 * 3 * d * d
    assert sum(op.macs for op in ops) == stem + dims.n_audio_layer * per_layer
    unpadded = 3000 * 240 * d + t * 3 * d * d + dims.n_audio_layer * (t * d * (4 * d + 2 * f) + 2 * t * t * d)
    assert 1.0 < sum(op.macs for op in ops) / unpadded < 1.06
    attn = next(op for op in ops if op.kind == "attention")
    assert attn.heads == dims.n_audio_head and attn.weight_bytes == 0
    fc1 = next(op for op in ops if op.name == "layer0.fc1")
    assert fc1.gelu and fc1.transcendental_elems == 1536 * f * 2
    assert fc1.weight_bytes == d * f * 2 + f * 4
