"""Load-time host folds: CTranslate2's encoder weights -> the constant buffers of the IRON graph.

The stock operators have no bias input, no LayerNorm gain or shift (gamma = 1, beta = 0 are
compiled into the kernel) and no attention scale, so the host rewrites the weights once, in
float64, before rounding each constant to bf16 once (as the unfolded weights would be):

  LayerNorm into the next GEMM   LN(x) = n(x) * g + beta, n the unit LayerNorm the kernel computes.
                                 LN(x) W^T + b = n(x) (W diag(g))^T + (W beta + b)
  attention scale into W_q       softmax(q k^T / sqrt(dh)): W_q and b_q (after the fold above) are
                                 divided by sqrt(64) = 8, a power of two: exact in bf16
  key bias dropped               q.(k + c) = q.k + q.c adds the same amount to every score of a query
                                 row; softmax is invariant to that, so c (Whisper has no key bias,
                                 but the beta fold gives one, W_k beta) is left out exactly
  value bias into the out bias   P (V + 1 c^T) = P V + 1 c^T because each row of P sums to 1, so
                                 c = b_v (with its beta fold) moves to b_o' = b_o + W_o c
  biases as buffers              an Add operator adds a [rows, n] buffer: the bias is broadcast
                                 over the rows once at load time (over columns for Q^T)
  final LayerNorm affine         no GEMM follows: the host applies * g + beta in float32

The folds are exact in real arithmetic; the float32 check (tests) runs the folded graph without
roundings against the unfolded reference encoder.
"""

from __future__ import annotations

import numpy as np

from npustream.model import ct2_reader
from npustream.model.dims import WhisperDims
from npustream.npu.iron.graph import CONV1_K, padded_positions


def conv_matrix(weight: np.ndarray, rows: int | None = None) -> np.ndarray:
    """conv weight [C_out, C_in, 3] -> im2col GEMM operand [3*C_in (zero-padded to rows), C_out];
    row tap*C_in + channel, matching the im2col rows (frame-major, then channel)."""
    c_out, c_in, taps = weight.shape
    m = np.asarray(weight, np.float64).transpose(2, 1, 0).reshape(taps * c_in, c_out)
    if rows is not None:
        m = np.vstack([m, np.zeros((rows - m.shape[0], c_out))])
    return m


def fold_layer(w: dict[str, np.ndarray], i: int, d: int, heads: int, t: int) -> dict[str, np.ndarray]:
    """One encoder layer's constant buffers (float64, unrounded), graph names without the prefix."""
    p = f"encoder/layer_{i}/"

    def f64(name: str) -> np.ndarray:
        return np.asarray(w[p + name], np.float64)

    g1, beta1 = f64("self_attention/layer_norm/gamma"), f64("self_attention/layer_norm/beta")
    w_qkv, b_qkv = f64("self_attention/linear_0/weight"), f64("self_attention/linear_0/bias")
    w_qkv_f = w_qkv * g1[None, :]  # W diag(g)
    b_qkv_f = b_qkv + w_qkv @ beta1  # b + W beta
    scale = (d // heads) ** -0.5
    w_qkv_f[:d] *= scale
    b_q = b_qkv_f[:d] * scale
    b_v = b_qkv_f[2 * d :]  # b_qkv_f[d:2d], the key bias, is dropped (softmax shift invariance)
    w_o, b_o = f64("self_attention/linear_1/weight"), f64("self_attention/linear_1/bias")
    g2, beta2 = f64("ffn/layer_norm/gamma"), f64("ffn/layer_norm/beta")
    w1, b1 = f64("ffn/linear_0/weight"), f64("ffn/linear_0/bias")
    w2, b2 = f64("ffn/linear_1/weight"), f64("ffn/linear_1/bias")
    return {
        "w.qkv": w_qkv_f.T,  # [d, 3d]: B of X @ B
        "b.q": np.repeat(b_q[:, None], t, axis=1),  # [d, t]: added to Q^T
        "w.out": w_o,  # [d_out, d_in]: A of W_o @ O^T
        "b.out": np.repeat((b_o + w_o @ b_v)[None, :], t, axis=0),
        "w.fc1": (w1 * g2[None, :]).T,
        "b.fc1": np.repeat((b1 + w1 @ beta2)[None, :], t, axis=0),
        "w.fc2": w2.T,
        "b.fc2": np.repeat(b2[None, :], t, axis=0),
    }


def constants(w: dict[str, np.ndarray], dims: WhisperDims) -> dict[str, np.ndarray]:
    """All constant buffers of encoder_graph(dims), float32 (the machine rounds them to bf16)."""
    d, n_ctx = dims.n_audio_state, dims.n_audio_ctx
    t = padded_positions(n_ctx)
    positions = np.zeros((t, d))
    positions[:n_ctx] = w["encoder/position_encodings/encodings"][:n_ctx]
    out = {
        "w.conv1": conv_matrix(w["encoder/conv1/weight"], CONV1_K),
        "b.conv1": np.repeat(np.asarray(w["encoder/conv1/bias"], np.float64)[None, :], 2 * t, axis=0),
        "w.conv2": conv_matrix(w["encoder/conv2/weight"]),
        "b.conv2": np.repeat(np.asarray(w["encoder/conv2/bias"], np.float64)[None, :], t, axis=0),
        "positions": positions,
        "final.gamma": w["encoder/layer_norm/gamma"],
        "final.beta": w["encoder/layer_norm/beta"],
    }
    for i in range(dims.n_audio_layer):
        out |= {f"layer{i}.{k}": v for k, v in fold_layer(w, i, d, dims.n_audio_head, t).items()}
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def load(model_dir) -> tuple[WhisperDims, dict[str, np.ndarray]]:
    """A CTranslate2 Whisper model's dims and the IRON graph's constant buffers, folded."""
    model = ct2_reader.load(model_dir)
    dims = ct2_reader.whisper_dims(model)
    return dims, constants(ct2_reader.encoder_weights(model), dims)
