"""The arithmetic of amd/IRON's AIE2 (Phoenix) operators, element for element, on the CPU.

Read from the kernels at the pinned commit (docs/npu-iron.md lists each source with its commit);
nothing here was measured on hardware. Values are float32 arrays; "bf16 values" are float32 arrays
whose values are representable in bf16, as the cores hold them.

Rounding. Every float32 -> bf16 conversion on the core follows the core's rounding mode. The
LayerNorm kernel and the GEMM (built with round_conv_even) set `conv_even` (round to nearest,
ties to even); the add, GELU and softmax kernels never set a mode, so they run in the mode the
core powers up in, `floor` (toward -inf). `Rounding` names both; `IronNumerics` chooses one per
operator so a study can switch a kernel's mode without touching the others.

Operators (one function each, same inputs and outputs as the operator's buffers):
  gemm        C = A @ B; C is bf16 between the tile_k reduction steps unless prio_accuracy
  add         a + b, one rounding
  gelu        0.5x(1 + tanh(s(x + 0.044715x^3))) with bf16 constants, fused MACs and a
              32-segment piecewise-linear tanh
  softmax     exp from two 256-entry bf16 tables indexed by the Q8.8 input, no max subtraction,
              f32 sum, bf16 reciprocal; entries past `valid` set to -65504 first (the mask kernel)
  layernorm   16-lane bf16 running sum of x, f32 sum of x^2, var = E[x^2] - mean^2, Quake
              inverse square root with one Newton step, mean and 1/std as bf16, gamma = 1, beta = 0
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from npustream.bf16 import bf16_round


class Rounding(StrEnum):
    CONV_EVEN = "conv_even"  # round to nearest, ties to even (aie::rounding_mode::conv_even)
    FLOOR = "floor"  # toward -inf: the mode a core powers up in (aie::rounding_mode::floor)


def to_bf16(x: np.ndarray, mode: Rounding) -> np.ndarray:
    """float32 -> bf16 values under the core's rounding mode."""
    if mode is Rounding.CONV_EVEN:
        return bf16_round(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    kept = u & np.uint32(0xFFFF0000)
    # a negative value with dropped bits moves one bf16 step away from zero (toward -inf); adding
    # 0x10000 to the pattern of a negative float grows its magnitude by one step
    down = (u >> np.uint32(31)).astype(bool) & ((u & np.uint32(0xFFFF)) != 0) & np.isfinite(x)
    kept[down] += np.uint32(0x10000)
    return kept.view(np.float32)


@dataclass(frozen=True)
class IronNumerics:
    """Which rounding each kernel runs with, and the GEMM's accuracy option."""

    gemm_rounding: Rounding = Rounding.CONV_EVEN  # mm.cc built with -DROUND_CONV_EVEN
    layernorm_rounding: Rounding = Rounding.CONV_EVEN  # layer_norm.cc: set_rounding(conv_even)
    add_rounding: Rounding = Rounding.FLOOR  # never set: power-up mode
    gelu_rounding: Rounding = Rounding.FLOOR
    softmax_rounding: Rounding = Rounding.FLOOR
    prio_accuracy: bool = True  # f32 C across K steps (IRON's whisper_small app sets it)
    layernorm_f32: bool = False  # layer_norm.cc's `layer_norm_f32` entry instead of `layer_norm`
    tile_k: int = 64


STOCK = IronNumerics()


# --- GEMM -------------------------------------------------------------------------------------


def gemm(a: np.ndarray, b: np.ndarray, num: IronNumerics = STOCK) -> np.ndarray:
    """bf16 A[M, K] @ bf16 B[K, N] -> bf16 C[M, N] as mm.cc computes it.

    bf16 x bf16 products are exact in f32; within one tile_k step the mmul unit sums them in its
    f32 accumulator. Without prio_accuracy, C is stored as bf16 after every step and reloaded for
    the next (the kernel's C buffer is bf16); with it, C stays f32 until the final conversion.
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    k = a.shape[-1]
    if num.prio_accuracy or k <= num.tile_k:
        return to_bf16(a @ b, num.gemm_rounding)
    c = np.zeros((*a.shape[:-1], b.shape[-1]), np.float32)
    for start in range(0, k, num.tile_k):
        c += a[..., start : start + num.tile_k] @ b[start : start + num.tile_k]
        c = to_bf16(c, num.gemm_rounding)
    return c


# --- element-wise add -------------------------------------------------------------------------


def add(a: np.ndarray, b: np.ndarray, num: IronNumerics = STOCK) -> np.ndarray:
    """bf16 a + bf16 b -> bf16 (the sum is exact in f32 for operands within 2^16 of each other)."""
    return to_bf16(np.asarray(a, np.float32) + np.asarray(b, np.float32), num.add_rounding)


# --- exp: two 256-entry bf16 tables indexed by the Q8.8 input --------------------------------

EXP_INT_MAX = 88  # exp(89) exceeds bf16's largest finite value; the table repeats exp(88) above


def _exp_tables() -> tuple[np.ndarray, np.ndarray]:
    """ilut[i] = bf16(exp(int8(i))), saturating at exp(88); flut[j] = bf16(exp(j / 256)).

    Generated from the formulas the tables in mlir-aie's lut_based_ops.cpp follow (checked entry
    by entry against their stored bf16 patterns when this was written, see tests)."""
    whole = np.arange(256, dtype=np.int64)
    whole = np.where(whole < 128, whole, whole - 256)  # signed integer part
    ilut = bf16_round(np.exp(np.minimum(whole, EXP_INT_MAX).astype(np.float64)).astype(np.float32))
    flut = bf16_round(np.exp(np.arange(256, dtype=np.float64) / 256).astype(np.float32))
    return ilut, flut


EXP_ILUT, EXP_FLUT = _exp_tables()


def q8_8(x: np.ndarray, mode: Rounding) -> np.ndarray:
    """bfloat16_to_int(x, 8): x * 256 to int16 under the rounding mode, saturating."""
    scaled = np.asarray(x, np.float64) * 256.0
    q = np.floor(scaled) if mode is Rounding.FLOOR else np.round(scaled)  # np.round: ties to even
    return np.clip(q, -32768, 32767).astype(np.int64)


def exp_lut(x: np.ndarray, mode: Rounding) -> np.ndarray:
    """getExpBf16: ilut[high byte] * flut[low byte] of the Q8.8 input, the product in f32."""
    q = q8_8(x, mode)
    return EXP_ILUT[(q >> 8) & 0xFF] * EXP_FLUT[q & 0xFF]


MASK_VALUE = np.float32(-65504.0)  # mask_bf16: the most negative finite value it writes


def softmax(x: np.ndarray, valid: int | None = None, num: IronNumerics = STOCK) -> np.ndarray:
    """Row softmax of bf16 x[..., cols] as softmax.cc computes it; columns >= valid masked."""
    x = np.array(x, np.float32)
    if valid is not None and valid < x.shape[-1]:
        x[..., valid:] = MASK_VALUE
    mode = num.softmax_rounding
    e = to_bf16(exp_lut(x, mode), mode)  # to_v16bfloat16(getExpBf16(...))
    total = e.sum(axis=-1, dtype=np.float32, keepdims=True)  # accfloat lanes, then reduce_add
    with np.errstate(divide="ignore", over="ignore"):
        inv = to_bf16(np.float32(1.0) / total, mode)  # (bfloat16) aie::inv(sum)
    return to_bf16(e * inv, mode)


# --- GELU: tanh form with the 32-segment linear tanh ------------------------------------------

# getTanhBf16 (mlir-aie lut_based_ops.h): aie::linear_approx over segments of 0.25 (step_bits -2)
# with bias 16, i.e. segment floor(4x) + 16 clamped to 0..31, value slope*x + offset. The
# (slope, offset) pairs are the bf16-representable values of the kernel's tanh_lut tables
# (Xilinx/mlir-aie aie_runtime_lib/AIE2/lut_based_ops.cpp, Apache-2.0 WITH LLVM-exception), for
# |x| in [0.25k, 0.25(k+1)), k = 1..14; the table is odd: segment 15 - k mirrors 16 + k.
_TANH_POSITIVE = (
    (0.8671875, 0.03076171875),
    (0.69140625, 0.11962890625),
    (0.50390625, 0.259765625),
    (0.34765625, 0.416015625),
    (0.2294921875, 0.5625),
    (0.1455078125, 0.6875),
    (0.091796875, 0.78125),
    (0.056396484375, 0.8515625),
    (0.035400390625, 0.8984375),
    (0.021240234375, 0.93359375),
    (0.0126953125, 0.95703125),
    (0.00750732421875, 0.97265625),
    (0.005096435546875, 0.98046875),
    (0.002838134765625, 0.98828125),
)


def _tanh_segments() -> tuple[np.ndarray, np.ndarray]:
    positive = [(1.0, 0.0), *_TANH_POSITIVE, (0.0, 1.0)]  # segments 16 .. 31
    negative = [(s, -o) for s, o in reversed(positive)]  # segments 0 .. 15
    pairs = np.array(negative + positive, np.float32)
    return pairs[:, 0], pairs[:, 1]


TANH_SLOPE, TANH_OFFSET = _tanh_segments()


def tanh_linear(x: np.ndarray, mode: Rounding) -> np.ndarray:
    """getTanhBf16 on bf16 x: slope*x + offset of x's segment floor(4x) + 16, in f32, then to bf16
    under the core's rounding mode."""
    x = np.asarray(x, np.float32)
    seg = np.clip(np.floor(x * np.float32(4.0)) + 16, 0, 31).astype(np.int64)
    return to_bf16(TANH_SLOPE[seg] * x + TANH_OFFSET[seg], mode)


