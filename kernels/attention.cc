// Flash attention for one query tile of one head, key/value tile by key/value tile, with the
// online softmax of docs/npu-numerics.md (fp32 state per query row: max m, sum l, P.V acc):
//   s = (q k^T) * scale;  m' = max(m, rowmax s);  alpha = exp(m - m');  p = bf16(exp(s - m'))
//   l = l * alpha + rowsum(p);  acc = acc * alpha + p v;  m = m'
//   finish: out = bf16(acc * (1 / l))
// p is rounded to bf16 because P.V runs on the bf16 MAC unit; l sums the rounded p. Only the
// first nk_valid keys of a tile enter (the sequence's last tile is ragged). The score matrix
// exists only as one NPU_ATTN_Q_ROWS x NPU_ATTN_KV_ROWS tile at a time.

#include "npu_kernels.h"

extern "C" void npu_attn_init(float *m, float *l, float *acc, int32_t mq, int32_t dh) {
  for (int32_t i = 0; i < mq; i++) {
    m[i] = npu::f32_from_bits(0xFF800000u);  // -inf: exp(m - m') = 0 on the first tile
    l[i] = 0.0f;
  }
  for (int32_t i = 0; i < mq * dh; i++) acc[i] = 0.0f;
}

#if NPU_AIE
// ---- AIE2 vector path ----------------------------------------------------------------------
// q and k arrive in 4x8 blocks (k's blocks are transposed in registers into the 8x4 B operand,
// as mlir-aie's mm_b_col_maj.cc does), v in 8x4 blocks, acc and out in 4x4 blocks. Scores are
// staged row-major in L1 (NPU_ATTN_Q_ROWS x NPU_ATTN_KV_ROWS fp32), P in 4x8 blocks (bf16).
// Per-row scalars (max, alpha, l, 1/l) run on the scalar unit in IEEE fp32 as the portable
// path; the elementwise exp and the rescaling use aie_fp32.h. The padding rows of a ragged
// tile's v must be finite (the host pads with zeros): their p is 0. Requires mq % 4 == 0,
// nk % 16 == 0, dh % 8 == 0.

#include "aie_fp32.h"
#include "aie_kernel_utils.h"
#include "npu_tiles.h"

using MMUL = aie::mmul<4, 8, 4, bfloat16, bfloat16, accfloat>;

namespace {
alignas(aie::vector_decl_align) float scores[NPU_ATTN_Q_ROWS * NPU_ATTN_KV_ROWS];
alignas(aie::vector_decl_align) bfloat16 probs[NPU_ATTN_Q_ROWS * NPU_ATTN_KV_ROWS];
alignas(aie::vector_decl_align) float alpha_row[NPU_ATTN_Q_ROWS];

// The 16 lanes of a row chunk starting at column c, lanes at or past `valid` set to `fill`.
npu::aie2::vf row_chunk(const float *row, int32_t c, int32_t valid, float fill) {
  npu::aie2::vf v = aie::load_v<16>(row + c);
  for (int32_t e = valid - c; e < 16; e++)
    if (e >= 0) v[e] = fill;
  return v;
}

// A 4x4 block's lanes take the scalar of their row: lane e belongs to row 4 * zb + e / 4.
npu::aie2::vf per_row(const float *rows, int32_t zb) {
  npu::aie2::vf v;
  for (int32_t e = 0; e < 16; e++) v[e] = rows[4 * zb + e / 4];
  return v;
}
}  // namespace

