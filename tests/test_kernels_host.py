"""The kernels' portable C++ paths (kernels/, built with g++ by host_kernels) against the
emulator's numerics (npustream/npu/ops/numerics.py).

Bit-exact where both do the same operations in the same order: bf16 conversion, the table exp,
GELU, LayerNorm (both sum in the vector unit's lane order), the matmul epilogue, and attention
when every fp32 sum is exact (integer-valued data, probabilities of exactly 0 or 1). Within one
bf16 ulp where only the order of a matmul's fp32 sum differs (BLAS blocks it, the kernels loop).
Attention on random data: 99 % or more bit-exact, the rest bounded by one bf16 step of a
probability (attention_agrees). Each comparison prints its agreement (run with -s to see it).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from npustream.errors import EngineError
from npustream.npu.ops import numerics as nu
from tools import host_kernels as hk

F32 = np.float32


def bf(x) -> np.ndarray:
    return nu.bf16_round(np.asarray(x, F32))


def _ordered(bits: np.ndarray, sign: int) -> np.ndarray:
    """Sign-magnitude bit patterns -> integers in value order (+0 and -0 both 0)."""
    bits = bits.astype(np.int64)
    return np.where(bits & sign, -(bits & (sign - 1)), bits)


def agreement(name: str, got: np.ndarray, want: np.ndarray, fp32: bool = False) -> tuple[float, int]:
    """(share of bit-identical elements, max ulp distance), NaN positions required to match."""
    got, want = np.asarray(got, F32), np.asarray(want, F32)
    assert got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), f"{name}: NaN positions differ"
    if fp32:
        g, w = _ordered(got.view(np.uint32), 1 << 31), _ordered(want.view(np.uint32), 1 << 31)
    else:
        g, w = _ordered(nu.to_bf16_bits(got), 1 << 15), _ordered(nu.to_bf16_bits(want), 1 << 15)
    ulps = np.abs(g - w)[~nan]
    exact, worst = float((ulps == 0).mean()) if ulps.size else 1.0, int(ulps.max(initial=0))
    print(
        f"\n{name}: {int((ulps == 0).sum())}/{ulps.size} bit-exact ({exact:.4%}), max {worst} "
        f"{'fp32' if fp32 else 'bf16'} ulp"
    )
    return exact, worst


def bit_exact(name: str, got: np.ndarray, want: np.ndarray, fp32: bool = False) -> None:
    assert agreement(name, got, want, fp32)[1] == 0


def within_one_ulp(name: str, got: np.ndarray, want: np.ndarray) -> None:
    exact, worst = agreement(name, got, want)
    assert worst <= 1
    assert exact >= 0.99, f"{name}: only {exact:.2%} bit-exact: a systematic difference, not rounding"


def attention_agrees(name: str, got: np.ndarray, want: np.ndarray, v: np.ndarray) -> None:
    """Scores summed in another order (BLAS) can differ in their last fp32 bit and move a bf16
    probability p by one step (at most 2^-7 of p); the output then moves by at most 2^-7 of the
    value scale, which near a cancelling output is more than one of its ulps. Everything else
    must agree exactly: the test with exact scores shows it."""
    exact = agreement(name, got, want)[0]
    diff = np.abs(got - want)[~np.isnan(want)]
    scale = float(np.abs(v[np.isfinite(v)]).max())
    worst = float(diff.max(initial=0))
    print(f"{name}: max |difference| {worst:.3g} = {worst / scale:.2g} of max|v|")
    assert exact >= 0.99, f"{name}: only {exact:.2%} bit-exact"
    assert worst <= 2.0**-7 * scale


def both(function: str, *args, **kwargs):
    """(kernel result, numerics result) of the function of that name."""
    return getattr(hk, function)(*args, **kwargs), getattr(nu, function)(*args, **kwargs)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    hk.library()  # build once, up front (fails with the compiler's message if it cannot)
    return np.random.default_rng(20261122)


def test_build_is_cached_by_source_hash(tmp_path, repo_root):
    kernels = tmp_path / "kernels"
    shutil.copytree(repo_root / "kernels", kernels, ignore=shutil.ignore_patterns("*.md"))
    first = hk.build(tmp_path / "cache", kernels)
    stamp = first.stat().st_mtime_ns
    assert hk.build(tmp_path / "cache", kernels) == first and first.stat().st_mtime_ns == stamp
    header = kernels / "npu_numerics.h"
    header.write_text(header.read_text() + "\n// edited\n")
    second = hk.build(tmp_path / "cache", kernels)
    assert second != first and second.is_file()
    (kernels / "broken.cc").write_text("int broken( {\n")
    with pytest.raises(EngineError, match="building the host kernels failed"):
        hk.build(tmp_path / "cache", kernels)
    with pytest.raises(EngineError, match="no kernel sources"):
        hk.build(tmp_path / "cache", tmp_path / "empty")


# --- bf16 storage -------------------------------------------------------------------------------


def test_bf16_conversion_matches_numerics_on_every_kind_of_float(rng):
    bits = rng.integers(0, 1 << 32, 2_000_000, dtype=np.uint64).astype(np.uint32)  # NaN, inf, ...
    got, want = both("to_bf16_bits", bits.view(F32))
    assert np.array_equal(got, want)
    got, want = both("from_bf16_bits", np.arange(1 << 16, dtype=np.uint16))  # every bf16
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize(
    ("f32_bits", "bf16_bits"),
    [
        (0x3F808000, 0x3F80),  # exact tie, kept bit even: down
        (0x3F818000, 0x3F82),  # exact tie, kept bit odd: up to even
        (0x3F808001, 0x3F81),  # just above the tie
        (0x3F807FFF, 0x3F80),  # just below the tie
        (0x7F7F7FFF, 0x7F7F),  # largest finite bf16
        (0x7F7F8000, 0x7F80),  # tie above the largest finite: to even, which is inf
        (0x7F800000, 0x7F80),
        (0xFF800000, 0xFF80),  # +-inf
        (0x7F800001, 0x7FC0),
        (0xFF800001, 0xFFC0),  # NaN with only low payload bits stays NaN
        (0xFFFFFFFF, 0xFFFF),
        (0x7FC00000, 0x7FC0),
        (0x80000000, 0x8000),  # -0
        (0x00000001, 0x0000),
        (0x00008000, 0x0000),
        (0x00018000, 0x0002),  # subnormal ties
        (0x807FFFFF, 0x8080),  # largest negative subnormal rounds up to the smallest normal
    ],
)
def test_bf16_rounding_hard_cases(f32_bits, bf16_bits):
    x = np.array([f32_bits], np.uint32).view(F32)
    assert int(hk.to_bf16_bits(x)[0]) == bf16_bits
    assert int(nu.to_bf16_bits(x)[0]) == bf16_bits


# --- exp and GELU ----------------------------------------------------------------------------------


def test_exp_lut_bit_exact_with_numerics(rng):
    """The table exp: the same Q8.8 step and the same two table entries in both builds; the
    ends: saturation below -128 and above 128, -inf to 0, NaN to 0 (it saturates low)."""
    x = np.concatenate([rng.uniform(-140, 100, 1_000_000), rng.standard_normal(100_000)]).astype(F32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.0, 89.0, -128.0, -129.0, 127.99], F32)
    x = np.concatenate([x, special])
    bit_exact("exp_lut", hk.exp_lut(x), nu.exp_lut(x), fp32=True)
    assert nu.exp_lut(np.array([0.0, -np.inf, np.nan], F32)).tolist() == [1.0, 0.0, 0.0]


GELU_HARD = [
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-40,
    -1e-40,
    0.5,
    -0.5,
    3.0,
    -3.0,
    10.0,
    -10.0,
    13.0,
    -13.0,
    20.0,
    -20.0,
    1e30,
    -1e30,
    3.3e38,
    -3.3e38,
    np.inf,
    -np.inf,
    np.nan,
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numerics' overflow and NaN, on purpose
def test_gelu_matches_numerics(rng):
    x = np.concatenate([rng.standard_normal(200_000) * 4, GELU_HARD]).astype(F32)
    bit_exact("gelu fp32", hk.gelu(x), nu.gelu(x), fp32=True)
    xb = bf(x)
    bit_exact("gelu bf16 op", hk.gelu_bf16(xb), bf(nu.gelu(xb)))


# --- matmul ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("gelu", [False, True])
def test_matmul_bit_exact_when_sums_are_exact(rng, gelu):
    """Integer operands: every fp32 sum is exact in any order, so only the epilogue is compared."""
    m, k, n = 64, 200, 32  # four K tiles, the last one 8 deep
    a = rng.integers(-16, 17, (m, k)).astype(F32)
    b = rng.integers(-16, 17, (k, n)).astype(F32)
    bias = (rng.standard_normal(n) * 100).astype(F32)
    residual = bf(rng.standard_normal((m, n)) * 50)
    got, want = both("matmul_tile", a, b, bias, gelu=gelu, residual=residual)
    bit_exact(f"matmul integer sums, gelu={gelu}", got, want)
    bit_exact("matmul integer sums, no epilogue", *both("matmul_tile", a, b))


@pytest.mark.parametrize(
    ("k", "gelu", "with_residual"), [(512, False, True), (512, True, False), (2048, False, True)]
)
def test_matmul_random_tiles_within_one_ulp(rng, k, gelu, with_residual):
    m, n = 64, 32
    a = bf(rng.standard_normal((m, k)))
    b = bf(rng.standard_normal((k, n)) * k**-0.5)
    bias = (rng.standard_normal(n) * 0.1).astype(F32)
    residual = bf(rng.standard_normal((m, n))) if with_residual else None
    got, want = both("matmul_tile", a, b, bias, gelu=gelu, residual=residual)
    within_one_ulp(f"matmul random K={k} gelu={gelu}", got, want)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numerics' overflow and NaN, on purpose
def test_matmul_large_magnitudes_and_non_finite(rng):
    m, k, n = 16, 128, 16
    a = bf(rng.uniform(1, 2, (m, k)) * 2.0**60)
    b = bf(rng.uniform(1, 2, (k, n)) * 2.0**50)  # products ~2^111, sums ~2^118: no overflow
    a[1] *= 2.0**20  # sums ~2^138: overflow to inf in either order
    a[2, 5], a[3, 7], b[9, 4] = np.inf, np.nan, -np.inf  # inf, NaN, inf - inf = NaN
    within_one_ulp("matmul large magnitudes, inf, NaN", *both("matmul_tile", a, b))


# --- LayerNorm -------------------------------------------------------------------------------------


def affine(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    """LayerNorm gamma, beta: fp32 near 1 and 0, like a trained model's."""
    return (1 + 0.2 * rng.standard_normal(d)).astype(F32), (0.2 * rng.standard_normal(d)).astype(F32)


