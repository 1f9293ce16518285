"""Drive the Phoenix NPU through pyxrt: the executor's backend for `--engine npu`.

Start-up (once, about 20 ms on the device):
    device = pyxrt.device(0); xclbin = pyxrt.xclbin(path); device.register_xclbin(xclbin)
    one pyxrt.hw_context(device, uuid) and pyxrt.kernel(context, "MLIR_AIE") per column
    (never device.load_xclbin: amdxdna refuses it; at most 6 contexts on Phoenix)
    every instruction stream in its own bo (group_id(1), cacheable), written and synced once;
    each column's weights packed into one bo (group_id(3), host_only), written and synced once;
    the executor's buffers (ping-pong slots, scratch) allocated once and reused for every window
Per run (plan.column_runs: a pipeline column's whole stage per window, a split column's share of
one op): run = kernel(3, insts_bo, n_words, in, scratch, out, weights), started asynchronously
and waited for with a timeout: a state other than ERT_CMD_STATE_COMPLETED, or no completion in
time, raises EngineError and the window is re-encoded elsewhere (NpuEngine's caller falls back to
the cpu engine). The buffers are zeroed once when allocated: the DMA reads padding rows and a
reserved zero frame there (npu/plan/buffers.py).
Host <-> device: the host syncs TO_DEVICE what it wrote (the input window) before the first run
reads it and FROM_DEVICE what it reads (the encoder output) after the last run wrote it; buffers
only runs touch (scratch, slots between columns) never cross to the host.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from npustream import log
from npustream.errors import EngineError
from npustream.npu.ops.weights import NpuWeights
from npustream.npu.plan.buffers import (
    ColumnLayouts,
    Placed,
    column_weight_names,
    pack_weights,
)
from npustream.npu.plan.plans import Plan, Task
from npustream.npu.run.manifest import (
    DATA_ARGS,
    FIRST_DATA_ARG,
    INSTS_ARG,
    OPCODE,
    check_matches,
    load_manifest,
)

logger = log.get(__name__)


DEVICE_NODE = "/dev/accel/accel0"  # the amdxdna driver's device


def open_pyxrt(device_node: str | None = DEVICE_NODE, pyxrt=None):
    """pyxrt for a machine that has an NPU, or EngineError saying what is missing.
    `device_node=None` and a `pyxrt` module are for tests with the pyxrt test double."""
    if device_node is not None and not os.path.exists(device_node):
        raise EngineError(
            f"no NPU: {device_node} does not exist (an XDNA NPU needs the amdxdna driver, "
            "in Linux from 6.14); `npustream doctor` and `npustream npu build --check` list what is missing"
        )
    return pyxrt or import_pyxrt()


def import_pyxrt():
    """The real pyxrt module, or EngineError saying why not."""
    try:
        import pyxrt
    except ImportError as error:
        raise EngineError(
            f"pyxrt is not importable ({error}); install XRT with the amdxdna plugin "
            "and `source /opt/xilinx/xrt/setup.sh`"
        ) from None
    return pyxrt


class XrtBackend:
    def __init__(
        self,
        plan: Plan,
        weights: NpuWeights,
        build_dir: Path,
        *,
        pyxrt=None,
        device_index: int = 0,
        timeout_ms: int = 10_000,
    ):
        self.xrt = pyxrt or import_pyxrt()
        self.timeout_ms = timeout_ms
        build_dir = Path(build_dir)
        manifest = load_manifest(build_dir)
        check_matches(manifest, plan, weights)
        columns = len(plan.columns)
        if columns > plan.params.max_hw_contexts:
            raise EngineError(
                f"the plan needs {columns} hardware contexts; {plan.params.name} has "
                f"{plan.params.max_hw_contexts}"
            )
        try:
            self.device = self.xrt.device(device_index)
            xclbin = self.xrt.xclbin(str(build_dir / manifest["xclbin"]))
            names = [k.get_name() for k in xclbin.get_kernels()]
            if manifest["kernel"] not in names:
                raise EngineError(f"{manifest['xclbin']} has no kernel {manifest['kernel']} (it has {names})")
            self.device.register_xclbin(xclbin)
            self.contexts = [self.xrt.hw_context(self.device, xclbin.get_uuid()) for _ in range(columns)]
            self.kernels = [self.xrt.kernel(ctx, manifest["kernel"]) for ctx in self.contexts]
        except RuntimeError as error:
            raise EngineError(f"cannot open the NPU: {error}") from error
        self._to_device = self.xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE
        self._from_device = self.xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE
        self.insts = [
            {tuple(r["tasks"]): self._upload_insts(c, build_dir / r["insts"]) for r in entry["runs"]}
            for c, entry in enumerate(manifest["columns"])
        ]
        self.weights = self._upload_weights(plan, weights)
        logger.info(
            "npu.xrt_ready",
            columns=columns,
            plan=plan.kind,
            runs_per_window=sum(len(runs) for runs in self.insts),
        )

    # --- buffers uploaded once -------------------------------------------------------------

    def _bo(self, column: int, nbytes: int, arg: int):
        flags = self.xrt.bo.cacheable if arg == INSTS_ARG else self.xrt.bo.host_only
        return self.xrt.bo(self.device, nbytes, flags, self.kernels[column].group_id(arg))

    def _upload_insts(self, column: int, path: Path) -> tuple[object, int]:
        words = np.fromfile(path, dtype=np.uint32)
        if words.size == 0:
            raise EngineError(f"instruction stream {path} is empty")
        bo = self._bo(column, words.nbytes, INSTS_ARG)
        bo.write(words, 0)
        bo.sync(self._to_device)
        return bo, int(words.size)

    def _upload_weights(self, plan: Plan, weights: NpuWeights) -> list:
        arg = FIRST_DATA_ARG + DATA_ARGS.index("weights")
        uploaded: dict[tuple[str, ...], object] = {}  # split: every column the same bo
        per_column = []
        for column in range(len(plan.columns)):
            names = tuple(column_weight_names(plan, column, weights))
            if names not in uploaded:
                blob, _ = pack_weights(weights, list(names))
                bo = self._bo(column, blob.nbytes, arg)
                bo.write(blob, 0)
                bo.sync(self._to_device)
                uploaded[names] = bo
            per_column.append(uploaded[names])
        return per_column

    # --- executor.Backend ------------------------------------------------------------------

    def allocate(self, nbytes: int, what: str):
        bo = self._bo(0, nbytes, FIRST_DATA_ARG)
        bo.write(np.zeros(nbytes, np.uint8), 0)  # padding rows and the zero frame the DMA reads
        bo.sync(self._to_device)
        return bo

    def write(self, bo, placed: Placed, bits: np.ndarray) -> None:
        bo.write(np.ascontiguousarray(bits, np.uint16), placed.offset)
        bo.sync(self._to_device, placed.nbytes, placed.offset)

    def read(self, bo, placed: Placed) -> np.ndarray:
        bo.sync(self._from_device, placed.nbytes, placed.offset)
        raw = bo.read(placed.nbytes, placed.offset)
        return np.asarray(raw).view(np.uint16).reshape(placed.rows, placed.cols).copy()

    def run(self, column: int, tasks: list[tuple[int, Task]], layouts: ColumnLayouts, buffers: dict) -> None:
        """One XRT run: the column's instruction stream for exactly these tasks."""
        numbers = tuple(number for number, _ in tasks)
        if numbers not in self.insts[column]:
            raise EngineError(f"the NPU build has no run of tasks {numbers} on column {column}")
        insts, words = self.insts[column][numbers]
        data = [buffers[role] for role in DATA_ARGS[:-1]] + [self.weights[column]]
        run = self.kernels[column](OPCODE, insts, words, *data)
        state = run.wait(self.timeout_ms)
        if state != self.xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            timed_out = state == self.xrt.ert_cmd_state.ERT_CMD_STATE_TIMEOUT
            what = f"did not complete within {self.timeout_ms} ms" if timed_out else f"ended in {state.name}"
            ops = tasks[0][1].op.name + (f" .. {tasks[-1][1].op.name}" if len(tasks) > 1 else "")
            raise EngineError(f"NPU run of {ops} on column {column} {what}")

    def carry(self, column: int, layouts: ColumnLayouts, buffers: dict) -> None:
        """Copy pass-through activations from the input slot to the output slot, through the
        host (rare: only when a column neither reads nor replaces a live activation)."""
        for name in layouts.carried:
            src = layouts.buffers["in"].tensors[name]
            self.write(buffers["out"], layouts.buffers["out"].tensors[name], self.read(buffers["in"], src))

    def close(self) -> None:
        # release in dependency order: buffers and kernels before their contexts
        self.insts = self.weights = []
        self.kernels = []
        self.contexts = []
