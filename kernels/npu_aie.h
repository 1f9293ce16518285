// The contract's vector steps for the AIE2 (Phoenix, XDNA1) vector paths, in the style of
// mlir-aie's aie_kernels/aie2 and aie_runtime_lib/AIE2/lut_based_ops: bf16 x bf16 multiplies into
// fp32 accumulators, fp32 adds, table lookups through aie::parallel_lookup. No fp32 x fp32
// multiply (AIE2 has none), no recursion. AIE build only; not compiled here (kernels/README.md).
//
// Every entry point sets conv_even rounding first: the fp32 -> bf16 conversions round to nearest
// even, as the contract's round_bf16.
#pragma once

#include "npu_numerics.h"

#if NPU_AIE
#include <array>

#include <aie_api/aie.hpp>

namespace npu::aie2 {

using vf = aie::vector<float, kLanes>;
using vb = aie::vector<bfloat16, kLanes>;
using vi16 = aie::vector<int16, kLanes>;
using af = aie::accum<accfloat, kLanes>;

// bf16 -> fp32 accumulator exactly; fp32 accumulator -> bf16 (RNE under conv_even).
inline af widen(vb v) {
  af acc;
  acc.from_vector(v);
  return acc;
}
inline vb narrow(af acc) { return acc.template to_vector<bfloat16>(); }
inline vb narrow_f32(vf v) {
  af acc;
  acc.from_vector(v);
  return acc.template to_vector<bfloat16>();
}

// fp32 lanes times one bf16 value per lane: a = hi + lo, two exact products, one rounding.
inline af mul_split(af a, vb b) {
  const vb hi = narrow(a);
  const vb lo = narrow(aie::sub(a, widen(hi)));
  return aie::mac(aie::mul(hi, b), lo, b);
}

// Lookup tables in the layout aie::parallel_lookup reads: each 8-entry group twice (two 128-bit
// banks), and an _ab and a _cd copy, as lut_based_ops.cpp lays out its exp tables.
template <typename T, size_t N>
constexpr std::array<T, 2 * N> banked(const T (&table)[N]) {
  std::array<T, 2 * N> out{};
  for (size_t j = 0; j < 2 * N; j++) out[j] = table[(j / 16) * 8 + j % 8];
  return out;
}
alignas(aie::vector_decl_align) inline constexpr auto kExpIlutBanked = banked(kExpIlut);
alignas(aie::vector_decl_align) inline constexpr auto kExpFlutBanked = banked(kExpFlut);
alignas(aie::vector_decl_align) inline constexpr auto kPhiSlopeBanked = banked(kPhiSlope);
alignas(aie::vector_decl_align) inline constexpr auto kPhiBaseBanked = banked(kPhiBase);

using lut_bf16 = aie::lut<4, bfloat16, bfloat16>;
using lut_f32 = aie::lut<4, float, float>;

// e^x for 16 bf16 lanes: Q8.8 (conv_even, saturating), integer byte and fraction byte looked up,
// their product in the fp32 accumulator (exact).
inline af exp_lut(vb x) {
  const lut_bf16 ilut(256, (const bfloat16 *)kExpIlutBanked.data(), (const bfloat16 *)kExpIlutBanked.data());
  const lut_bf16 flut(256, (const bfloat16 *)kExpFlutBanked.data(), (const bfloat16 *)kExpFlutBanked.data());
  aie::parallel_lookup<uint16, lut_bf16, aie::lut_oor_policy::truncate> integer(ilut, 8), fraction(flut, 0);
  const vi16 q = aie::to_fixed<int16>(x, 8);
  return aie::mul(integer.fetch(q.cast_to<uint16>()), fraction.fetch(q.cast_to<uint16>()));
}

// Phi of 16 bf16 lanes: segment floor(16t) (t clamped to [-6, 6], the segment to the table),
// then base + slope * (t - start) in the fp32 accumulator (t - start is exact in bf16).
inline af phi_pwl(vb t) {
  t = aie::min(aie::max(t, aie::broadcast<bfloat16, kLanes>(-6.0f)), aie::broadcast<bfloat16, kLanes>(6.0f));
  aie::set_rounding(aie::rounding_mode::floor);  // the segment is floor(16t)
  vi16 seg = aie::to_fixed<int16>(t, 4);
  aie::set_rounding(aie::rounding_mode::conv_even);
  seg = aie::min(seg, aie::broadcast<int16, kLanes>(kPhiSegments / 2 - 1));
  const vi16 index = aie::add(seg, aie::broadcast<int16, kLanes>(kPhiSegments / 2));
  const lut_bf16 slopes(kPhiSegments, (const bfloat16 *)kPhiSlopeBanked.data(),
                        (const bfloat16 *)kPhiSlopeBanked.data());
  const lut_f32 bases(kPhiSegments, (const float *)kPhiBaseBanked.data(), (const float *)kPhiBaseBanked.data());
  aie::parallel_lookup<uint16, lut_bf16, aie::lut_oor_policy::truncate> slope(slopes, 0);
  aie::parallel_lookup<uint16, lut_f32, aie::lut_oor_policy::truncate> base(bases, 0);
  af start;
  start.from_vector(aie::to_float(seg, 4));
  af phi;
  phi.from_vector(base.fetch(index.cast_to<uint16>()));
  return aie::mac(phi, slope.fetch(index.cast_to<uint16>()), narrow(aie::sub(widen(t), start)));
}

// GELU of 16 lanes given as bf16: x * Phi(x), the product through mul_split.
inline af gelu(vb x) { return mul_split(phi_pwl(x), x); }

// The 16 lanes added halves to halves (8, 4, 2, 1), as npu::lane_sum ends.
inline float fold(af acc) {
  vf v = acc.template to_vector<float>();
  aie::vector<float, 8> v8 = aie::add(v.template extract<8>(0), v.template extract<8>(1));
  aie::vector<float, 4> v4 = aie::add(v8.template extract<4>(0), v8.template extract<4>(1));
  aie::vector<float, 2> v2 = aie::add(v4.template extract<2>(0), v4.template extract<2>(1));
  return v2[0] + v2[1];
}

}  // namespace npu::aie2

#endif  // NPU_AIE
