// bf16 matmul tile with fp32 accumulation and the fused epilogue of docs/npu-numerics.md:
//   npu_matmul_zero   acc = 0                                      (once per output tile)
//   npu_matmul_acc    acc += a . b                                  (once per K tile, in order)
//   npu_matmul_out    out = bf16(acc [+ bias] [-> GELU] [+ residual])   (once per output tile)
// The accumulator stays fp32 in L1 across the K loop; the output is rounded once (the GELU
// rounds its input to bf16: numerics.gelu). Tile sizes: NPU_MATMUL_M x K x N (npustream/npu/ops/tiles.py).

#include "npu_kernels.h"

#if NPU_AIE
// ---- AIE2 vector path ----------------------------------------------------------------------
// aie::mmul<4, 8, 4> bf16 x bf16 -> accfloat, 2 x 2 output blocks per inner iteration so that
// each A and B block loaded feeds two MACs (mlir-aie / amd IRON aie2 mm.cc). Operands arrive
// blocked by the DMA (npu_kernels.h): a in 4x8 blocks, b in 8x4 blocks, acc and the epilogue's
// residual/out in 4x4 blocks. Requires m % 8 == 0, k % 8 == 0, n % 8 == 0. Within one 4x8x4 MAC
// the hardware sums 8 exact products in its own order; the portable path sums sequentially.

#include "aie_kernel_utils.h"
#include "npu_aie.h"

using MMUL = aie::mmul<4, 8, 4, bfloat16, bfloat16, accfloat>;

extern "C" {

void npu_matmul_zero(float *acc, int32_t m, int32_t n) {
  const aie::vector<float, 16> zeros = aie::zeros<float, 16>();
  for (int32_t i = 0; i < m * n; i += 16) aie::store_v(acc + i, zeros);
}

void npu_matmul_acc(const npu_bf16 *a, const npu_bf16 *b, float *acc, int32_t m, int32_t k,
                    int32_t n) {
  aie::set_rounding(aie::rounding_mode::conv_even);
  event0();
  const int32_t kb = k / 8, cb = n / 4;  // block counts
  AIE_LOOP_MIN_ITERATION_COUNT(2)
  for (int32_t z = 0; z < m / 4; z += 2) {
    float *__restrict c0 = acc + (z * cb) * MMUL::size_C;
    float *__restrict c1 = acc + ((z + 1) * cb) * MMUL::size_C;
    AIE_PREPARE_FOR_PIPELINING
    AIE_LOOP_MIN_ITERATION_COUNT(2)
    for (int32_t j = 0; j < cb; j += 2) {
      const bfloat16 *__restrict a0 = a + (z * kb) * MMUL::size_A;
      const bfloat16 *__restrict a1 = a + ((z + 1) * kb) * MMUL::size_A;
      const bfloat16 *__restrict b0 = b + j * MMUL::size_B;
      const bfloat16 *__restrict b1 = b + (j + 1) * MMUL::size_B;
      MMUL C00(aie::load_v<MMUL::size_C>(c0));
      MMUL C01(aie::load_v<MMUL::size_C>(c0 + MMUL::size_C));
      MMUL C10(aie::load_v<MMUL::size_C>(c1));
      MMUL C11(aie::load_v<MMUL::size_C>(c1 + MMUL::size_C));
      AIE_PREPARE_FOR_PIPELINING
      AIE_LOOP_MIN_ITERATION_COUNT(1)
      for (int32_t i = 0; i < kb; i++) {
        const auto A0 = aie::load_v<MMUL::size_A>(a0);
        const auto A1 = aie::load_v<MMUL::size_A>(a1);
        const auto B0 = aie::load_v<MMUL::size_B>(b0);
        const auto B1 = aie::load_v<MMUL::size_B>(b1);
        a0 += MMUL::size_A;
        a1 += MMUL::size_A;
        b0 += MMUL::size_B * cb;
        b1 += MMUL::size_B * cb;
        C00.mac(A0, B0);
        C01.mac(A0, B1);
        C10.mac(A1, B0);
        C11.mac(A1, B1);
      }
      aie::store_v(c0, C00.template to_vector<float>());
      aie::store_v(c0 + MMUL::size_C, C01.template to_vector<float>());
      aie::store_v(c1, C10.template to_vector<float>());
      aie::store_v(c1 + MMUL::size_C, C11.template to_vector<float>());
      c0 += 2 * MMUL::size_C;
      c1 += 2 * MMUL::size_C;
    }
  }
  event1();
}

void npu_matmul_out(const float *acc, const float *bias, const npu_bf16 *residual, int32_t gelu,
                    npu_bf16 *out, int32_t m, int32_t n) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  event0();
  const int32_t cb = n / 4;
  for (int32_t jb = 0; jb < cb; jb++) {
    // A 4x4 block holds columns 4jb..4jb+3 in each of its 4 rows: bias repeats every 4 lanes.
    vf bias_block = aie::zeros<float, 16>();
    if (bias)
      for (int32_t e = 0; e < 16; e++) bias_block[e] = bias[4 * jb + e % 4];
    AIE_PREPARE_FOR_PIPELINING
    for (int32_t ib = 0; ib < m / 4; ib++) {
      const int32_t at = (ib * cb + jb) * 16;
      af x;
      x.from_vector(aie::load_v<16>(acc + at));
      if (bias) x = aie::add(x, bias_block);
      if (gelu) x = npu::aie2::gelu(narrow(x));
      if (residual) x = aie::add(x, widen(aie::load_v<16>(residual + at)));
      aie::store_v(out + at, narrow(x));
    }
  }
  event1();
}

}  // extern "C"

#else
// ---- portable path (host build): row-major tiles, sequential sums over k --------------------

extern "C" {

void npu_matmul_zero(float *acc, int32_t m, int32_t n) {
  for (int32_t i = 0; i < m * n; i++) acc[i] = 0.0f;
}

void npu_matmul_acc(const npu_bf16 *a, const npu_bf16 *b, float *acc, int32_t m, int32_t k,
                    int32_t n) {
  // i-k-j loop order: each acc[i][j] still receives its products in k order.
  for (int32_t i = 0; i < m; i++) {
    float *row = acc + i * n;
    for (int32_t kk = 0; kk < k; kk++) {
      const float aik = npu::bf16_to_f32(a[i * k + kk]);
      const npu_bf16 *brow = b + kk * n;
      for (int32_t j = 0; j < n; j++) row[j] += aik * npu::bf16_to_f32(brow[j]);  // exact product
    }
  }
}

void npu_matmul_out(const float *acc, const float *bias, const npu_bf16 *residual, int32_t gelu,
                    npu_bf16 *out, int32_t m, int32_t n) {
  for (int32_t i = 0; i < m; i++)
    for (int32_t j = 0; j < n; j++) {
      float x = acc[i * n + j];
      if (bias) x += bias[j];
      if (gelu) x = npu::gelu(x);
      if (residual) x += npu::bf16_to_f32(residual[i * n + j]);
      out[i * n + j] = npu::bf16_from_f32(x);
    }
}

}  // extern "C"

#endif
