// The contract's building blocks (npu_numerics.h) as entry points of their own, so that the host
// tests can check them directly: fp32 <-> bf16 storage conversion (round to nearest even, NaN
// kept quiet with its sign, inf kept, finite values past bf16's largest rounded to inf,
// subnormals kept) and the kernels' table exp.

#include "npu_kernels.h"

#if NPU_AIE
// ---- AIE2 vector path: the accumulator's conversion with conv_even rounding; n % 16 == 0 ----
// (The hardware's NaN payload and subnormal handling are not verified against the contract.)

#include "npu_aie.h"

extern "C" {

void npu_to_bf16(const float *x, npu_bf16 *y, int32_t n) {
  aie::set_rounding(aie::rounding_mode::conv_even);
  for (int32_t i = 0; i < n; i += 16) aie::store_v(y + i, npu::aie2::narrow_f32(aie::load_v<16>(x + i)));
}

void npu_from_bf16(const npu_bf16 *x, float *y, int32_t n) {
  for (int32_t i = 0; i < n; i += 16)
    aie::store_v(y + i, npu::aie2::widen(aie::load_v<16>(x + i)).template to_vector<float>());
}

void npu_exp_lut(const float *x, float *y, int32_t n) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  for (int32_t i = 0; i < n; i += 16)
    aie::store_v(y + i, exp_lut(narrow_f32(aie::load_v<16>(x + i))).template to_vector<float>());
}

}  // extern "C"

#else
// ---- portable path (host build) --------------------------------------------------------------

extern "C" {

void npu_to_bf16(const float *x, npu_bf16 *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) y[i] = npu::bf16_from_f32(x[i]);
}

void npu_from_bf16(const npu_bf16 *x, float *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) y[i] = npu::bf16_to_f32(x[i]);
}

void npu_exp_lut(const float *x, float *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) y[i] = npu::exp_lut(x[i]);
}

}  // extern "C"

#endif
