// The numeric contract of docs/npu-numerics.md as scalar C++ (npustream/npu/ops/numerics.py is the
// same contract in numpy). Every kernel's portable path is built from these functions; the AIE
// vector paths (aie_fp32.h) follow the same steps in the same order on 8/16-lane vectors.
//
// Plain IEEE fp32 throughout: no FMA contraction (build with -ffp-contract=off), no fast-math.
// It compiles anywhere, including for the AIE scalar unit, which has no floating-point hardware:
// Peano lowers scalar fp32 to compiler-rt's IEEE soft-float routines (assumed, not yet verified
// on hardware), so the per-row scalar steps of the AIE kernels should match this file exactly.
#pragma once

#include <bit>
#include <cstdint>

#if defined(__AIECC__) || defined(__chess__)
#define NPU_AIE 1  // Peano (llvm-aie) defines __AIECC__, xchesscc defines __chess__
#else
#define NPU_AIE 0
#endif

namespace npu {

// --- bf16 storage: the upper half of an fp32, round to nearest even ----------------------

inline float f32_from_bits(uint32_t u) { return std::bit_cast<float>(u); }
inline uint32_t bits_from_f32(float f) { return std::bit_cast<uint32_t>(f); }

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// Adding 0x7FFF plus the lowest kept bit, then truncating, rounds to nearest even and carries
// values past bf16's largest finite into inf. A NaN keeps its sign and upper payload and is
// made quiet (the add could carry its payload into the exponent and make it inf).
inline uint16_t bf16_from_f32(float f) {
  uint32_t u = bits_from_f32(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x0040u);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline float round_bf16(float f) { return bf16_to_f32(bf16_from_f32(f)); }

// --- elementary operations ------------------------------------------------------------------

// max as numpy's np.maximum: a NaN in either operand gives NaN.
inline float max_f32(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return a > b ? a : b;
}

// 2^n for -126 <= n <= 127, built from the exponent bits (exact).
inline float pow2i(int32_t n) { return f32_from_bits(uint32_t(n + 127) << 23); }

// e^x in fp32, the same steps on every target (libm's expf and numpy's SIMD expf differ from
// each other and between machines; this one does not). n = round(x log2 e) by the 1.5*2^23
// trick (round to nearest even); r = x - n ln2 with ln2 split in two (n*LN2_HI is exact: 15
// significant bits times |n| < 256), keeping what the last subtraction dropped (r_err);
// e^r = 1 + r + r^2 q(r), q the Taylor series to r^5/7! (|r| <= 0.35: truncation 5e-9
// relative), with 1 + r formed exactly as s + s_err; then scaled by 2^n in two steps (exact,
// then rounded once, so subnormal results round once). Both compensations are Fast2Sum: for
// |a| >= |b| the rounding error of a + b is exactly b - ((a + b) - a). Measured on 5e6 uniform
// x in [-104, 89]: 98.2 % correctly rounded, never more than 1 ulp off (numpy's AVX2 expf: 2).
inline float exp_f32(float x) {
  if (x != x) return x;
  if (x > (float)88.72283935546875) return f32_from_bits(0x7F800000u);  // overflows to inf
  if (x < (float)-103.97208404541016) return 0.0f;  // below half the smallest subnormal
  const float kLog2e = (float)1.4426950408889634;
  const float kLn2Hi = (float)0.693145751953125;
  const float kLn2Lo = (float)1.4286068203094172e-06;
  const float kRound = (float)12582912.0;  // 1.5 * 2^23
  const float n = (x * kLog2e + kRound) - kRound;
  const float t = x - n * kLn2Hi;  // exact
  const float u = n * kLn2Lo;
  const float r = t - u;
  const float r_err = (t - r) - u;
  float q = (float)(1.0 / 5040.0);
  q = q * r + (float)(1.0 / 720.0);
  q = q * r + (float)(1.0 / 120.0);
  q = q * r + (float)(1.0 / 24.0);
  q = q * r + (float)(1.0 / 6.0);
  q = q * r + 0.5f;
  const float s = 1.0f + r;
  const float s_err = (1.0f - s) + r;
  const float p = s + (s_err + (r_err + (r * r) * q));
  const int32_t ni = int32_t(n);
  const int32_t n1 = ni >> 1;  // floor(n/2): both halves stay in the normal exponent range
  return (p * pow2i(n1)) * pow2i(ni - n1);
}

// Correctly rounded sqrt (as IEEE sqrtf and np.sqrt) from integer operations only, so the AIE
// scalar unit, which has no floating-point hardware and no guaranteed libm sqrtf, gets the same
// bits. x = M 2^E with M in [2^46, 2^48) and E even; r = floor(sqrt(M)) has 24 bits; round up
// when the remainder exceeds r (a square root is never exactly halfway between two floats).
inline float sqrt_f32(float x) {
  const uint32_t u = bits_from_f32(x);
  if (x != x) return x;
  if (u & 0x80000000u) return x == 0.0f ? x : f32_from_bits(0x7FC00000u);  // -0 -> -0, <0 -> NaN
  if (u == 0 || u == 0x7F800000u) return x;                                 // +0, +inf
  int32_t e = int32_t(u >> 23) - 127;  // x = m 2^(e - 23)
  uint32_t m = u & 0x007FFFFFu;
  if (e == -127) {  // subnormal: normalise m to 24 bits
    e = -126;
    while (!(m & 0x00800000u)) {
      m <<= 1;
      e--;
    }
  } else {
    m |= 0x00800000u;
  }
  const bool odd = (e - 46) & 1;
  uint64_t op = uint64_t(m) << (odd ? 24 : 23);  // in [2^46, 2^48)
  const int32_t half_e = (e - (odd ? 47 : 46)) / 2;  // exact: the shifted exponent is even
  uint64_t root = 0;
  for (uint64_t bit = uint64_t(1) << 46; bit != 0; bit >>= 2) {  // digit-by-digit square root
    if (op >= root + bit) {
      op -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
  }
  if (op > root) root++;  // round to nearest; 2^24 carries into the exponent below
  return f32_from_bits((uint32_t(half_e + 23 + 127) << 23) + uint32_t(root - 0x00800000u));
}

// The exact (erf) GELU with erfc from Abramowitz & Stegun 7.1.26, as numerics.gelu_erf:
// q = Phi(-|x|) computed directly (no cancellation), gelu = x * (x >= 0 ? 1 - q : q).
// Constants are Python floats rounded to fp32, as np.float32(...) does (hence the casts from
// double literals, not float literals: decimal -> fp32 and decimal -> fp64 -> fp32 can differ).
inline float gelu_f32(float x) {
  const float kP = (float)0.3275911;
  const float a1 = (float)0.254829592, a2 = (float)-0.284496736, a3 = (float)1.421413741;
  const float a4 = (float)-1.453152027, a5 = (float)1.061405429;
  const float kInvSqrt2 = (float)0.70710678118654752;
  float z = f32_from_bits(bits_from_f32(x) & 0x7FFFFFFFu) * kInvSqrt2;  // |x|
  float t = 1.0f / (1.0f + kP * z);
  float poly = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))));
  float q = 0.5f * (poly * exp_f32(-(z * z)));
  float phi = x >= 0.0f ? 1.0f - q : q;
  return x * phi;
}

