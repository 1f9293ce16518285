// fp32 vector arithmetic for the AIE2 (Phoenix, XDNA1) vector paths. AIE build only.
//
// AIE2's vector unit multiplies bf16 x bf16 into fp32 accumulators and adds fp32 on the
// accumulator datapath; it has no fp32 x fp32 multiplier, and Peano lowers an fp32 vector
// multiply by rounding both inputs to bf16 (mlir-aie's EmulateMulFInBF16Pattern; see also the
// note in mlir-aie's rms_norm.cc). The contract's fp32 steps (LayerNorm's affine step, the
// online-softmax rescaling, the exp and GELU polynomials) need full fp32 products, so `mul`
// below splits each operand into three bf16 pieces (8 + 8 + 8 significant bits cover fp32's 24)
// and accumulates the six partial products that matter, smallest first. Simulated on the host
// (RNE splits, RNE fp32 accumulation, 2e7 random operands): 96.1 % equal to the IEEE product,
// never more than one ulp off. The division (Newton iteration) is likewise near-IEEE.
// Everything the kernels do per row (means, 1/sqrt, 1/l, alpha) runs on the scalar unit with
// npu_numerics.h's functions; with Peano its fp32 is compiler-rt's IEEE soft-float.
//
// Not compiled here (no toolchain on the development machines): see kernels/README.md.
#pragma once

#include "npu_numerics.h"

#if NPU_AIE
#include <aie_api/aie.hpp>

namespace npu::aie2 {

constexpr unsigned kLanes = 16;  // 16 fp32 = one 512-bit accumulator register
using vf = aie::vector<float, kLanes>;
using vb = aie::vector<bfloat16, kLanes>;
using vi = aie::vector<int32, kLanes>;
using af = aie::accum<accfloat, kLanes>;

inline vf splat(float c) { return aie::broadcast<float, kLanes>(c); }

// bf16 -> fp32 exactly (a product with 1.0 is exact in the fp32 accumulator).
inline vf widen(vb v) {
  return aie::mul(v, aie::broadcast<bfloat16, kLanes>(bfloat16(1.0f))).template to_vector<float>();
}

// fp32 -> bf16, round to nearest even (every entry point sets conv_even first).
inline vb narrow(vf v) {
  af acc;
  acc.from_vector(v);
  return acc.template to_vector<bfloat16>();
}

inline vf add(vf a, vf b) { return aie::add(a, b); }
inline vf sub(vf a, vf b) { return aie::sub(a, b); }

// x = hi + mid + lo, each a bf16 (exact for normal x: each step removes 8 significant bits).
struct Split {
  vb hi, mid, lo;
};
inline Split split(vf x) {
  vb hi = narrow(x);
  vf rest = sub(x, widen(hi));
  vb mid = narrow(rest);
  return {hi, mid, narrow(sub(rest, widen(mid)))};
}

// fp32 x fp32: the partial products down to 2^-24 relative, accumulated smallest first.
inline vf mul(vf x, vf y) {
  Split a = split(x), b = split(y);
  af acc = aie::mul(a.hi, b.lo);
  acc = aie::mac(acc, a.lo, b.hi);
  acc = aie::mac(acc, a.mid, b.mid);
  acc = aie::mac(acc, a.hi, b.mid);
  acc = aie::mac(acc, a.mid, b.hi);
  acc = aie::mac(acc, a.hi, b.hi);
  return acc.template to_vector<float>();
}

// 1 / d: the vector unit's reciprocal as the seed, two Newton steps y = y (2 - d y) in fp32.
inline vf inv(vf d) {
  vf y = aie::inv(d);
  for (int step = 0; step < 2; step++) y = mul(y, sub(splat(2.0f), mul(d, y)));
  return y;
}

// 2^n for integral n in [-126, 127], from the exponent bits.
inline vf pow2i(vi n) {
  return aie::upshift(aie::add(n, aie::broadcast<int32, kLanes>(127)), 23).template cast_to<float>();
}

// npu::exp_f32, lane by lane: same range reduction, same compensations, same polynomial,
// same two-step scaling.
inline vf exp(vf x) {
  const vf round = splat((float)12582912.0);
  const vf n = sub(add(mul(x, splat((float)1.4426950408889634)), round), round);
  const vf t = sub(x, mul(n, splat((float)0.693145751953125)));
  const vf u = mul(n, splat((float)1.4286068203094172e-06));
  const vf r = sub(t, u);
  const vf r_err = sub(sub(t, r), u);
  vf q = splat((float)(1.0 / 5040.0));
  q = add(mul(q, r), splat((float)(1.0 / 720.0)));
  q = add(mul(q, r), splat((float)(1.0 / 120.0)));
  q = add(mul(q, r), splat((float)(1.0 / 24.0)));
  q = add(mul(q, r), splat((float)(1.0 / 6.0)));
  q = add(mul(q, r), splat(0.5f));
  const vf s = add(splat(1.0f), r);
  const vf s_err = add(sub(splat(1.0f), s), r);
  const vf p = add(s, add(s_err, add(r_err, mul(mul(r, r), q))));
  const vi ni = aie::to_fixed<int32>(n, 0);  // n is integral: the conversion is exact
  const vi n1 = aie::downshift(ni, 1);       // arithmetic shift: floor(n / 2)
  vf e = mul(mul(p, pow2i(n1)), pow2i(aie::sub(ni, n1)));
  // out of range and NaN, as exp_f32: the bounds are checked on x, before any arithmetic
  const vf inf = splat(npu::f32_from_bits(0x7F800000u));
  e = aie::select(e, inf, aie::gt(x, splat((float)88.72283935546875)));
  e = aie::select(e, splat(0.0f), aie::lt(x, splat((float)-103.97208404541016)));
  return aie::select(e, x, aie::neq(x, x));
}

// npu::gelu_f32, lane by lane.
inline vf gelu(vf x) {
  vf z = mul(aie::abs(x), splat((float)0.70710678118654752));
  vf t = inv(add(splat(1.0f), mul(splat((float)0.3275911), z)));
  vf poly = add(splat((float)-1.453152027), mul(t, splat((float)1.061405429)));
  poly = add(splat((float)1.421413741), mul(t, poly));
  poly = add(splat((float)-0.284496736), mul(t, poly));
  poly = add(splat((float)0.254829592), mul(t, poly));
  poly = mul(t, poly);
  vf q = mul(splat(0.5f), mul(poly, exp(aie::neg(mul(z, z)))));
  vf phi = aie::select(q, sub(splat(1.0f), q), aie::ge(x, splat(0.0f)));
  return mul(x, phi);
}

// npu::pairwise_sum over n fp32 values in memory, with the 8 partial sums as the 8 lanes of a
// vector (loads of 8 consecutive values; the tree over the lanes and any remainder are scalar).
inline float pairwise_sum(const float *x, int32_t n) {
  if (n < 8) {
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++) s += x[i];
    return s;
  }
  if (n <= 128) {
    aie::vector<float, 8> r = aie::load_v<8>(x);
    int32_t i = 8;
    for (; i < n - n % 8; i += 8) r = aie::add(r, aie::load_v<8>(x + i));
    float s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) s += x[i];
    return s;
  }
  int32_t h = n / 2;
  h -= h % 8;
  return pairwise_sum(x, h) + pairwise_sum(x + h, n - h);
}

}  // namespace npu::aie2

#endif  // NPU_AIE
