"""TEST DOUBLE: the pyxrt double (pyxrt_double.make_pyxrt) plus what the IRON runtime uses on top
of it: sub-buffers `bo(parent, size, offset)`, `run(kernel)` with `set_arg`/`start`, and
`runlist(hw_context)` with `add`/`execute`/`wait` (XRT's pybind11 module, src/python/pybind11).

A sub-buffer shares its parent's host and device bytes (numpy views), so a run writing through
one view is seen through the parent after a FROM_DEVICE sync, as on the device. `iron_program`
makes the double's device program: the kernel name a run was made from picks the operator
design (the manifest's kernel names), which computes with the emulator's `run_operator` on the
device bytes of the run's buffers.
"""

from __future__ import annotations

import numpy as np

from doubles import pyxrt as base
from npustream.bf16 import from_bf16_bits, to_bf16_bits
from npustream.npu.iron.emulate import run_operator
from npustream.npu.iron.graph import Operator, operand_shapes

FakeNpu = base.FakeNpu


def iron_program(kernels: dict[str, Operator]):
    """program(kernel_name, insts_words, data_bos) computing the design named by the kernel."""

    def program(name: str, insts_words: np.ndarray, data: list) -> None:
        op = kernels[name]
        shapes = operand_shapes(op)
        if len(data) != len(shapes):
            raise ValueError(f"{name}: {len(data)} buffers for {len(shapes)} operands")
        ins = [from_bf16_bits(b.device.view(np.uint16)).reshape(s) for b, s in zip(data[:-1], shapes[:-1])]
        out = run_operator(op, ins)
        data[-1].device[:] = to_bf16_bits(np.asarray(out, np.float32).reshape(-1)).view(np.uint8)

    return program


def make_pyxrt(npu: FakeNpu):
    ns = base.make_pyxrt(npu)
    plain_bo = ns.bo

    class bo(plain_bo):
        def __init__(self, *args):
            if args and isinstance(args[0], plain_bo):
                parent, size, offset = args
                if offset + size > parent.size():
                    raise RuntimeError("sub-buffer past the end of its parent")
                self._size, self._flags, self._group = size, parent._flags, parent._group
                self.host = parent.host[offset : offset + size]
                self.device = parent.device[offset : offset + size]
                self.generation = 0
                self._dirty, self._fresh, self._in_flight = [], None, 0
                npu.sub_bos = getattr(npu, "sub_bos", 0) + 1
            else:
                super().__init__(*args)

    class run:
        def __init__(self, kernel):
            self._kernel, self._args, self._inner = kernel, {}, None

        def set_arg(self, index: int, value) -> None:
            self._args[index] = value

        def start(self) -> None:
            if sorted(self._args) != list(range(len(self._args))):
                raise base.ProtocolError(f"run started with arguments {sorted(self._args)} set")
            self._inner = self._kernel(*(self._args[i] for i in range(len(self._args))))

        def state(self):
            return self._inner.state() if self._inner else ns.ert_cmd_state.ERT_CMD_STATE_NEW

        def wait(self, timeout_ms: int = 0):
            if self._inner is None:
                raise base.ProtocolError("wait on a run that was never started")
            return self._inner.wait(timeout_ms)

    class runlist:
        def __init__(self, ctx):
            self._ctx, self._runs, self._executed = ctx, [], False

        def add(self, r: run) -> None:
            if self._executed:
                raise base.ProtocolError("run added to a runlist that already executed")
            if r._kernel._ctx is not self._ctx:
                raise base.ProtocolError("run of another hardware context added to a runlist")
            self._runs.append(r)

        def execute(self) -> None:
            self._executed = True
            npu.runlists = getattr(npu, "runlists", 0) + 1
            for r in self._runs:  # in order, on the context's queue
                r.start()

        def wait(self, timeout=None):
            ms = 0 if timeout is None else max(1, int(timeout.total_seconds() * 1000))
            for r in self._runs:
                r.wait(ms)

    ns.bo, ns.run, ns.runlist = bo, run, runlist
    return ns
