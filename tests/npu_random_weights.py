"""Random encoder weights of any Whisper shape, in the NPU layout (for NPU tests that do not need
the shipped model): CTranslate2 names and shapes, scaled so activations stay O(1)."""

from __future__ import annotations

import numpy as np

from npustream.model.dims import WhisperDims
from npustream.npu.ops.weights import NpuWeights, from_float32

TINY = WhisperDims(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)


def random_weights(dims: WhisperDims = TINY, seed: int = 0) -> NpuWeights:
    rng = np.random.default_rng(seed)
    d, f, m = dims.n_audio_state, dims.n_ff, dims.n_mels
    w: dict[str, np.ndarray] = {}

    def normal(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def linear(scope: str, out: int, inp: int) -> None:
        w[scope + "/weight"], w[scope + "/bias"] = normal(out, inp, scale=inp**-0.5), normal(out, scale=0.02)

    def norm(scope: str) -> None:
        w[scope + "/gamma"], w[scope + "/beta"] = 1 + normal(d, scale=0.1), normal(d, scale=0.1)

    w["encoder/conv1/weight"], w["encoder/conv1/bias"] = (
        normal(d, m, 3, scale=(3 * m) ** -0.5),
        normal(d, scale=0.02),
    )
    w["encoder/conv2/weight"], w["encoder/conv2/bias"] = (
        normal(d, d, 3, scale=(3 * d) ** -0.5),
        normal(d, scale=0.02),
    )
    w["encoder/position_encodings/encodings"] = normal(dims.n_audio_ctx, d, scale=0.1)
    for i in range(dims.n_audio_layer):
        p = f"encoder/layer_{i}/"
        norm(p + "self_attention/layer_norm")
        linear(p + "self_attention/linear_0", 3 * d, d)
        linear(p + "self_attention/linear_1", d, d)
        norm(p + "ffn/layer_norm")
        linear(p + "ffn/linear_0", f, d)
        linear(p + "ffn/linear_1", d, f)
    norm("encoder/layer_norm")
    return from_float32(w, dims)


def random_mels(count: int, dims: WhisperDims = TINY, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((dims.n_mels, 2 * dims.n_audio_ctx)).astype(np.float32) for _ in range(count)]
