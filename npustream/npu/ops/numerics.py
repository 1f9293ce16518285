"""The numeric contract shared by the NPU kernels (kernels/) and the emulator.

Storage is bf16 (round to nearest even); arithmetic is the AIE2 vector unit's: multiplies take
bf16 operands (their product is exact in fp32), sums are fp32, per-row scalars IEEE fp32. Every
function here takes and returns numpy arrays; "bf16 values" means float32 arrays whose values are
exactly representable in bf16 (the kernels hold the same numbers as uint16 bit patterns). The
kernels' portable C++ paths (kernels/npu_numerics.h) implement the same steps in the same order,
compiled with -ffp-contract=off so that a*b+c stays two roundings, as here: bit-exact except
where a matmul's fp32 sum is ordered differently. docs/npu-numerics.md has the whole contract.

Order of operations:
  matmul_tile:    acc = sum_k a[m,k]*b[k,n] (fp32)  ->  + bias (fp32)  ->  GELU (bf16 input,
                  fp32 result)  ->  + residual (fp32)  ->  round to bf16
  layernorm_rows: mean = lane_sum(x)/D; c = bf16(x - mean); var = lane_sum(c*c)/D;
                  rstd = bf16(rsqrt(var+eps)); y = bf16(beta + bf16(c*rstd) * bf16(gamma))
  attention:      per key/value tile: s = (q k^T) * scale (fp32); m' = max(m, rowmax s);
                  alpha = bf16(exp_lut(m - m')); p = bf16(exp_lut(s - m')); l = l*alpha + lane_sum(p);
                  acc = mul_split(acc, alpha) + p v (fp32)  ...  out = bf16(mul_split(acc, bf16(1/l)))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from npustream.bf16 import bf16_round, from_bf16_bits, to_bf16_bits  # noqa: F401 (part of the contract)

# --- bf16 storage ---------------------------------------------------------------------------


# --- the vector unit's arithmetic -------------------------------------------------------------
#
# AIE2 multiplies bf16 x bf16 into fp32 accumulators (the product of two 8-bit significands is
# exact in fp32) and adds in fp32. Every vector multiply below therefore takes bf16 operands:
# what is fp32 is rounded to bf16 first (Peano does the same to an fp32 vector multiply). Sums
# are fp32. Per-row scalars (mean, variance, rsqrt, max, l, 1/l) are IEEE fp32 scalar steps.

LANES = 16  # one fp32 accumulator register: the lane order of every vector sum


def lane_sum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis in the vector unit's order: 16 lane-wise fp32 partial sums over
    consecutive chunks of 16 (a ragged end padded with +0), then halves added to halves
    (8, 4, 2, 1 lanes). No recursion: the AIE kernels run exactly these adds."""
    x = np.asarray(x, np.float32)
    n = x.shape[-1]
    if n % LANES:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], LANES - n % LANES), np.float32)], -1)
    acc = x[..., :LANES].copy()
    for c in range(LANES, x.shape[-1], LANES):
        acc += x[..., c : c + LANES]
    while acc.shape[-1] > 1:
        half = acc.shape[-1] // 2
        acc = acc[..., :half] + acc[..., half:]
    return acc[..., 0]


