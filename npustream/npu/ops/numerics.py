"""The numeric contract shared by the NPU kernels (kernels/) and the emulator.

Storage is bf16 (round to nearest even); arithmetic is fp32. Every function here takes and returns
numpy arrays; "bf16 values" means float32 arrays whose values are exactly representable in bf16
(the kernels hold the same numbers as uint16 bit patterns). The kernels' portable C++ paths
implement the same steps in the same order, compiled with -ffp-contract=off so that a*b+c stays
two roundings, as here. docs/npu-numerics.md states what is bit-exact and what is within 1 ulp.

Order of operations (one bf16 rounding per kernel output, never in between):
  matmul_tile:    acc = sum_k a[m,k]*b[k,n] (fp32)  ->  + bias (fp32)  ->  GELU (fp32)
                  ->  + residual (fp32)  ->  round to bf16
  layernorm_rows: mean = sum(x)/D; var = sum((x-mean)^2)/D  (two passes, fp32)
                  rstd = 1/sqrt(var+eps); y = ((x-mean)*rstd)*gamma + beta  ->  round
  attention:      per key/value tile: s = (q k^T) * scale (fp32); m' = max(m, rowmax s);
                  alpha = exp(m - m'); p = round_bf16(exp(s - m')); l = l*alpha + rowsum(p);
                  acc = acc*alpha + p v (fp32)  ...  out = round_bf16(acc * (1/l))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from npustream.bf16 import bf16_round, from_bf16_bits, to_bf16_bits  # noqa: F401 (part of the contract)

# --- bf16 storage ---------------------------------------------------------------------------


# --- GELU -----------------------------------------------------------------------------------

# Abramowitz & Stegun 7.1.26: erfc(z) ~= t*(a1 + t*(a2 + t*(a3 + t*(a4 + t*a5)))) * exp(-z*z),
# t = 1/(1 + p*z), z >= 0, |error in erf| <= 1.5e-7: below fp32 resolution of the GELU result
# at bf16 output precision. Whisper was trained with the exact (erf) GELU; this is that GELU.
_AS_P = np.float32(0.3275911)
_AS_A = tuple(np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
_INV_SQRT2 = np.float32(0.70710678118654752)
_SQRT_2_OVER_PI = np.float32(0.79788456080286536)
_TANH_C = np.float32(0.044715)


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """x * Phi(x), Phi from the A&S erfc: Phi(x) = 1 - q for x >= 0, q for x < 0, with
    q = erfc(|x|/sqrt2)/2. Computing q directly avoids the cancellation of 1 - erf for x < 0:
    |error| < 1e-6 everywhere, relative error < 1e-4 down to x = -2 (0.4% at x = -5, where
    |gelu| < 1.5e-6)."""
    x = np.asarray(x, dtype=np.float32)
    z = np.abs(x)
    z *= _INV_SQRT2
    t = _AS_P * z  # t = 1 / (1 + p*z), built in place (same operations, fewer temporaries)
    t += np.float32(1.0)
    np.divide(np.float32(1.0), t, out=t)
    a1, a2, a3, a4, a5 = _AS_A
    poly = t * a5
    for a in (a4, a3, a2, a1):
        poly += a
        poly *= t
    z *= z
    np.negative(z, out=z)
    q = np.exp(z, out=z)
    q *= poly
    q *= np.float32(0.5)  # q = 0.5 * (poly * exp(-z*z)) = Phi(-|x|)
    phi = np.where(x >= 0, np.float32(1.0) - q, q)
    phi *= x
    return phi


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """The tanh approximation (mlir-aie's gelu.cc): 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715 x^3)))."""
    x = np.asarray(x, dtype=np.float32)
    inner = _SQRT_2_OVER_PI * (x + _TANH_C * (x * x * x))
    return (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))).astype(np.float32, copy=False)


# The GELU the kernels compute (choice and measurements in docs/npu-numerics.md).
gelu = gelu_erf


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
    """LayerNorm over the last axis of bf16 x[M,D]; gamma, beta fp32[D]; two-pass statistics."""
    x = np.asarray(x, np.float32)
    d = np.float32(x.shape[-1])
    mean = x.sum(axis=-1, dtype=np.float32, keepdims=True) / d
    centred = x - mean
    var = (centred * centred).sum(axis=-1, dtype=np.float32, keepdims=True) / d
    rstd = np.float32(1.0) / np.sqrt(var + np.float32(eps))
    y = (centred * rstd) * np.asarray(gamma, np.float32) + np.asarray(beta, np.float32)
    return bf16_round(y)


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

    P is rounded to bf16 because P.V runs on the bf16 matmul unit; l sums the rounded P, so the
    weights that multiply V are exactly the ones that normalise.
    """
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.float32(scale)
    m_new = np.maximum(state.m, s.max(axis=-1))
    alpha = np.exp(state.m - m_new)  # exp(-inf) = 0 on the first tile
    p = bf16_round(np.exp(s - m_new[..., None]))
    l_new = state.l * alpha + p.sum(axis=-1, dtype=np.float32)
    acc = state.acc * alpha[..., None] + np.matmul(p, v)
    return AttnState(m_new.astype(np.float32), l_new.astype(np.float32), acc.astype(np.float32))


def attn_finish(state: AttnState) -> np.ndarray:
    """Normalise by 1/l (one reciprocal per row, then multiplies) and round to bf16."""
    return bf16_round(state.acc * (np.float32(1.0) / state.l)[..., None])
