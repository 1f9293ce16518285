// Flash attention for one query tile of one head, key/value tile by key/value tile, with the
// online softmax of docs/npu-numerics.md (fp32 state per query row: max m, sum l, P.V acc):
//   s = (q k^T) * scale;  m' = max(m, rowmax s);  alpha = bf16(exp(m - m'));  p = bf16(exp(s - m'))
//   l = l * alpha + lane_sum(p);  acc = mul_split(acc, alpha) + p v;  m = m'
//   finish: out = bf16(mul_split(acc, bf16(1 / l)))
// exp is the table exp (npu::exp_lut: its input rounded to bf16); scale must be a power of two
// (d_head^-0.5 = 1/8 in every Whisper). Only the first nk_valid keys of a tile enter (the
// sequence's last tile is ragged). The score matrix exists only as one tile at a time.

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
// q arrives in 4x8 blocks, k in 4x8 blocks, v in 8x4 blocks, acc and out in 4x4 blocks. k's
// blocks are transposed once per call into k^T's 8x4 blocks (the B operand of q k^T), outside
// the MAC loops; both matmuls run 2 x 2 output blocks per inner iteration (as aie2 mm.cc).
// Scores are staged row-major in L1 (fp32), P in 4x8 blocks (bf16). The scale is applied to
// bf16(S - M), which is bf16(s - m') for a power-of-two scale. Padding keys (at or past
// nk_valid) get score -inf: p = 0. Requires mq % 8 == 0, nk % 16 == 0, dh % 8 == 0,
// dh <= kMaxDh.

#include "aie_kernel_utils.h"
#include "npu_aie.h"
#include "npu_tiles.h"

using MMUL = aie::mmul<4, 8, 4, bfloat16, bfloat16, accfloat>;