@pytest.mark.parametrize("d", [384, 512, 768, 1280, 136, 100, 7])
def test_layernorm_bit_exact_on_random_rows(rng, d):
    x = bf(rng.standard_normal((8, d)) * rng.uniform(0.01, 100, (8, 1)) + rng.uniform(-50, 50, (8, 1)))
    gamma, beta = affine(rng, d)
    bit_exact(f"layernorm random d={d}", *both("layernorm_rows", x, gamma, beta))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numerics' overflow and NaN, on purpose
def test_layernorm_hard_rows(rng):
    d = 512
    rows = [
        np.full(d, 3.25),
        np.full(d, -1e20),
        np.zeros(d),  # constant: var 0, y = beta
        rng.standard_normal(d) * 1e30,  # squares overflow: var inf, rstd 0
        rng.standard_normal(d) * 1e-39,  # subnormal values: var far below eps
        np.where(np.arange(d) == 17, 1e4, 1.0),  # one outlier
        np.full(d, 3.3e38),  # the sum overflows: mean inf
        np.where(np.arange(d) == 3, np.nan, 1.0),  # NaN spreads over the row
    ]
    x = bf(np.stack(rows))
    gamma, beta = affine(rng, d)
    got, want = both("layernorm_rows", x, gamma, beta)
    bit_exact("layernorm hard rows", got, want)
    assert np.array_equal(got[:3], np.broadcast_to(bf(beta), (3, d)))  # constant rows give beta