GELU_S = bf16_round(np.float32(0.79788456))  # sqrt(2/pi) as the kernel's bfloat16 constant
GELU_S_BETA = bf16_round(np.float32(GELU_S * np.float32(0.044715)))


def gelu(x: np.ndarray, num: IronNumerics = STOCK) -> np.ndarray:
    """gelu.cc on bf16 x: the tanh approximation with the kernel's roundings."""
    mode = num.gelu_rounding
    x = np.asarray(x, np.float32)
    x2 = to_bf16(x * x, mode)
    sbeta_x = to_bf16(x * GELU_S_BETA, mode)
    inner = to_bf16(x * GELU_S + sbeta_x * x2, mode)  # mac(s*x, sbeta_x, x2)
    t = tanh_linear(inner, mode)
    half_x = x * np.float32(0.5)  # exact
    return to_bf16(half_x + half_x * t, mode)  # mac(0.5x, tanh, 0.5x)


# --- LayerNorm ----------------------------------------------------------------------------------

LN_LANES = 16
LN_EPS = np.float32(1e-5)


def invsqrt(v: np.ndarray) -> np.ndarray:
    """aie2_math.h invsqrt: the 0x5f3759df bit trick and one Newton step, in f32."""
    v = np.asarray(v, np.float32)
    i = np.int32(0x5F3759DF) - (v.view(np.int32) >> 1)
    y = i.astype(np.int32).view(np.float32)
    return y * (np.float32(1.5) - (v * np.float32(0.5)) * y * y)