namespace {
constexpr int32_t kMaxDh = 64;  // d_head of every Whisper model
alignas(aie::vector_decl_align) float scores[NPU_ATTN_Q_ROWS * NPU_ATTN_KV_ROWS];
alignas(aie::vector_decl_align) bfloat16 probs[NPU_ATTN_Q_ROWS * NPU_ATTN_KV_ROWS];
alignas(aie::vector_decl_align) bfloat16 keys_t[NPU_ATTN_KV_ROWS * kMaxDh];
alignas(aie::vector_decl_align) bfloat16 alpha_row[NPU_ATTN_Q_ROWS];

// A 4x4 block's lanes take their row's bf16 scalar: lane e belongs to row 4 * zb + e / 4.
npu::aie2::vb per_row(const bfloat16 *rows, int32_t zb) {
  npu::aie2::vb v;
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
  const int32_t db = dh / 8, kb = nk / 4;
  // k^T in 8x4 blocks: block (d, j) of k^T is the transpose of k's 4x8 block (j, d)
  for (int32_t j = 0; j < kb; j++)
    for (int32_t d = 0; d < db; d++)
      aie::store_v(keys_t + (d * kb + j) * 32, aie::transpose(aie::load_v<32>(k + (j * db + d) * 32), 4, 8));
  // S = q k^T, 2 x 2 blocks of 4 query rows x 4 keys per inner iteration over dh
  for (int32_t z = 0; z < mq / 4; z += 2)
    AIE_PREPARE_FOR_PIPELINING
    for (int32_t j = 0; j < kb; j += 2) {
      MMUL S00, S01, S10, S11;
      S00.mul(aie::load_v<32>(q + (z * db) * 32), aie::load_v<32>(keys_t + j * 32));
      S01.mul(aie::load_v<32>(q + (z * db) * 32), aie::load_v<32>(keys_t + (j + 1) * 32));
      S10.mul(aie::load_v<32>(q + ((z + 1) * db) * 32), aie::load_v<32>(keys_t + j * 32));
      S11.mul(aie::load_v<32>(q + ((z + 1) * db) * 32), aie::load_v<32>(keys_t + (j + 1) * 32));
      AIE_PREPARE_FOR_PIPELINING
      for (int32_t d = 1; d < db; d++) {
        const auto A0 = aie::load_v<32>(q + (z * db + d) * 32);
        const auto A1 = aie::load_v<32>(q + ((z + 1) * db + d) * 32);
        const auto B0 = aie::load_v<32>(keys_t + (d * kb + j) * 32);
        const auto B1 = aie::load_v<32>(keys_t + (d * kb + j + 1) * 32);
        S00.mac(A0, B0);
        S01.mac(A0, B1);
        S10.mac(A1, B0);
        S11.mac(A1, B1);
      }
      const vf s00 = S00.template to_vector<float>(), s01 = S01.template to_vector<float>();
      const vf s10 = S10.template to_vector<float>(), s11 = S11.template to_vector<float>();
      for (int32_t r = 0; r < 4; r++) {  // block row r: query rows 4z + r and 4z + 4 + r
        aie::store_v(scores + (4 * z + r) * nk + 4 * j, s00.template extract<4>(r));
        aie::store_v(scores + (4 * z + r) * nk + 4 * j + 4, s01.template extract<4>(r));
        aie::store_v(scores + (4 * z + 4 + r) * nk + 4 * j, s10.template extract<4>(r));
        aie::store_v(scores + (4 * z + 4 + r) * nk + 4 * j + 4, s11.template extract<4>(r));
      }
    }
  // online softmax, row by row (scores in units of S: the scale is a power of two)
  const vf neg_inf = aie::broadcast<float, 16>(npu::f32_from_bits(0xFF800000u));
  const vb scale_v = aie::broadcast<bfloat16, 16>(bfloat16(scale));
  for (int32_t i = 0; i < mq; i++) {
    float *row = scores + i * nk;
    for (int32_t c = 0; c < nk; c += 16) {  // padding keys: -inf
      const auto lane = aie::add(aie::broadcast<int32, 16>(c), aie::iota<int32, 16>());
      aie::store_v(row + c, aie::select(aie::load_v<16>(row + c), neg_inf, aie::ge(lane, nk_valid)));
    }
    vf mx = aie::load_v<16>(row);
    for (int32_t c = 16; c < nk; c += 16) mx = aie::max(mx, aie::load_v<16>(row + c));
    const float m_new = npu::max_f32(m[i], aie::reduce_max(mx) * scale);
    const float alpha = npu::round_bf16(npu::exp_lut(m[i] - m_new));
    alpha_row[i] = bfloat16(alpha);
    af mx_v;
    mx_v.from_vector(aie::broadcast<float, 16>(m_new / scale));
    af row_sum = aie::zeros<accfloat, 16>();
    for (int32_t c = 0; c < nk; c += 16) {
      af x;
      x.from_vector(aie::load_v<16>(row + c));
      const vb p = narrow(exp_lut(narrow(aie::mul(narrow(aie::sub(x, mx_v)), scale_v))));
      for (int32_t h = 0; h < 2; h++)  // two groups of 8 columns: two 4x8 blocks of P
        aie::store_v(probs + ((i / 4) * (nk / 8) + (c + 8 * h) / 8) * 32 + (i % 4) * 8,
                     p.template extract<8>(h));
      row_sum = aie::add(row_sum, widen(p));
    }
    l[i] = l[i] * alpha + fold(row_sum);
    m[i] = m_new;
  }
  // acc = mul_split(acc, alpha) + P.V, 2 x 2 blocks of 4 query rows x 4 of dh per inner iteration
  for (int32_t z = 0; z < mq / 4; z += 2) {
    const vb alpha0 = per_row(alpha_row, z), alpha1 = per_row(alpha_row, z + 1);
    AIE_PREPARE_FOR_PIPELINING
    for (int32_t j = 0; j < dh / 4; j += 2) {
      MMUL P00, P01, P10, P11;
      P00.mul(aie::load_v<32>(probs + (z * (nk / 8)) * 32), aie::load_v<32>(v + j * 32));
      P01.mul(aie::load_v<32>(probs + (z * (nk / 8)) * 32), aie::load_v<32>(v + (j + 1) * 32));
      P10.mul(aie::load_v<32>(probs + ((z + 1) * (nk / 8)) * 32), aie::load_v<32>(v + j * 32));
      P11.mul(aie::load_v<32>(probs + ((z + 1) * (nk / 8)) * 32), aie::load_v<32>(v + (j + 1) * 32));
      AIE_PREPARE_FOR_PIPELINING
      for (int32_t kk = 1; kk < nk / 8; kk++) {
        const auto A0 = aie::load_v<32>(probs + (z * (nk / 8) + kk) * 32);
        const auto A1 = aie::load_v<32>(probs + ((z + 1) * (nk / 8) + kk) * 32);
        const auto B0 = aie::load_v<32>(v + (kk * (dh / 4) + j) * 32);
        const auto B1 = aie::load_v<32>(v + (kk * (dh / 4) + j + 1) * 32);
        P00.mac(A0, B0);
        P01.mac(A0, B1);
        P10.mac(A1, B0);
        P11.mac(A1, B1);
      }
      float *b00 = acc + (z * (dh / 4) + j) * 16, *b01 = b00 + 16;
      float *b10 = acc + ((z + 1) * (dh / 4) + j) * 16, *b11 = b10 + 16;
      af a00, a01, a10, a11;
      a00.from_vector(aie::load_v<16>(b00));
      a01.from_vector(aie::load_v<16>(b01));
      a10.from_vector(aie::load_v<16>(b10));
      a11.from_vector(aie::load_v<16>(b11));
      aie::store_v(b00, aie::add(mul_split(a00, alpha0), P00.template to_vector<float>()).template to_vector<float>());
      aie::store_v(b01, aie::add(mul_split(a01, alpha0), P01.template to_vector<float>()).template to_vector<float>());
      aie::store_v(b10, aie::add(mul_split(a10, alpha1), P10.template to_vector<float>()).template to_vector<float>());
      aie::store_v(b11, aie::add(mul_split(a11, alpha1), P11.template to_vector<float>()).template to_vector<float>());
    }
  }
  event1();
}

extern "C" void npu_attn_finish(const float *l, const float *acc, npu_bf16 *out, int32_t mq,
                                int32_t dh) {
  using namespace npu::aie2;
  aie::set_rounding(aie::rounding_mode::conv_even);
  for (int32_t i = 0; i < mq; i++) alpha_row[i] = bfloat16(npu::round_bf16(1.0f / l[i]));  // 1/l, bf16
  for (int32_t z = 0; z < mq / 4; z++) {
    const vb inv_l = per_row(alpha_row, z);
    for (int32_t j = 0; j < dh / 4; j++) {
      const int32_t at = (z * (dh / 4) + j) * 16;
      af block;
      block.from_vector(aie::load_v<16>(acc + at));
      aie::store_v(out + at, narrow(mul_split(block, inv_l)));
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
    const float alpha = npu::round_bf16(npu::exp_lut(m[i] - m_new));
    for (int32_t j = 0; j < nk_valid; j++) p[j] = npu::round_bf16(npu::exp_lut(s[j] - m_new));
    l[i] = l[i] * alpha + npu::lane_sum([&p](int32_t j) { return p[j]; }, nk_valid);
    for (int32_t d = 0; d < dh; d++) {
      float pv = 0.0f;
      for (int32_t j = 0; j < nk_valid; j++) pv += p[j] * npu::bf16_to_f32(v[j * dh + d]);
      acc[i * dh + d] = npu::mul_split(acc[i * dh + d], alpha) + pv;
    }
    m[i] = m_new;
  }
}

extern "C" void npu_attn_finish(const float *l, const float *acc, npu_bf16 *out, int32_t mq,
                                int32_t dh) {
  for (int32_t i = 0; i < mq; i++) {
    const float inv_l = npu::round_bf16(1.0f / l[i]);
    for (int32_t d = 0; d < dh; d++) out[i * dh + d] = npu::bf16_from_f32(npu::mul_split(acc[i * dh + d], inv_l));
  }
}

#endif
