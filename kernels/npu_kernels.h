// The kernels' C entry points: the same names and arguments in the AIE build (vector path,
// called from the IRON design's Workers) and in the host build (portable path, called from
// tests/tools/host_kernels.py through ctypes). docs/npu-numerics.md is the numeric contract.
//
// Types: bf16 tensors are 16-bit bf16 bit patterns (`bfloat16` on the AIE, `uint16_t` on the
// host: the same bytes); biases, gamma/beta and all running state are fp32.
//
// Layouts: the portable path takes row-major tiles. The AIE vector path takes the tiles as the
// mem-tile DMA delivers them to L1 for aie::mmul (as mlir-aie's matmul designs do): A operands
// in 4x8 blocks, B operands in 8x4 blocks, fp32/bf16 results in 4x4 blocks, each block
// row-major and blocks in row-major order. LayerNorm and GELU buffers are row-major on both.
//
// Sizes are arguments on both builds. The AIE build's static working buffers (attention scores
// and P) are sized by the constants of `python -m npustream.npu.ops.tiles` (npu_tiles.h).
#pragma once

#include <cstdint>

#include "npu_numerics.h"

#if NPU_AIE
#include <aie_api/aie.hpp>
using npu_bf16 = bfloat16;
#else
using npu_bf16 = uint16_t;
#endif

extern "C" {

// --- building blocks (numerics.cc): bf16 storage conversion, the kernels' table exp -------------
void npu_to_bf16(const float *x, npu_bf16 *y, int32_t n);
void npu_from_bf16(const npu_bf16 *x, float *y, int32_t n);
void npu_exp_lut(const float *x, float *y, int32_t n);

// --- matmul tile (matmul.cc): out = bf16(residual + gelu(acc + bias)), acc = sum_k a b ---------
// acc[m][n] = 0
void npu_matmul_zero(float *acc, int32_t m, int32_t n);
// acc[m][n] += a[m][k] . b[k][n], fp32 accumulation; called once per K tile, in K order.
void npu_matmul_acc(const npu_bf16 *a, const npu_bf16 *b, float *acc, int32_t m, int32_t k,
                    int32_t n);
// out = bf16 of: acc (+ bias[n] if bias) (GELU if gelu) (+ residual[m][n] if residual).
// bias / residual may be null (no add: adding 0 would turn -0 into +0).
void npu_matmul_out(const float *acc, const float *bias, const npu_bf16 *residual, int32_t gelu,
                    npu_bf16 *out, int32_t m, int32_t n);

// --- LayerNorm (layernorm.cc) over `rows` rows of d values --------------------------------------
void npu_layernorm(const npu_bf16 *x, const float *gamma, const float *beta, npu_bf16 *y,
                   int32_t rows, int32_t d, float eps);

// --- GELU (gelu.cc) ------------------------------------------------------------------------------
// y = bf16(gelu(x)) for n bf16 values (the standalone GELU op)
void npu_gelu_bf16(const npu_bf16 *x, npu_bf16 *y, int32_t n);
// y = gelu(x) in fp32 (the epilogue's GELU; the host tests compare it with numerics.gelu)
void npu_gelu_f32(const float *x, float *y, int32_t n);

// --- flash attention for one query tile of one head (attention.cc) ------------------------------
// State per query row: running max m[mq], running sum l[mq], running P.V acc[mq][dh] (fp32).
void npu_attn_init(float *m, float *l, float *acc, int32_t mq, int32_t dh);
// Fold keys/values k[nk][dh], v[nk][dh] into the state; only the first nk_valid rows are
// keys (the last tile of a sequence is ragged); scale multiplies the fp32 scores.
void npu_attn_update(const npu_bf16 *q, const npu_bf16 *k, const npu_bf16 *v, float *m, float *l,
                     float *acc, int32_t mq, int32_t nk, int32_t nk_valid, int32_t dh,
                     float scale);
// out[mq][dh] = bf16(acc * (1 / l))
void npu_attn_finish(const float *l, const float *acc, npu_bf16 *out, int32_t mq, int32_t dh);

}  // extern "C"
