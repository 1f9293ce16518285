"""The `cpu` engine: Whisper's encoder in ctranslate2 (int8 by default, float32 selectable)."""

from __future__ import annotations

import ctranslate2
import numpy as np


class CpuEngine:
    name = "cpu"
    any_length = True  # ctranslate2 encodes any even number of mel frames up to 3000

    def __init__(self, model: ctranslate2.models.Whisper):
        # Shares the ctranslate2 model with the decoder: one copy of the weights in memory.
        self.model = model

    def encode(self, mel: np.ndarray) -> np.ndarray:
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))
        return np.asarray(self.model.encode(features, to_cpu=True), dtype=np.float32)