# --- attention -------------------------------------------------------------------------------------


def run_attention(impl, q, k, v, kv_tile=32, scale=0.125):
    state = impl.attn_init(q.shape[-2], q.shape[-1], batch=q.shape[:-2])
    for start in range(0, k.shape[-2], kv_tile):  # the last tile holds the remaining keys
        tile = slice(start, start + kv_tile)
        state = impl.attn_update(state, q, k[..., tile, :], v[..., tile, :], scale)
    return impl.attn_finish(state), state


def attention_both(q, k, v) -> tuple[np.ndarray, np.ndarray]:
    return run_attention(hk, q, k, v)[0], run_attention(nu, q, k, v)[0]


def test_attention_bit_exact_when_probabilities_are_0_or_1(rng):
    """One-hot queries and keys with entries 0 or -2^20: every score is 0 or -131072, so every
    exp is exactly 1 or 0 (some tiles have all scores equal, some are all very negative), and
    integer values keep every sum exact: state and output must match bit for bit."""
    heads, mq, dh, t = 2, 32, 64, 200  # 7 key tiles, the last one 8 rows
    q = np.zeros((heads, mq, dh), F32)
    q[:, np.arange(mq), np.arange(mq) % 8] = 1.0
    k = np.where(rng.random((heads, t, dh)) < 0.9, -(2.0**20), 0.0).astype(F32)
    v = rng.integers(-8, 9, (heads, t, dh)).astype(F32)
    (got, got_state), (want, want_state) = run_attention(hk, q, k, v), run_attention(nu, q, k, v)
    for name, g, w in zip(("m", "l", "acc"), got_state, want_state):
        assert np.array_equal(g, w), f"state {name} differs"
    bit_exact("attention p in {0, 1}", got, want)


