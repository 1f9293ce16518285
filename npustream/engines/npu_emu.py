"""The `npu-emu` engine: the NPU's encoder operations with the kernels' numerics, on the CPU.

Same interface as the `cpu` engine. The weights come from npu/layout.py's cache (bf16, tile
layout, as the kernels consume them); each window runs npu/emulator.encode_window.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from npustream import log
from npustream.errors import EngineError
from npustream.npu.ops.tiles import DEFAULT_TILES, Tiles
from npustream.npu.ops.weights import load_npu_weights
from npustream.npu.run import emulator

logger = log.get(__name__)


class NpuEmuEngine:
    name = "npu-emu"
    any_length = False  # the NPU plan is built for Whisper's 1500 encoder positions

    def __init__(self, model_dir: Path, *, tiles: Tiles = DEFAULT_TILES):
        self.weights = load_npu_weights(model_dir, tiles)
        self.dims = self.weights.dims

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """float32[B, n_mels, 3000] -> float32[B, 1500, d_model]."""
        mel = np.asarray(mel, dtype=np.float32)
        frames = 2 * self.dims.n_audio_ctx
        if mel.ndim != 3 or mel.shape[1:] != (self.dims.n_mels, frames):
            raise EngineError(
                f"npu-emu encodes [batch, {self.dims.n_mels}, {frames}] log-mel, got {list(mel.shape)}"
            )
        out = np.empty((mel.shape[0], self.dims.n_audio_ctx, self.dims.n_audio_state), np.float32)
        for i, window in enumerate(mel):
            start = time.perf_counter()
            out[i] = emulator.encode_window(window, self.weights)
            logger.debug(
                "npu_emu.window", index=i, of=len(mel), seconds=round(time.perf_counter() - start, 3)
            )
        return out