def _bf16_tree_sum(lanes: np.ndarray, mode: Rounding) -> np.ndarray:
    """reduce_add of a bf16 vector: pairwise halving, each partial sum stored as bf16."""
    while lanes.shape[-1] > 1:
        half = lanes.shape[-1] // 2
        lanes = to_bf16(lanes[..., :half] + lanes[..., half:], mode)
    return lanes[..., 0]


def layernorm_f32(x: np.ndarray, mode: Rounding) -> np.ndarray:
    """layer_norm.cc's `layer_norm_f32` entry: f32 sums, f32 mean and 1/std (Quake invsqrt, one
    Newton step), (x - mean) * inv_std in f32, one rounding to bf16."""
    x = np.asarray(x, np.float32)
    cols = np.float32(x.shape[-1])
    mean = x.sum(axis=-1, dtype=np.float32, keepdims=True) / cols
    variance = (x * x).sum(axis=-1, dtype=np.float32, keepdims=True) / cols - mean * mean
    return to_bf16((x - mean) * invsqrt(variance + LN_EPS), mode)


def layernorm(x: np.ndarray, num: IronNumerics = STOCK) -> np.ndarray:
    """layer_norm.cc (entry `layer_norm`, or `layer_norm_f32` when num.layernorm_f32) over the last
    axis of bf16 x[..., cols]; no affine."""
    mode = num.layernorm_rounding
    if num.layernorm_f32:
        return layernorm_f32(x, mode)
    x = np.asarray(x, np.float32)
    cols = x.shape[-1]
    chunks = x.reshape(*x.shape[:-1], cols // LN_LANES, LN_LANES)
    lane_sum = np.zeros((*x.shape[:-1], LN_LANES), np.float32)
    for i in range(cols // LN_LANES):  # sum_acc = aie::add(sum_acc, reg_a): bf16 per step
        lane_sum = to_bf16(lane_sum + chunks[..., i, :], mode)
    total = _bf16_tree_sum(lane_sum, mode)
    sum_sq = (chunks * chunks).sum(axis=-2, dtype=np.float32).sum(axis=-1, dtype=np.float32)
    mean = total / np.float32(cols)
    variance = sum_sq / np.float32(cols) - mean * mean
    inv_std = invsqrt(variance + LN_EPS)
    mean_b = to_bf16(mean, mode)[..., None]
    inv_b = to_bf16(inv_std, mode)[..., None]
    return to_bf16(to_bf16(x - mean_b, mode) * inv_b, mode)