def mul_split(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fp32 a times a bf16 value b on the vector unit: a = hi + lo (two bf16 pieces), two exact
    products, one fp32 rounding: within 2^-16 of a*b (an fp32 x fp32 multiply would take six)."""
    a = np.asarray(a, np.float32)
    hi = bf16_round(a)
    lo = bf16_round(a - hi)
    b = np.asarray(b, np.float32)
    return hi * b + lo * b


# --- exp: the lut_based_ops scheme (mlir-aie aie_runtime_lib/AIE2) ------------------------------
#
# x is rounded to bf16, then to Q8.8 fixed point (round to nearest even, saturating to int16);
# e^x = ILUT[integer byte] * FLUT[fraction byte], two 256-entry bf16 tables, the product exact
# in fp32. ILUT[i] = bf16(e^i) for i = -128..127 (two's complement byte; past fp32's range the
# largest finite bf16), FLUT[f] = bf16(e^(f/256)). Error: the bf16 rounding of x (|dx| <= 2^-8
# |x|), the Q8.8 step (|dx| <= 2^-9) and two table roundings (2^-8 relative each, at most).


def _exp_table_bits() -> tuple[np.ndarray, np.ndarray]:
    ints = np.arange(256)
    ints = np.where(ints < 128, ints, ints - 256).astype(np.float64)
    with np.errstate(over="ignore"):
        ilut = to_bf16_bits(np.exp(ints).astype(np.float32))
    ilut[ilut == 0x7F80] = 0x7F7F  # e^89 and up: the largest finite bf16, as the LUT saturates
    flut = to_bf16_bits(np.exp(np.arange(256) / 256.0).astype(np.float32))
    return ilut, flut


EXP_ILUT_BITS, EXP_FLUT_BITS = _exp_table_bits()
_EXP_ILUT, _EXP_FLUT = from_bf16_bits(EXP_ILUT_BITS), from_bf16_bits(EXP_FLUT_BITS)


def q88(x: np.ndarray) -> np.ndarray:
    """bf16(x) in Q8.8: int32 in [-32768, 32767] (RNE; NaN and -inf to -32768, +inf to 32767)."""
    v = bf16_round(x)
    with np.errstate(over="ignore"):  # past 2^120: inf, clipped below
        v *= np.float32(256.0)
    np.nan_to_num(v, copy=False, nan=-32768.0)
    np.clip(v, np.float32(-32768.0), np.float32(32767.0), out=v)  # inside int16: rounding stays inside
    return np.rint(v, out=v).astype(np.int32)  # rint: to nearest even, as the kernels' (v + R) - R


def _exp_lut_of_bf16(xb: np.ndarray) -> np.ndarray:
    q = q88(xb)
    with np.errstate(over="ignore"):  # e^x past fp32's range is inf, as the kernels' product
        return _EXP_ILUT[(q >> 8) & 255] * _EXP_FLUT[q & 255]


# exp_lut depends on bf16(x) only: its value for each of the 65536 bf16 patterns, for speed
_EXP_BY_BF16 = _exp_lut_of_bf16(from_bf16_bits(np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)))


def exp_lut(x: np.ndarray) -> np.ndarray:
    """e^x as the kernels compute it (fp32 result: a product of two bf16 table entries)."""
    return _EXP_BY_BF16[to_bf16_bits(np.asarray(x, np.float32))]


# --- GELU: x * Phi(x) with Phi tabulated (the lut_based_ops style) -----------------------------
#
#   xb = bf16(x);  gelu = mul_split(phi(xb), xb)
# phi is the normal CDF Phi (the exact, erf GELU Whisper was trained with) on 192 linear segments
# of 1/16 over [-6, 6): phi = base + slope * (xb - a), a the segment's start (xb - a is exact in
# bf16), base fp32, slope bf16 (the segment's minimax line for that slope); 0 below, 1 above.
# Upstream's GELU (mlir-aie / amd IRON aie2 gelu.cc: 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x +
# 0.044715 x^3) in bf16, tanh on 32 linear segments of 0.25) broke the accuracy contract: jfk's
# speech frames reached a cosine of 0.99887 (docs/npu-numerics.md).

PHI_SEGMENTS, PHI_PER_UNIT = 192, 16  # segments of 1/16 from -6


def _phi(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(t, np.float64) / math.sqrt(2.0)))


def _phi_table() -> tuple[np.ndarray, np.ndarray]:
    base, slope = np.zeros(PHI_SEGMENTS, np.float32), np.zeros(PHI_SEGMENTS, np.float32)
    for i in range(PHI_SEGMENTS):
        a = (i - PHI_SEGMENTS // 2) / PHI_PER_UNIT
        if i in (0, PHI_SEGMENTS - 1):
            base[i] = 0.0 if i == 0 else 1.0
            continue
        s = float(bf16_round(np.float32((_phi(a + 1 / PHI_PER_UNIT) - _phi(a)) * PHI_PER_UNIT))[0])
        t = np.linspace(a, a + 1 / PHI_PER_UNIT, 401)
        err = _phi(t) - (_phi(a) + s * (t - a))
        base[i], slope[i] = _phi(a) + (err.max() + err.min()) / 2, s  # the minimax line for s
    return base.view(np.uint32).copy(), to_bf16_bits(slope)


PHI_BASE_BITS, PHI_SLOPE_BITS = _phi_table()
_PHI_BASE, _PHI_SLOPE = PHI_BASE_BITS.view(np.float32), from_bf16_bits(PHI_SLOPE_BITS)


def _phi_of_bf16(x: np.ndarray) -> np.ndarray:
    t = np.clip(bf16_round(x), np.float32(-6.0), np.float32(6.0))  # the outer segments are flat
    f = np.nan_to_num(t * np.float32(PHI_PER_UNIT), nan=0.0)
    seg = np.floor(f).clip(-PHI_SEGMENTS // 2, PHI_SEGMENTS // 2 - 1).astype(np.int32)
    start = seg.astype(np.float32) / np.float32(PHI_PER_UNIT)
    return _PHI_BASE[seg + PHI_SEGMENTS // 2] + _PHI_SLOPE[seg + PHI_SEGMENTS // 2] * (t - start)


# phi_pwl depends on bf16(x) only: its value for each of the 65536 bf16 patterns, for speed
_PHI_BY_BF16 = _phi_of_bf16(from_bf16_bits(np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)))


def phi_pwl(x: np.ndarray) -> np.ndarray:
    """The kernels' Phi of x rounded to bf16 (fp32 results)."""
    return _PHI_BY_BF16[to_bf16_bits(np.asarray(x, np.float32))]


def gelu(x: np.ndarray) -> np.ndarray:
    """The kernels' GELU of fp32 x (fp32 result; the kernels round it once more at their output)."""
    xb = bf16_round(np.asarray(x, np.float32))
    return mul_split(phi_pwl(xb), xb)


# --- rsqrt: the fast inverse square root with one Newton step (amd IRON aie2_math.h) ------------


def rsqrt(v: np.ndarray) -> np.ndarray:
    """1/sqrt(v) for v > 0 in fp32 scalar steps: the 0x5f3759df estimate, one Newton step
    y (1.5 - (v/2) y y); relative error below 1.8e-3."""
    v = np.asarray(v, np.float32)
    half = v * np.float32(0.5)
    y = (np.uint32(0x5F3759DF) - (v.view(np.uint32) >> np.uint32(1))).view(np.float32)
    return y * (np.float32(1.5) - ((half * y) * y))


# --- matmul tile ----------------------------------------------------------------------------


def matmul_tile(
    a: np.ndarray,
    b: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    gelu: bool = False,
    residual: np.ndarray | None = None,
) -> np.ndarray:
    """bf16 a[M,K] @ bf16 b[K,N] with fp32 accumulation, fused epilogue, one rounding.

    bf16 x bf16 products are exact in fp32 (8+8 significant bits), so only the order of the fp32
    additions can differ between this (BLAS) and a kernel's sequential loop over K.
    """
    acc = np.matmul(np.asarray(a, np.float32), np.asarray(b, np.float32))
    if bias is not None:
        acc += np.asarray(bias, np.float32)
    if gelu:
        acc = _apply_gelu(acc)
    if residual is not None:
        acc += np.asarray(residual, np.float32)
    return bf16_round(acc)


def _apply_gelu(x: np.ndarray) -> np.ndarray:
    # the parameter `gelu` shadows the function inside matmul_tile; look the function up here
    return gelu(x)


# --- LayerNorm ------------------------------------------------------------------------------


def layernorm_rows(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis of bf16 x[M,D]; gamma, beta fp32[D]; two passes in lane order:
    mean = lane_sum(x)/D; c = x - mean; var = lane_sum(bf16(c)^2)/D; rstd = rsqrt(var + eps);
    y = bf16(beta + bf16(bf16(c) * bf16(rstd)) * bf16(gamma))."""
    x = np.asarray(x, np.float32)
    d = np.float32(x.shape[-1])
    mean = (lane_sum(x) / d)[..., None]
    c = bf16_round(x - mean)
    var = lane_sum(c * c) / d
    rstd = bf16_round(rsqrt(var + np.float32(eps)))[..., None]
    n = bf16_round(c * rstd)
    return bf16_round(np.asarray(beta, np.float32) + n * bf16_round(np.asarray(gamma, np.float32)))


# --- flash attention ------------------------------------------------------------------------


class AttnState(NamedTuple):
    m: np.ndarray  # f32[..., mq] running row max of the scaled scores (-inf before any key)
    l: np.ndarray  # f32[..., mq] running sum of the bf16-rounded probabilities
    acc: np.ndarray  # f32[..., mq, d_head] running unnormalised P.V


def attn_init(mq: int, d_head: int, batch: tuple[int, ...] = ()) -> AttnState:
    """State before the first key tile. `batch` adds leading axes (heads, query tiles) that the
    emulator runs together; each slice behaves exactly like a separate kernel call."""
    return AttnState(
        m=np.full((*batch, mq), -np.inf, np.float32),
        l=np.zeros((*batch, mq), np.float32),
        acc=np.zeros((*batch, mq, d_head), np.float32),
    )


def attn_update(state: AttnState, q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> AttnState:
    """Fold one key/value tile (bf16 k[nk,dh], v[nk,dh]) into the query tile's state.

    scale must be a power of two (d_head^-0.5 for every Whisper: 1/8): the kernels apply it to
    bf16(S - M), which equals bf16(S*scale - M*scale) only then. P is bf16 (P.V runs on the bf16
    MAC unit); l sums the rounded P in lane order; alpha is bf16 (it multiplies the fp32 acc
    through mul_split)."""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.float32(scale)
    m_new = np.maximum(state.m, s.max(axis=-1))
    alpha = bf16_round(exp_lut(state.m - m_new))  # exp(-inf) = 0 on the first tile
    p = bf16_round(exp_lut(s - m_new[..., None]))
    l_new = state.l * alpha + lane_sum(p)
    acc = mul_split(state.acc, alpha[..., None]) + np.matmul(p, v)
    return AttnState(m_new.astype(np.float32), l_new.astype(np.float32), acc.astype(np.float32))


def attn_finish(state: AttnState) -> np.ndarray:
    """Normalise by bf16(1/l) (one reciprocal per row) and round to bf16."""
    inv_l = bf16_round(np.float32(1.0) / state.l)
    return bf16_round(mul_split(state.acc, inv_l[..., None]))


# --- the tables as the C++ header the kernels include (kernels/npu_luts.h) -----------------------

# L1 bytes of the tables in the AIE build (npu_aie.h): every entry twice (two banks per lookup)
EXP_LUT_BYTES = 2 * 2 * (EXP_ILUT_BITS.size + EXP_FLUT_BITS.size)  # bf16 entries
PHI_LUT_BYTES = 2 * (2 * PHI_SLOPE_BITS.size + 4 * PHI_BASE_BITS.size)  # bf16 slope, fp32 base


def c_lut_header() -> str:
    """kernels/npu_luts.h: the tables above as bf16 bit patterns (a test keeps the file equal)."""

    def table(name: str, bits: np.ndarray, ctype: str = "uint16_t", per_row: int = 12) -> str:
        width = 4 if ctype == "uint16_t" else 8
        rows = [
            ", ".join(f"0x{int(b):0{width}X}" for b in bits[i : i + per_row])
            for i in range(0, len(bits), per_row)
        ]
        return f"constexpr {ctype} {name}[{len(bits)}] = {{\n    " + ",\n    ".join(rows) + "};\n"

    return (
        "// Generated by `python -m npustream.npu.ops.numerics` from npustream/npu/ops/numerics.py: the\n"
        "// exp tables (ILUT[i] = bf16(e^i), i = -128..127 as a two's complement byte; FLUT[f] =\n"
        "// bf16(e^(f/256))), the piecewise-linear normal CDF Phi (192 segments of 1/16 from -6: bf16\n"
        "// slope, fp32 base as its bit pattern), as bit patterns. Do not edit: tests compare this file\n"
        "// with the generator.\n#pragma once\n\n#include <cstdint>\n\nnamespace npu {\n\n"
        + table("kExpIlut", EXP_ILUT_BITS)
        + "\n"
        + table("kExpFlut", EXP_FLUT_BITS)
        + "\n"
        + table("kPhiSlope", PHI_SLOPE_BITS)
        + "\n"
        + table("kPhiBase", PHI_BASE_BITS, "uint32_t", 8)
        + "\n"
        + "\n}  // namespace npu\n"
    )


if __name__ == "__main__":
    print(c_lut_header(), end="")
