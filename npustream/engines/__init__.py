"""Encoder engines: one interface, several back ends.

    encode(mel: float32[B, 80, 3000]) -> float32[B, 1500, d_model]

An engine with `any_length` also takes shorter windows (mel frames even, <= 3000) and returns
half as many positions; the NPU engines are built for Whisper's 3000 frames only.

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
    any_length: bool

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """float32[B, n_mels, 3000] -> float32[B, 1500, d_model]."""
        ...


def create_engine(name: str, *, ct2_model, model_dir) -> tuple[EncoderEngine, str | None]:
    """The engine asked for, or the `cpu` engine and the reason when it cannot run here."""
    from npustream import log
    from npustream.engines.cpu import CpuEngine
    from npustream.errors import EngineError

    if name not in ENGINE_NAMES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    if name == "cpu":
        return CpuEngine(ct2_model), None
    try:
        if name == "npu-emu":
            from npustream.engines.npu_emu import NpuEmuEngine

            return NpuEmuEngine(model_dir), None
        from npustream.engines.npu import NpuEngine

        return NpuEngine(model_dir), None
    except EngineError as exc:
        reason = str(exc)
        log.get(__name__).warning("engine_fallback", requested=name, engine="cpu", reason=reason)
        return CpuEngine(ct2_model), reason
