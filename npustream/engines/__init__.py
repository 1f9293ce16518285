"""Encoder engines: one interface, several back ends.

    encode(mel: float32[B, 80, 3000]) -> float32[B, 1500, d_model]

An engine with `any_length` also takes shorter windows (mel frames even, <= 3000) and returns
half as many positions; the NPU engines are built for Whisper's 3000 frames only.

`cpu` runs the encoder in ctranslate2; `npu-emu` runs the NPU's operations with the kernels'
numerics on the CPU; `npu` drives Ryzen AI hardware through pyxrt. The two NPU engines come in
two designs: "iron" (default), the encoder composed from amd/IRON's hardware-tested operators
(npu/iron/, docs/npu-iron.md), and "custom", the project's own column design (npu/ops..run).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

ENGINE_NAMES = ("cpu", "npu-emu", "npu")
NPU_DESIGNS = ("iron", "custom")


@runtime_checkable
class EncoderEngine(Protocol):
    name: str
    any_length: bool

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """float32[B, n_mels, 3000] -> float32[B, 1500, d_model]."""
        ...


def create_engine(
    name: str, *, ct2_model, model_dir, design: str = "iron"
) -> tuple[EncoderEngine, str | None]:
    """The engine asked for (NPU engines: of `design`), or the `cpu` engine and the reason when it
    cannot run here."""
    from npustream import log
    from npustream.engines.cpu import CpuEngine
    from npustream.errors import EngineError

    if name not in ENGINE_NAMES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    if design not in NPU_DESIGNS:
        raise EngineError(f"unknown NPU design {design!r}; choose one of {', '.join(NPU_DESIGNS)}")
    if name == "cpu":
        return CpuEngine(ct2_model), None
    try:
        if design == "iron":
            from npustream.engines.npu_iron import IronEmuEngine, IronNpuEngine

            return (IronEmuEngine if name == "npu-emu" else IronNpuEngine)(model_dir), None
        if name == "npu-emu":
            from npustream.engines.npu_emu import NpuEmuEngine

            return NpuEmuEngine(model_dir), None
        from npustream.engines.npu import NpuEngine

        return NpuEngine(model_dir), None
    except EngineError as exc:
        reason = str(exc)
        log.get(__name__).warning("engine_fallback", requested=name, engine="cpu", reason=reason)
        return CpuEngine(ct2_model), reason
