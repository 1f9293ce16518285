"""Encoder engines on the Whisper encoder composed from amd/IRON's operators (npu/iron/).

`IronNpuEngine` (`--engine npu`, design "iron") runs the graph's steps on the Phoenix NPU through
pyxrt, from the build `npustream npu build` made; `IronEmuEngine` (`--engine npu-emu`, design
"iron") runs the same graph on the CPU with the operators' numerics. Both fold the model's
weights into the graph's constant buffers at load time (npu/iron/folds.py).

The NPU engine's constructor raises EngineError with the exact reason when the NPU, pyxrt or the
build is missing; the engine factory then falls back to the cpu engine and publishes the reason.
A run that fails mid-stream raises EngineError from `encode` (the window is untouched: the
caller encodes it on the cpu engine) and the engine stays unusable afterwards.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from npustream import log
from npustream.errors import EngineError
from npustream.npu.iron import emulate, folds, numerics, plans, runtime, toolchain
from npustream.npu.run.xrt import DEVICE_NODE, open_pyxrt

logger = log.get(__name__)


def _check_window(mel: np.ndarray, dims) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float32)
    want = (dims.n_mels, 2 * dims.n_audio_ctx)
    if mel.ndim != 3 or mel.shape[1:] != want:
        raise EngineError(f"encoder input must be [batch, {want[0]}, {want[1]}], got {list(mel.shape)}")
    return mel


class IronEmuEngine:
    name = "npu-emu"
    any_length = False  # the graph is built for Whisper's 1500 encoder positions
    design = "iron"

    def __init__(
        self, model_dir: str | Path, *, plan: str = "latency", num: numerics.IronNumerics = numerics.STOCK
    ):
        self.dims, constants = folds.load(model_dir)
        self.graph = plans.graph_for(self.dims, plans.PLANS[plan])
        self.machine = emulate.Machine(self.graph, constants, num=num)

    def encode(self, mel: np.ndarray) -> np.ndarray:
        mel = _check_window(mel, self.dims)
        out = np.empty((mel.shape[0], self.dims.n_audio_ctx, self.dims.n_audio_state), np.float32)
        for i, window in enumerate(mel):
            start = time.perf_counter()
            out[i] = self.machine.run(window)
            logger.debug("npu_iron_emu.window", index=i, seconds=round(time.perf_counter() - start, 3))
        return out


class IronNpuEngine:
    name = "npu"
    any_length = False
    design = "iron"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        plan: str = "latency",
        build_dir: str | Path | None = None,
        pyxrt=None,
        device_node: str | None = DEVICE_NODE,
        timeout_ms: int = 10_000,
    ):
        """`pyxrt` and `device_node=None` are for tests with the pyxrt test double."""
        pyxrt = open_pyxrt(device_node, pyxrt)
        self.plan = plans.PLANS[plan]
        self.dims, constants = folds.load(model_dir)
        self.graph = plans.graph_for(self.dims, self.plan)
        root = Path(build_dir) if build_dir else toolchain.default_root() / f"w{self.plan.width}"
        manifest = runtime.load_manifest(root, self.graph)
        self._streams = runtime.open_streams(
            pyxrt, self.graph, manifest, constants, self.plan.streams, timeout_ms=timeout_ms
        )
        self._next = 0
        self._broken: str | None = None
        logger.info(
            "npu.engine_ready",
            design="iron",
            plan=self.plan.kind,
            build=str(root),
            iron_commit=manifest.iron_commit,
        )

    def encode(self, mel: np.ndarray) -> np.ndarray:
        if self._broken:
            raise EngineError(f"the NPU engine stopped after an earlier failure: {self._broken}")
        mel = _check_window(mel, self.dims)
        if not np.isfinite(mel).all():
            raise EngineError("encoder input has non-finite values")
        # windows go to the streams in turn; a batch runs its windows on all streams at once
        out: list[np.ndarray | None] = [None] * len(mel)
        groups: dict[int, list[int]] = {}
        for i in range(len(mel)):
            groups.setdefault((self._next + i) % len(self._streams), []).append(i)
        self._next += len(mel)

        def run(stream_index: int) -> None:
            for i in groups[stream_index]:
                out[i] = self._streams[stream_index].encode(mel[i])

        try:
            if len(groups) == 1:
                run(next(iter(groups)))
            else:
                with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="npu-stream") as pool:
                    list(pool.map(run, groups))
            return np.stack(out)
        except EngineError as error:
            self._broken = str(error)
            raise
