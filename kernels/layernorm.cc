// LayerNorm over rows of d bf16 values with fp32 gamma/beta, as docs/npu-numerics.md:
//   mean = sum(x) / d;  c = x - mean;  var = sum(c * c) / d;  rstd = 1 / sqrt(var + eps)
//   y = bf16((c * rstd) * gamma + beta)
// Two passes over the row (it is in L1 anyway), sums in the contract's pairwise order
// (npu::pairwise_sum), the per-row scalars in IEEE fp32. A constant row gives var = 0 and
// rstd = 1/sqrt(eps): y = beta exactly. NPU_LAYERNORM_ROWS rows per call (npu/ops/tiles.py).

#include "npu_kernels.h"

#if NPU_AIE
// ---- AIE2 vector path ----------------------------------------------------------------------
// Elementwise steps on 16 lanes (aie_fp32.h); the row's fp32 values (x, then c*c) are staged in
// a row buffer so that the sums read them in the contract's order, 8 lanes at a time. The
// per-row scalars (mean, var, rstd) run on the scalar unit, IEEE like the portable path
// (npu::sqrt_f32 is integer-only and correctly rounded). Requires d % 16 == 0 (every Whisper d_model).
// The row buffer holds up to 1280 values (Whisper large's d_model): 5 KiB of L1 beyond the
// double-buffered rows and gamma/beta that tiles.l1_footprints counts.

#include "aie_fp32.h"
#include "aie_kernel_utils.h"

namespace {
constexpr int32_t kMaxD = 1280;
alignas(aie::vector_decl_align) float row_buf[kMaxD];
}  // namespace

extern "C" void npu_layernorm(const npu_bf16 *x, const float *gamma, const float *beta,
                              npu_bf16 *y, int32_t rows, int32_t d, float eps) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  event0();
  for (int32_t r = 0; r < rows; r++) {
    const bfloat16 *xr = x + r * d;
    for (int32_t i = 0; i < d; i += 16) aie::store_v(row_buf + i, widen(aie::load_v<16>(xr + i)));
    const float mean = (0.0f + pairwise_sum(row_buf, d)) / float(d);
    const vf mean_v = splat(mean);
    for (int32_t i = 0; i < d; i += 16) {
      vf c = sub(widen(aie::load_v<16>(xr + i)), mean_v);
      aie::store_v(row_buf + i, mul(c, c));
    }
    const float var = (0.0f + pairwise_sum(row_buf, d)) / float(d);
    const vf rstd = splat(1.0f / npu::sqrt_f32(var + eps));
    bfloat16 *yr = y + r * d;
    AIE_PREPARE_FOR_PIPELINING
    for (int32_t i = 0; i < d; i += 16) {
      vf c = sub(widen(aie::load_v<16>(xr + i)), mean_v);
      vf out = add(mul(mul(c, rstd), aie::load_v<16>(gamma + i)), aie::load_v<16>(beta + i));
      aie::store_v(yr + i, narrow(out));
    }
  }
  event1();
}

#else
// ---- portable path (host build) --------------------------------------------------------------

extern "C" void npu_layernorm(const npu_bf16 *x, const float *gamma, const float *beta,
                              npu_bf16 *y, int32_t rows, int32_t d, float eps) {
  for (int32_t r = 0; r < rows; r++) {
    const npu_bf16 *xr = x + r * d;
    auto value = [xr](int32_t i) { return npu::bf16_to_f32(xr[i]); };
    const float mean = npu::row_sum(value, d) / float(d);
    auto square = [&](int32_t i) {
      const float c = value(i) - mean;
      return c * c;
    };
    const float var = npu::row_sum(square, d) / float(d);
    const float rstd = 1.0f / npu::sqrt_f32(var + eps);
    for (int32_t i = 0; i < d; i++)
      y[r * d + i] = npu::bf16_from_f32(((value(i) - mean) * rstd) * gamma[i] + beta[i]);
  }
}

#endif
