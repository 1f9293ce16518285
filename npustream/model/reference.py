"""The Whisper encoder in plain float32 numpy: the oracle the NPU path is compared against.

Same computation as openai/whisper's AudioEncoder and CTranslate2's WhisperEncoder, on the
weights as CTranslate2 names them (see ct2_reader.encoder_weights):

    x = gelu(conv1(mel))                  k=3, pad 1
    x = gelu(conv2(x))                    k=3, stride 2, pad 1      -> [B, 1500, d]
    x = x + position_encodings
    per layer (pre-LN residual):
        x = x + attn(ln(x))               fused qkv projection, softmax(q k^T / sqrt(d_head)) v
        x = x + mlp(ln(x))                linear, gelu, linear
    x = ln(x)
"""

from __future__ import annotations

import numpy as np

from npustream.errors import ModelError

LN_EPS = 1e-5

# Abramowitz & Stegun 7.1.26: erf(x) = 1 - (a1 t + ... + a5 t^5) exp(-x^2), t = 1 / (1 + p x),
# |error| <= 1.5e-7 (float32 resolution). numpy has no erf and scipy is not a dependency.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * ax)
    poly = t * (_ERF_A[0] + t * (_ERF_A[1] + t * (_ERF_A[2] + t * (_ERF_A[3] + t * _ERF_A[4]))))
    return np.sign(x) * (1.0 - poly * np.exp(-ax * ax))


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU both Whisper and CTranslate2 use, not the tanh approximation."""
    return 0.5 * x * (1.0 + erf(x * np.float32(1 / np.sqrt(2))))


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(LN_EPS)) * gamma + beta


def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """[B, C_in, T] -> [B, T_out, C_out] (time-major, as the transformer wants it), padding 1.

    Written as one matmul over the three kernel taps (im2col): weight is [C_out, C_in, k].
    """
    c_out, c_in, k = weight.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    t_out = (x.shape[-1] + 2 - k) // stride + 1
    taps = [padded[:, :, j : j + stride * (t_out - 1) + 1 : stride] for j in range(k)]
    cols = np.stack(taps, axis=-1).transpose(0, 2, 1, 3).reshape(x.shape[0], t_out, c_in * k)
    return cols @ weight.reshape(c_out, c_in * k).T + bias


def linear(x: np.ndarray, w: dict[str, np.ndarray], scope: str) -> np.ndarray:
    return x @ w[f"{scope}/weight"].T + w[f"{scope}/bias"]


def self_attention(x: np.ndarray, w: dict[str, np.ndarray], scope: str, n_head: int) -> np.ndarray:
    batch, n_ctx, d = x.shape
    d_head = d // n_head
    # linear_0 is [q; k; v] fused; its bias has zeros for k (Whisper's key has no bias).
    qkv = linear(x, w, f"{scope}/linear_0").reshape(batch, n_ctx, 3, n_head, d_head)
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each [B, H, T, d_head]
    q = q * np.float32(d_head**-0.5)  # CTranslate2 scales the queries once, at run time
    scores = q @ k.transpose(0, 1, 3, 2)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores, out=scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    out = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, n_ctx, d)
    return linear(out, w, f"{scope}/linear_1")


def encoder_layer(x: np.ndarray, w: dict[str, np.ndarray], scope: str, n_head: int) -> np.ndarray:
    attn = f"{scope}/self_attention"
    h = layer_norm(x, w[f"{attn}/layer_norm/gamma"], w[f"{attn}/layer_norm/beta"])
    x = x + self_attention(h, w, attn, n_head)
    ffn = f"{scope}/ffn"
    h = layer_norm(x, w[f"{ffn}/layer_norm/gamma"], w[f"{ffn}/layer_norm/beta"])
    return x + linear(gelu(linear(h, w, f"{ffn}/linear_0")), w, f"{ffn}/linear_1")


def conv_stem(weights: dict[str, np.ndarray], mel: np.ndarray) -> np.ndarray:
    """mel [B, n_mels, 2*n_ctx] -> [B, n_ctx, d]: both convolutions and their GELUs."""
    x = gelu(conv1d(mel, weights["encoder/conv1/weight"], weights["encoder/conv1/bias"], 1))
    x = x.transpose(0, 2, 1)
    return gelu(conv1d(x, weights["encoder/conv2/weight"], weights["encoder/conv2/bias"], 2))


def reference_encode(weights: dict[str, np.ndarray], mel: np.ndarray, n_head: int) -> np.ndarray:
    """float32[B, n_mels, 3000] log-mel -> float32[B, 1500, d] encoder output.

    `weights` are float32 (ct2_reader.encoder_weights); n_head is dims.n_audio_head.
    """
    conv1 = weights["encoder/conv1/weight"]
    n_ctx = weights["encoder/position_encodings/encodings"].shape[0]
    if mel.ndim != 3 or mel.shape[1] != conv1.shape[1] or mel.shape[2] != 2 * n_ctx:
        raise ModelError(
            f"encoder input must be [batch, {conv1.shape[1]}, {2 * n_ctx}], got {list(mel.shape)}"
        )
    x = conv_stem(weights, np.asarray(mel, dtype=np.float32))
    x = x + weights["encoder/position_encodings/encodings"]
    n_layer = sum(1 for name in weights if name.endswith("/self_attention/linear_0/weight"))
    for i in range(n_layer):
        x = encoder_layer(x, weights, f"encoder/layer_{i}", n_head)
    return layer_norm(x, weights["encoder/layer_norm/gamma"], weights["encoder/layer_norm/beta"])