def test_attention_random_within_one_ulp(rng):
    heads, mq, dh, t = 2, 32, 64, 1500  # 47 key tiles, the last one 28 rows
    q, k, v = (bf(rng.standard_normal((heads, n, dh))) for n in (mq, t, t))
    attention_agrees("attention random, T=1500", *attention_both(q, k, v), v)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numerics' overflow and NaN, on purpose
def test_attention_hard_scores(rng):
    heads, mq, dh, t = 2, 32, 64, 96
    q, k, v = (bf(rng.standard_normal((heads, n, dh))) for n in (mq, t, t))
    sharp_q, sharp_k = bf(q * 40), bf(k * 40)  # scores of +-1e4: very negative after the max
    same_k = np.broadcast_to(k[:, :1], k.shape).copy()  # all scores equal: out = mean of v
    big_v = bf(v * 1e34)
    nan_k = k.copy()
    nan_k[0, 50, 3] = np.nan  # head 0 goes NaN from its second key tile on, head 1 does not
    for name, (qq, kk, vv) in {
        "very negative scores": (sharp_q, sharp_k, v),
        "all-equal scores": (q, same_k, v),
        "large values": (q, k, big_v),
        "NaN key": (q, nan_k, v),
    }.items():
        attention_agrees(f"attention {name}", *attention_both(qq, kk, vv), vv)


# --- bad input -------------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_clear_error(rng):
    a, b = bf(rng.standard_normal((8, 16))), bf(rng.standard_normal((16, 8)))
    with pytest.raises(ValueError, match="not bf16"):
        hk.matmul_tile(a + F32(1e-4), b)
    with pytest.raises(ValueError, match=r"a is \[8, 16\] but b is \[8, 8\]"):
        hk.matmul_tile(a, b[:8])
    with pytest.raises(ValueError, match="gamma must have shape"):
        hk.layernorm_rows(a, np.ones(8, F32), np.zeros(16, F32))
    with pytest.raises(ValueError, match="do not match"):
        hk.attn_update(hk.attn_init(8, 16), a, b, b, 0.25)


def test_lut_header_is_the_generators(repo_root):
    """kernels/npu_luts.h holds the tables numerics.py computes (regenerate with
    `python -m npustream.npu.ops.numerics > kernels/npu_luts.h`)."""
    assert (repo_root / "kernels" / "npu_luts.h").read_text() == nu.c_lut_header()
