"""The `npu` engine: the Whisper encoder on the Ryzen AI (Phoenix) NPU through pyxrt.

It needs the NPU device node, pyxrt, and a build of the column design for the chosen plan
(mlir/build.py). When any is missing, the constructor raises EngineError with the exact reason;
the engine factory then falls back to the `cpu` engine and reports why. A run that fails
mid-stream raises EngineError from `encode` (the window is untouched: the caller re-encodes it
on the cpu engine), and the engine stays unusable afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npustream import log
from npustream.errors import EngineError
from npustream.npu.run.xrt import DEVICE_NODE, open_pyxrt

logger = log.get(__name__)


class NpuEngine:
    name = "npu"
    any_length = False  # the NPU plan is built for Whisper's 1500 encoder positions

    def __init__(
        self,
        model_dir: str | Path,
        *,
        build_dir: str | Path | None = None,
        plan: str | None = None,
        objective: str = "latency",
        preset: str = "phoenix",
        pyxrt=None,
        device_node: str | None = DEVICE_NODE,
        timeout_ms: int = 10_000,
    ):
        """`pyxrt` and `device_node=None` are for tests with the pyxrt test double."""
        pyxrt = open_pyxrt(device_node, pyxrt)
        from npustream.npu.ops import params as npu_params
        from npustream.npu.ops.weights import load_npu_weights
        from npustream.npu.predict.resources import check_plan
        from npustream.npu.predict.scheduler import choose
        from npustream.npu.run.executor import Executor
        from npustream.npu.run.manifest import default_build_dir, load_manifest
        from npustream.npu.run.xrt import XrtBackend

        weights = load_npu_weights(model_dir)
        choice = choose(
            weights.dims, weights.tiles, npu_params.preset(preset), objective=objective, plan=plan
        )
        build_dir = Path(build_dir) if build_dir else default_build_dir(choice.plan.kind, preset)
        load_manifest(build_dir)  # "no built xclbins" before anything touches the device
        check_plan(choice.plan).raise_if_violated()
        self.dims = weights.dims
        self.plan = choice.plan
        self._executor = Executor(
            choice.plan, XrtBackend(choice.plan, weights, build_dir, pyxrt=pyxrt, timeout_ms=timeout_ms)
        )
        self._broken: str | None = None
        logger.info("npu.engine_ready", plan=choice.plan.kind, reason=choice.reason, build=str(build_dir))

    def encode(self, mel: np.ndarray) -> np.ndarray:
        if self._broken:
            raise EngineError(f"the NPU engine stopped after an earlier failure: {self._broken}")
        mel = np.asarray(mel, dtype=np.float32)
        want = (self.dims.n_mels, 2 * self.dims.n_audio_ctx)
        if mel.ndim != 3 or mel.shape[1:] != want:
            raise EngineError(f"encoder input must be [batch, {want[0]}, {want[1]}], got {list(mel.shape)}")
        if not np.isfinite(mel).all():
            raise EngineError("encoder input has non-finite values")
        try:
            return np.stack(self._executor.encode(list(mel)))
        except EngineError as error:
            self._broken = str(error)
            raise

    def close(self) -> None:
        self._executor.close()
