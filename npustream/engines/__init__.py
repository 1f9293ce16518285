"""Encoder engines: one interface, several back ends.

    encode(mel: float32[B, 80, 3000]) -> float32[B, 1500, d_model]

`cpu` runs the encoder in ctranslate2; `npu-emu` runs the NPU plan's operations with the
kernels' numerics on the CPU; `npu` drives Ryzen AI hardware through pyxrt.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

ENGINE_NAMES = ("cpu", "npu-emu", "npu")


@runtime_checkable
class EncoderEngine(Protocol):
    name: str

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """float32[B, n_mels, 3000] -> float32[B, 1500, d_model]."""
        ...
