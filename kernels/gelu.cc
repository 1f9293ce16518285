// GELU, x * Phi(x) with Phi tabulated (npu::gelu, docs/npu-numerics.md):
//   npu_gelu_bf16   y = bf16(gelu(x)) over n bf16 values (the standalone op; NPU_GELU_ELEMS)
//   npu_gelu_f32    y = gelu(x), fp32 in and out (the matmul epilogue's step, for the tests)

#include "npu_kernels.h"

#if NPU_AIE
// ---- AIE2 vector path: 16 lanes through npu::aie2::gelu (npu_aie.h); n % 16 == 0 ------------

#include "aie_kernel_utils.h"
#include "npu_aie.h"

extern "C" {

void npu_gelu_bf16(const npu_bf16 *x, npu_bf16 *y, int32_t n) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  event0();
  AIE_PREPARE_FOR_PIPELINING
  for (int32_t i = 0; i < n; i += 16) aie::store_v(y + i, narrow(gelu(aie::load_v<16>(x + i))));
  event1();
}

void npu_gelu_f32(const float *x, float *y, int32_t n) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  for (int32_t i = 0; i < n; i += 16)
    aie::store_v(y + i, gelu(narrow_f32(aie::load_v<16>(x + i))).template to_vector<float>());
}

}  // extern "C"

#else
// ---- portable path (host build) --------------------------------------------------------------

extern "C" {

void npu_gelu_bf16(const npu_bf16 *x, npu_bf16 *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) y[i] = npu::bf16_from_f32(npu::gelu(npu::bf16_to_f32(x[i])));
}

void npu_gelu_f32(const float *x, float *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) y[i] = npu::gelu(x[i]);
}

}  // extern "C"

#endif