// --- the reduction order ----------------------------------------------------------------------

// Sum of n fp32 values in the contract's order, which is numpy's pairwise order (so the
// emulator's vectorised np.sum and the kernels agree bit for bit):
//   n < 8:       sequential from 0
//   8..128:      8 interleaved partial sums r[j] += x[i + j] over whole groups of 8,
//                ((r0+r1)+(r2+r3)) + ((r4+r5)+(r6+r7)), then the remainder sequentially
//   n > 128:     split at h = n/2 rounded down to a multiple of 8; sum(first h) + sum(rest)
// The 8 partial sums are the 8 fp32 lanes of a vector accumulator on the AIE.
// `at(i)` returns element i as fp32.
template <typename At>
float pairwise_sum(At at, int32_t first, int32_t n) {
  if (n < 8) {
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++) s += at(first + i);
    return s;
  }
  if (n <= 128) {
    float r[8];
    for (int32_t j = 0; j < 8; j++) r[j] = at(first + j);
    int32_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int32_t j = 0; j < 8; j++) r[j] += at(first + i + j);
    float s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) s += at(first + i);
    return s;
  }
  int32_t h = n / 2;
  h -= h % 8;
  return pairwise_sum(at, first, h) + pairwise_sum(at, first + h, n - h);
}

// A row sum as np.sum(..., axis=-1) returns it: the reduction starts from the identity 0.
template <typename At>
float row_sum(At at, int32_t n) {
  return 0.0f + pairwise_sum(at, 0, n);
}

}  // namespace npu
