// LayerNorm over rows of d bf16 values with fp32 gamma/beta, as docs/npu-numerics.md:
//   mean = lane_sum(x) / d;  c = x - mean;  var = lane_sum(bf16(c)^2) / d;  rstd = rsqrt(var + eps)
//   y = bf16(beta + bf16(bf16(c) * bf16(rstd)) * bf16(gamma))
// Two passes over the row (it is in L1 anyway), sums in the vector unit's lane order
// (npu::lane_sum), rsqrt by the 0x5f3759df estimate and one Newton step (npu::rsqrt), the
// per-row scalars in IEEE fp32. NPU_LAYERNORM_ROWS rows per call (npu/ops/tiles.py).

#include "npu_kernels.h"

#if NPU_AIE
// ---- AIE2 vector path: 16 lanes; requires d % 16 == 0 (every Whisper d_model) ----------------

#include "aie_kernel_utils.h"
#include "npu_aie.h"

extern "C" void npu_layernorm(const npu_bf16 *x, const float *gamma, const float *beta,
                              npu_bf16 *y, int32_t rows, int32_t d, float eps) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  event0();
  for (int32_t r = 0; r < rows; r++) {
    const bfloat16 *xr = x + r * d;
    af sum = widen(aie::load_v<16>(xr));
    AIE_PREPARE_FOR_PIPELINING
    for (int32_t i = 16; i < d; i += 16) sum = aie::add(sum, widen(aie::load_v<16>(xr + i)));
    const float mean = fold(sum) / float(d);
    af mean_v;
    mean_v.from_vector(aie::broadcast<float, 16>(mean));
    vb c = narrow(aie::sub(widen(aie::load_v<16>(xr)), mean_v));
    af squares = aie::mul(c, c);
    AIE_PREPARE_FOR_PIPELINING
    for (int32_t i = 16; i < d; i += 16) {
      c = narrow(aie::sub(widen(aie::load_v<16>(xr + i)), mean_v));
      squares = aie::mac(squares, c, c);
    }
    const float var = fold(squares) / float(d);
    const vb rstd = aie::broadcast<bfloat16, 16>(bfloat16(npu::round_bf16(npu::rsqrt(var + eps))));
    bfloat16 *yr = y + r * d;
    AIE_PREPARE_FOR_PIPELINING
    for (int32_t i = 0; i < d; i += 16) {
      c = narrow(aie::sub(widen(aie::load_v<16>(xr + i)), mean_v));
      af out;
      out.from_vector(aie::load_v<16>(beta + i));
      out = aie::mac(out, narrow(aie::mul(c, rstd)), narrow_f32(aie::load_v<16>(gamma + i)));
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
    const float mean = npu::lane_sum(value, d) / float(d);
    auto centred = [&](int32_t i) { return npu::round_bf16(value(i) - mean); };
    const float var = npu::lane_sum([&](int32_t i) { return centred(i) * centred(i); }, d) / float(d);
    const float rstd = npu::round_bf16(npu::rsqrt(var + eps));
    for (int32_t i = 0; i < d; i++) {
      const float n = npu::round_bf16(centred(i) * rstd);
      y[r * d + i] = npu::bf16_from_f32(beta[i] + n * npu::round_bf16(gamma[i]));
    }
  }
}

#endif