extern "C" void npu_attn_update(const npu_bf16 *q, const npu_bf16 *k, const npu_bf16 *v,
                                float *m, float *l, float *acc, int32_t mq, int32_t nk,
                                int32_t nk_valid, int32_t dh, float scale) {
  using namespace npu::aie2;
  if (nk_valid <= 0) return;
  aie::set_rounding(aie::rounding_mode::conv_even);
  event0();
  const int32_t db = dh / 8;
  // scores: one 4x4 block per (query block z, key block j), summed over dh on the MAC unit
  for (int32_t z = 0; z < mq / 4; z++)
    for (int32_t j = 0; j < nk / 4; j++) {
      MMUL S;
      for (int32_t d = 0; d < db; d++) {
        const auto q_block = aie::load_v<32>(q + (z * db + d) * 32);
        const auto kt_block = aie::transpose(aie::load_v<32>(k + (j * db + d) * 32), 4, 8);
        if (d == 0)
          S.mul(q_block, kt_block);
        else
          S.mac(q_block, kt_block);
      }
      const vf s = mul(S.template to_vector<float>(), splat(scale));
      for (int32_t r = 0; r < 4; r++)  // block row r is query row 4z + r, keys 4j .. 4j + 3
        aie::store_v(scores + (4 * z + r) * nk + 4 * j, s.template extract<4>(r));
    }
  // online softmax, row by row
  const float neg_inf = npu::f32_from_bits(0xFF800000u);
  for (int32_t i = 0; i < mq; i++) {
    float *row = scores + i * nk;
    vf mx = row_chunk(row, 0, nk_valid, neg_inf);
    for (int32_t c = 16; c < nk; c += 16) mx = aie::max(mx, row_chunk(row, c, nk_valid, neg_inf));
    const float m_new = npu::max_f32(m[i], aie::reduce_max(mx));
    alpha_row[i] = npu::exp_f32(m[i] - m_new);
    for (int32_t c = 0; c < nk; c += 16) {
      vb p = narrow(npu::aie2::exp(sub(row_chunk(row, c, nk_valid, neg_inf), splat(m_new))));
      for (int32_t h = 0; h < 2; h++)  // two groups of 8 columns: two 4x8 blocks of P
        aie::store_v(probs + ((i / 4) * (nk / 8) + (c + 8 * h) / 8) * 32 + (i % 4) * 8,
                     p.template extract<8>(h));
      aie::store_v(row + c, widen(p));  // the rounded p, summed below in the contract's order
    }
    l[i] = l[i] * alpha_row[i] + (0.0f + pairwise_sum(row, nk_valid));
    m[i] = m_new;
  }
  // acc = acc * alpha + P.V, one 4x4 output block at a time (P.V kept apart, then added)
  for (int32_t z = 0; z < mq / 4; z++) {
    const vf alpha = per_row(alpha_row, z);
    for (int32_t j = 0; j < dh / 4; j++) {
      MMUL PV;
      for (int32_t kk = 0; kk < nk / 8; kk++) {
        const auto p_block = aie::load_v<32>(probs + (z * (nk / 8) + kk) * 32);
        const auto v_block = aie::load_v<32>(v + (kk * (dh / 4) + j) * 32);
        if (kk == 0)
          PV.mul(p_block, v_block);
        else
          PV.mac(p_block, v_block);
      }
      float *block = acc + (z * (dh / 4) + j) * 16;
      aie::store_v(block, add(mul(aie::load_v<16>(block), alpha), PV.template to_vector<float>()));
    }
  }
  event1();
}

extern "C" void npu_attn_finish(const float *l, const float *acc, npu_bf16 *out, int32_t mq,
                                int32_t dh) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  float inv_l[NPU_ATTN_Q_ROWS];
  for (int32_t i = 0; i < mq; i++) inv_l[i] = 1.0f / l[i];
  for (int32_t z = 0; z < mq / 4; z++) {
    const vf scale = per_row(inv_l, z);
    for (int32_t j = 0; j < dh / 4; j++) {
      const int32_t at = (z * (dh / 4) + j) * 16;
      aie::store_v(out + at, narrow(mul(aie::load_v<16>(acc + at), scale)));
    }
  }
}

#else
// ---- portable path (host build): row-major q[mq][dh], k[nk][dh], v[nk][dh], acc[mq][dh] ------

#include <vector>

extern "C" void npu_attn_update(const npu_bf16 *q, const npu_bf16 *k, const npu_bf16 *v,
                                float *m, float *l, float *acc, int32_t mq, int32_t nk,
                                int32_t nk_valid, int32_t dh, float scale) {
  (void)nk;  // rows of the k/v buffers; only the first nk_valid are keys
  if (nk_valid <= 0) return;
  std::vector<float> s(nk_valid), p(nk_valid);
  for (int32_t i = 0; i < mq; i++) {
    for (int32_t j = 0; j < nk_valid; j++) {
      float dot = 0.0f;
      for (int32_t d = 0; d < dh; d++)
        dot += npu::bf16_to_f32(q[i * dh + d]) * npu::bf16_to_f32(k[j * dh + d]);  // exact product
      s[j] = dot * scale;
    }
    float row_max = s[0];
    for (int32_t j = 1; j < nk_valid; j++) row_max = npu::max_f32(row_max, s[j]);
    const float m_new = npu::max_f32(m[i], row_max);
    const float alpha = npu::exp_f32(m[i] - m_new);
    for (int32_t j = 0; j < nk_valid; j++) p[j] = npu::round_bf16(npu::exp_f32(s[j] - m_new));
    l[i] = l[i] * alpha + npu::row_sum([&p](int32_t j) { return p[j]; }, nk_valid);
    for (int32_t d = 0; d < dh; d++) {
      float pv = 0.0f;
      for (int32_t j = 0; j < nk_valid; j++) pv += p[j] * npu::bf16_to_f32(v[j * dh + d]);
      acc[i * dh + d] = acc[i * dh + d] * alpha + pv;
    }
    m[i] = m_new;
  }
}

extern "C" void npu_attn_finish(const float *l, const float *acc, npu_bf16 *out, int32_t mq,
                                int32_t dh) {
  for (int32_t i = 0; i < mq; i++) {
    const float inv_l = 1.0f / l[i];
    for (int32_t d = 0; d < dh; d++) out[i * dh + d] = npu::bf16_from_f32(acc[i * dh + d] * inv_l);
  }
}

#endif
