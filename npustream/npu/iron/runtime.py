"""Drive the IRON operator graph on the NPU through pyxrt: one stream of steps per hardware context.

Load (once per stream):
    device = pyxrt.device(0); xclbin = pyxrt.xclbin(manifest xclbin); device.register_xclbin(xclbin)
    ctx = pyxrt.hw_context(device, xclbin.get_uuid())           one per stream (<= 6 on Phoenix)
    one pyxrt.kernel(ctx, name) per operator design (the chained xclbin holds all of them)
    per design its instruction stream in a bo (group_id(1), cacheable), written and synced once
    per graph buffer one bo (group_id(3), host_only); a step's View is a sub-buffer
    pyxrt.bo(parent, nbytes, offset) of it; constants written (bf16) and synced once
    per NPU step one pyxrt.run(kernel) with its arguments set: opcode 3, insts bo, words, views
Per window: the host writes the im2col'd input and syncs it TO_DEVICE; the steps up to the next
host step go into one pyxrt.runlist(ctx) (add, execute, wait): a runlist runs its runs in order
and returns once all completed; at a host step the host syncs FROM_DEVICE what it reads, computes
(host.py) and syncs TO_DEVICE what it writes. A state other than COMPLETED, or no completion
within the timeout, raises EngineError (the caller encodes the window on the CPU).

Unverified on hardware (no NPU here): runlist reuse across windows (a fresh runlist per segment
is built from the same runs), sub-buffer arguments, and the chained xclbin's kernel names; the
pyxrt test double enforces the documented protocol, nothing more.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npustream.bf16 import from_bf16_bits, to_bf16_bits
from npustream.errors import EngineError
from npustream.npu.iron import host
from npustream.npu.iron.graph import HOST_BUFFERS, INPUT, OUTPUT, Graph, Step, View

MANIFEST = "manifest.json"
FORMAT = "npustream-iron-1"
OPCODE = 3  # mlir-aie's NPU kernel convention: opcode, instructions (group 1), count, data (3..)
INSTS_ARG, FIRST_DATA_ARG = 1, 3
BF16 = 2  # bytes per element of every device buffer


@dataclass(frozen=True)
class Design:
    key: str
    kernel: str  # kernel name in the xclbin
    insts: Path  # instruction stream (32-bit words)


@dataclass(frozen=True)
class Manifest:
    root: Path
    iron_commit: str
    width: int
    xclbin: Path  # the chained xclbin holding every design's kernel
    designs: dict[str, Design]
    toolchain: dict[str, str]


BUILD_HINT = "run `npustream npu build` (it says what this machine lacks)"


def load_manifest(root: Path, graph: Graph) -> Manifest:
    """The build for `graph`, or EngineError saying what is missing."""
    path = Path(root) / MANIFEST
    if not path.exists():
        raise EngineError(f"no IRON NPU build in {root}: {BUILD_HINT}")
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise EngineError(f"{path}: format {raw.get('format')!r}, expected {FORMAT!r}; {BUILD_HINT}")
        designs = {k: Design(k, v["kernel"], Path(root) / v["insts"]) for k, v in raw["designs"].items()}
        manifest = Manifest(
            Path(root),
            raw["iron_commit"],
            int(raw["width"]),
            Path(root) / raw["xclbin"],
            designs,
            dict(raw.get("toolchain", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineError(f"{path} is not a valid IRON build manifest ({exc}); {BUILD_HINT}") from None
    if manifest.width != graph.width:
        raise EngineError(
            f"{root} holds {manifest.width}-column designs; this plan runs {graph.width}-column ones"
        )
    missing = [op.key for op in graph.operators if op.key not in designs]
    if missing:
        raise EngineError(
            f"{root} lacks {len(missing)} design(s) of the encoder graph, e.g. {missing[0]}; {BUILD_HINT}"
        )
    for f in [manifest.xclbin, *(d.insts for d in designs.values())]:
        if not f.exists():
            raise EngineError(f"{f} is missing; {BUILD_HINT}")
    return manifest


def write_manifest(
    root: Path,
    *,
    iron_commit: str,
    width: int,
    xclbin: str,
    designs: dict[str, tuple[str, str]],
    toolchain: dict[str, str],
) -> Path:
    """designs: key -> (kernel name, insts path relative to root)."""
    path = Path(root) / MANIFEST
    path.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "iron_commit": iron_commit,
                "width": width,
                "xclbin": xclbin,
                "designs": {k: {"kernel": kern, "insts": insts} for k, (kern, insts) in designs.items()},
                "toolchain": toolchain,
            },
            indent=1,
        )
    )
    return path


def _segments(steps: tuple[Step, ...]) -> list[tuple[list[Step], Step | None]]:
    """NPU steps up to each host step: [(npu steps, the host step after them or None), ...]."""
    out: list[tuple[list[Step], Step | None]] = []
    run: list[Step] = []
    for step in steps:
        if step.op is None:
            out.append((run, step))
            run = []
        else:
            run.append(step)
    if run:
        out.append((run, None))
    return out


class Stream:
    """One hardware context running whole windows of the graph, one after another."""

    def __init__(
        self,
        pyxrt,
        device,
        xclbin,
        graph: Graph,
        manifest: Manifest,
        constants: dict[str, np.ndarray],
        timeout_ms: int = 10_000,
    ):
        self.pyxrt, self.graph, self.timeout_ms = pyxrt, graph, timeout_ms
        self.ctx = pyxrt.hw_context(device, xclbin.get_uuid())
        self.kernels = {
            op.key: pyxrt.kernel(self.ctx, manifest.designs[op.key].kernel) for op in graph.operators
        }
        first = next(iter(self.kernels.values()))
        self.insts: dict[str, tuple[object, int]] = {}
        for op in graph.operators:
            words = np.fromfile(manifest.designs[op.key].insts, dtype=np.uint32)
            bo = pyxrt.bo(device, words.nbytes, pyxrt.bo.cacheable, self.kernels[op.key].group_id(INSTS_ARG))
            bo.write(words, 0)
            bo.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
            self.insts[op.key] = (bo, int(words.size))
        group = first.group_id(FIRST_DATA_ARG)
        self.bos = {
            name: pyxrt.bo(device, size * BF16, pyxrt.bo.host_only, group)
            for name, size in graph.buffers.items()
            if name not in HOST_BUFFERS
        }
        for name in graph.constants - HOST_BUFFERS:
            self.bos[name].write(to_bf16_bits(np.asarray(constants[name], np.float32).reshape(-1)), 0)
            self.bos[name].sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
        self.host_values = {n: np.asarray(constants[n], np.float32) for n in graph.constants & HOST_BUFFERS}
        self._subs: dict[View, object] = {}
        # per segment: its (step, run) pairs and the host step after it
        self.segments = [
            ([(s, self._run(s)) for s in steps], after) for steps, after in _segments(graph.steps)
        ]

    def _sub(self, v: View):
        if v.offset == 0 and v.size == self.graph.buffers[v.buffer]:
            return self.bos[v.buffer]
        if v not in self._subs:
            self._subs[v] = self.pyxrt.bo(self.bos[v.buffer], v.size * BF16, v.offset * BF16)
        return self._subs[v]

    def _run(self, step: Step):
        kernel = self.kernels[step.op.key]
        insts, words = self.insts[step.op.key]
        run = self.pyxrt.run(kernel)
        for i, arg in enumerate((OPCODE, insts, words, *(self._sub(v) for v in step.args))):
            run.set_arg(i, arg)
        return run

    def _read(self, v: View) -> np.ndarray:
        bo = self._sub(v)
        bo.sync(self.pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE)
        return from_bf16_bits(np.asarray(bo.read(v.size * BF16, 0)).view(np.uint16)).reshape(v.shape)

    def _write(self, v: View, value: np.ndarray) -> None:
        bo = self._sub(v)
        bo.write(to_bf16_bits(np.asarray(value, np.float32).reshape(-1)), 0)
        bo.sync(self.pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)

    def _execute(self, pairs: list[tuple[Step, object]]) -> None:
        """One runlist of these runs, in order; EngineError unless every run completed in time."""
        runlist = self.pyxrt.runlist(self.ctx)
        for _, run in pairs:
            runlist.add(run)
        runlist.execute()
        runlist.wait(datetime.timedelta(milliseconds=self.timeout_ms))
        done = self.pyxrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED
        for step, run in pairs:
            if run.state() != done:
                raise EngineError(f"NPU step {step.name} ({step.op.key}) ended {run.state()}")

    def encode(self, mel: np.ndarray) -> np.ndarray:
        dims = self.graph.dims
        values = {INPUT: np.asarray(mel, np.float32), **self.host_values}
        for pairs, after in self.segments:
            if pairs:
                self._execute(pairs)
            if after is None:
                continue
            if after.host == "im2col_conv1":
                _, cols = after.args
                self._write(cols, host.im2col_conv1(values[INPUT], *cols.shape))
            elif after.host == "im2col_conv2":
                conv1, cols = after.args
                self._write(cols, host.im2col_conv2(self._read(conv1), 2 * dims.n_audio_ctx, *cols.shape))
            elif after.host == "final_affine":
                unit, gamma, beta, _ = after.args
                values[OUTPUT] = host.final_affine(
                    self._read(unit), values[gamma.buffer], values[beta.buffer], dims.n_audio_ctx
                )
        return values[OUTPUT]


def open_streams(
    pyxrt,
    graph: Graph,
    manifest: Manifest,
    constants: dict[str, np.ndarray],
    streams: int,
    *,
    timeout_ms: int = 10_000,
    max_contexts: int = 6,
) -> list[Stream]:
    if streams > max_contexts:
        raise EngineError(f"{streams} streams need {streams} hardware contexts; Phoenix has {max_contexts}")
    device = pyxrt.device(0)
    xclbin = pyxrt.xclbin(str(manifest.xclbin))
    device.register_xclbin(xclbin)
    return [Stream(pyxrt, device, xclbin, graph, manifest, constants, timeout_ms) for _ in range(streams)]
