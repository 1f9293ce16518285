// The numeric contract of docs/npu-numerics.md as scalar C++ (npustream/npu/ops/numerics.py is
// the same contract in numpy; both are bit-exact with each other). Every kernel's portable path
// is built from these functions; the AIE vector paths (npu_aie.h) run the same steps on 16-lane
// vectors.
//
// The arithmetic is the AIE2 vector unit's: multiplies take bf16 operands (a product of two bf16
// values is exact in fp32), sums are fp32, per-row scalars are IEEE fp32 (Peano lowers scalar
// fp32 to compiler-rt's soft-float). No FMA contraction (build with -ffp-contract=off).
#pragma once

#include <bit>
#include <cstdint>

#include "npu_luts.h"

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

// max as numpy's np.maximum: a NaN in either operand gives NaN.
inline float max_f32(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return a > b ? a : b;
}

// --- the vector unit's sums and products --------------------------------------------------------

constexpr int32_t kLanes = 16;  // one fp32 accumulator register

// Sum of n values in lane order: 16 partial sums over consecutive chunks of 16 (a ragged end
// padded with +0), then halves added to halves. `at(i)` returns element i as fp32.
template <typename At>
float lane_sum(At at, int32_t n) {
  float acc[kLanes];
  for (int32_t l = 0; l < kLanes; l++) acc[l] = l < n ? at(l) : 0.0f;
  for (int32_t c = kLanes; c < n; c += kLanes)
    for (int32_t l = 0; l < kLanes; l++) acc[l] += c + l < n ? at(c + l) : 0.0f;
  for (int32_t half = kLanes / 2; half >= 1; half /= 2)
    for (int32_t l = 0; l < half; l++) acc[l] = acc[l] + acc[l + half];
  return acc[0];
}

// fp32 a times the bf16 value b: a = hi + lo in two bf16 pieces, two exact products, one rounding.
inline float mul_split(float a, float b) {
  const float hi = round_bf16(a);
  const float lo = round_bf16(a - hi);
  return hi * b + lo * b;
}

// --- exp: bf16 -> Q8.8 -> two 256-entry bf16 tables (mlir-aie's lut_based_ops scheme) ------------

constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: (v + kRound) - kRound rounds to an integer, RNE

// bf16(x) in Q8.8, round to nearest even, saturating to int16 (NaN and -inf to -32768).
inline int32_t q88(float x) {
  float v = round_bf16(x) * 256.0f;
  if (!(v >= -32768.0f)) v = -32768.0f;
  if (v > 32767.0f) v = 32767.0f;
  int32_t q = int32_t((v + kRound) - kRound);
  return q > 32767 ? 32767 : q;
}

// e^x: ILUT[integer byte] * FLUT[fraction byte], the product of two bf16 values (exact in fp32).
inline float exp_lut(float x) {
  const int32_t q = q88(x);
  return bf16_to_f32(kExpIlut[(q >> 8) & 255]) * bf16_to_f32(kExpFlut[q & 255]);
}

// --- GELU: x * Phi(x), Phi on 192 linear segments of 1/16 from -6 (npu_luts.h) ------------------

constexpr int32_t kPhiSegments = 192, kPhiPerUnit = 16;

// Phi(t) for bf16 t: base + slope * (t - a) in fp32, a = floor(16t) / 16 (t - a is exact), the
// segment clamped to the table (the outer segments are flat).
inline float phi_pwl(float t) {
  t = round_bf16(t);
  if (t < -6.0f) t = -6.0f;
  if (t > 6.0f) t = 6.0f;
  float f = t * float(kPhiPerUnit);
  if (f != f) f = 0.0f;
  int32_t seg;
  if (f >= float(kPhiSegments / 2 - 1)) {
    seg = kPhiSegments / 2 - 1;
  } else {  // floor, -96 <= f < 95
    seg = int32_t(f);
    if (float(seg) > f) seg -= 1;
  }
  const int32_t i = seg + kPhiSegments / 2;
  const float start = float(seg) / float(kPhiPerUnit);
  return f32_from_bits(kPhiBase[i]) + bf16_to_f32(kPhiSlope[i]) * (t - start);
}

// gelu(x) = mul_split(Phi(xb), xb), xb = bf16(x).
inline float gelu(float x) {
  const float xb = round_bf16(x);
  return mul_split(phi_pwl(xb), xb);
}

// --- rsqrt: the 0x5f3759df estimate and one Newton step (amd IRON's aie2_math.h) ---------------

inline float rsqrt(float v) {
  const float half = v * 0.5f;
  const float y = f32_from_bits(0x5F3759DFu - (bits_from_f32(v) >> 1));
  return y * (1.5f - ((half * y) * y));
}

}  // namespace npu
