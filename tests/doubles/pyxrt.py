"""TEST DOUBLE of the pyxrt API surface npustream's XRT runtime uses. It is not a driver and
never touches hardware: it exists so the runtime can be tested on machines without an NPU.

It enforces the protocol the real stack needs, raising `ProtocolError` where real XRT would
crash, hang or hand back stale data:
- xclbins are registered (`register_xclbin`) before a `hw_context` is made from their uuid;
  the legacy `load_xclbin` fails as it does on amdxdna; at most `max_contexts` (Phoenix: 6)
  hardware contexts live at once
- a buffer object is made with the group id of the kernel argument it is passed as
  (`kernel.group_id`): 1 for the instruction stream (flag cacheable), 3.. for data (host_only)
- a run passes exactly the arguments the xclbin declares (more crashes inside XRT), opcode 3,
  the instruction count in 32-bit words matching its buffer
- bytes the host wrote are synced TO_DEVICE before a run reads them; after a run the host
  syncs FROM_DEVICE before reading what the device wrote; no host access to a buffer a run
  still uses
- a run goes NEW -> QUEUED -> COMPLETED (or ERROR / ABORT / TIMEOUT, injected with `fail_next`
  and `hang_next`); `wait(ms)` returns ERT_CMD_STATE_TIMEOUT when the time runs out

Each buffer has a host copy and a device copy; `sync` moves bytes between them, runs read and
write device copies only, so a missing sync shows up as wrong numbers as well as an error.
Runs of one context execute in order on a worker thread (asynchronous, like the device queue)
through a `program(kernel_name, insts_words, device_buffers)` callback; tests/doubles/pyxrt_build.py
has the one that computes with the emulator, and the stand-in builds it understands.
"""

from __future__ import annotations

import enum
import json
import queue
import threading
import types
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from npustream.npu.run.manifest import FIRST_DATA_ARG, INSTS_ARG, OPCODE

DOUBLE_XCLBIN = "npustream-pyxrt-test-double-xclbin"


class ProtocolError(AssertionError):
    """A use of the pyxrt API that the real XRT stack would punish."""


class xclBOSyncDirection(enum.Enum):  # pyxrt's names
    XCL_BO_SYNC_BO_TO_DEVICE = 0
    XCL_BO_SYNC_BO_FROM_DEVICE = 1


class ert_cmd_state(enum.Enum):  # values as in XRT's ert.h
    ERT_CMD_STATE_NEW = 1
    ERT_CMD_STATE_QUEUED = 2
    ERT_CMD_STATE_RUNNING = 3
    ERT_CMD_STATE_COMPLETED = 4
    ERT_CMD_STATE_ERROR = 5
    ERT_CMD_STATE_ABORT = 6
    ERT_CMD_STATE_SUBMITTED = 7
    ERT_CMD_STATE_TIMEOUT = 8


class BoFlags(enum.Enum):
    normal = 0
    cacheable = 1
    device_only = 2
    host_only = 3


class FakeNpu:
    """The simulated NPU behind one `make_pyxrt()` module: its contexts, registered xclbins,
    program and injected faults. Counters let tests see what the runtime did."""

    def __init__(self, program: Callable, *, max_contexts: int = 6, devices: int = 1):
        self.program, self.max_contexts, self.devices = program, max_contexts, devices
        self.live_contexts = 0
        self.registered: set[str] = set()
        self.runs = 0
        self.syncs = {d: 0 for d in xclBOSyncDirection}
        self.bos_created = 0
        self._faults: list[ert_cmd_state | None] = []  # per next run: a state, or None to hang
        self._lock = threading.Lock()

    def fail_next(self, state: ert_cmd_state = ert_cmd_state.ERT_CMD_STATE_ERROR, runs: int = 1) -> None:
        self._faults += [state] * runs

    def hang_next(self, runs: int = 1) -> None:
        self._faults += [None] * runs

    def _take_fault(self):
        with self._lock:
            return self._faults.pop(0) if self._faults else ert_cmd_state.ERT_CMD_STATE_COMPLETED


def make_pyxrt(npu: FakeNpu) -> types.SimpleNamespace:
    """A stand-in for the `pyxrt` module, bound to `npu`."""

    class uuid:  # the classes carry pyxrt's lowercase names
        def __init__(self, text: str):
            self._text = text

        def to_string(self) -> str:
            return self._text

    class xclbinkernel:
        def __init__(self, name: str, num_args: int):
            self._name, self._num_args = name, num_args

        def get_name(self) -> str:
            return self._name

        def get_num_args(self) -> int:
            return self._num_args

    class xclbin:
        def __init__(self, path: str):
            try:
                meta = json.loads(Path(path).read_text())
                assert meta.get("format") == DOUBLE_XCLBIN
            except (OSError, ValueError, AssertionError, UnicodeDecodeError):
                raise RuntimeError(f"{path}: not an xclbin this test double can load") from None
            self._uuid = meta["uuid"]
            self._kernels = [xclbinkernel(k["name"], k["num_args"]) for k in meta["kernels"]]

        def get_uuid(self) -> uuid:
            return uuid(self._uuid)

        def get_kernels(self) -> list:
            return list(self._kernels)

    class device:
        def __init__(self, index: int = 0):
            if index >= npu.devices:
                raise RuntimeError(f"No such device: {index}")
            self._xclbins: dict[str, xclbin] = {}

        def register_xclbin(self, x: xclbin) -> None:
            self._xclbins[x._uuid] = x
            npu.registered.add(x._uuid)

        def load_xclbin(self, x) -> None:
            raise RuntimeError("load_axlf: Operation not supported")

    class hw_context:
        def __init__(self, dev: device, u: uuid):
            if u.to_string() not in dev._xclbins:
                raise ProtocolError(
                    "hw_context for an xclbin the device has not registered (register_xclbin)"
                )
            with npu._lock:
                if npu.live_contexts >= npu.max_contexts:
                    raise RuntimeError(f"no free hardware context: {npu.max_contexts} in use")
                npu.live_contexts += 1
            self.xclbin = dev._xclbins[u.to_string()]
            self._queue: queue.Queue = queue.Queue()
            self._worker = threading.Thread(target=_execute, args=(self._queue,), daemon=True)
            self._worker.start()
            weakref.finalize(self, _release_context, self._queue)

    class bo:
        flags = BoFlags
        cacheable, host_only, device_only, normal = (
            BoFlags.cacheable,
            BoFlags.host_only,
            BoFlags.device_only,
            BoFlags.normal,
        )

        def __init__(self, dev: device, size: int, flags: BoFlags, group: int):
            if size <= 0:
                raise RuntimeError("bo size must be positive")
            self._size, self._flags, self._group = size, flags, group
            self.host = np.zeros(size, np.uint8)
            self.device = np.zeros(size, np.uint8)
            self.generation = 0  # bumped whenever device memory changes from the host side
            self._dirty: list[tuple[int, int]] = []  # host ranges written, not yet synced
            self._fresh: list[tuple[int, int]] | None = None  # host ranges synced since the last run
            self._in_flight = 0
            npu.bos_created += 1

        def size(self) -> int:
            return self._size

        def _idle(self, what: str) -> None:
            if self._in_flight:
                raise ProtocolError(f"bo {what} while a run that uses it has not completed")

        def write(self, data, seek: int = 0) -> None:
            self._idle("written")
            raw = np.frombuffer(memoryview(data).cast("B"), np.uint8)
            if seek + raw.size > self._size:
                raise RuntimeError("bo write past the end of the buffer")
            self.host[seek : seek + raw.size] = raw
            self._dirty.append((seek, seek + raw.size))

        def read(self, size: int, skip: int = 0) -> np.ndarray:
            self._idle("read")
            if self._fresh is not None and not any(a <= skip and skip + size <= b for a, b in self._fresh):
                raise ProtocolError(
                    "bo read after a run without sync(XCL_BO_SYNC_BO_FROM_DEVICE) of that range"
                )
            return self.host[skip : skip + size].view(np.int8).copy()

        def sync(self, direction: xclBOSyncDirection, size: int | None = None, offset: int = 0) -> None:
            self._idle("synced")
            end = self._size if size is None else offset + size
            npu.syncs[direction] += 1
            if direction is xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
                self.device[offset:end] = self.host[offset:end]
                self.generation += 1
                self._dirty = [r for r in self._dirty if not (offset <= r[0] and r[1] <= end)]
            else:
                self.host[offset:end] = self.device[offset:end]
                if self._fresh is not None:
                    self._fresh.append((offset, end))

    class run:
        def __init__(self):
            self._state = ert_cmd_state.ERT_CMD_STATE_NEW
            self._done = threading.Event()

        def state(self) -> ert_cmd_state:
            return self._state

        def wait(self, timeout_ms: int = 0) -> ert_cmd_state:
            if not self._done.wait(None if timeout_ms == 0 else timeout_ms / 1000):
                return ert_cmd_state.ERT_CMD_STATE_TIMEOUT
            return self._state

    class kernel:
        def __init__(self, ctx: hw_context, name: str):
            match = [k for k in ctx.xclbin.get_kernels() if k.get_name() == name]
            if not match:
                raise RuntimeError(f"No such kernel '{name}' in the xclbin")
            self._ctx, self._name, self._num_args = ctx, name, match[0].get_num_args()

        def group_id(self, arg: int) -> int:
            if arg == INSTS_ARG:
                return 1
            if FIRST_DATA_ARG <= arg < self._num_args:
                return 3
            raise RuntimeError(f"kernel argument {arg} is not a buffer argument")

        def __call__(self, *args) -> run:
            if len(args) != self._num_args:
                raise ProtocolError(f"run with {len(args)} arguments; the xclbin declares {self._num_args}")
            opcode, insts, n_words, *data = args
            if opcode != OPCODE:
                raise ProtocolError(f"opcode {opcode}, expected {OPCODE}")
            if not isinstance(insts, bo) or insts._group != 1 or insts._flags is not BoFlags.cacheable:
                raise ProtocolError("argument 1 must be the instruction bo (group_id(1), cacheable)")
            if n_words * 4 != insts.size():
                raise ProtocolError(f"instruction count {n_words} words; the bo holds {insts.size() // 4}")
            for i, b in enumerate(data):
                if not isinstance(b, bo) or b._group != 3 or b._flags is not BoFlags.host_only:
                    raise ProtocolError(
                        f"argument {FIRST_DATA_ARG + i} must be a host_only bo of group_id(3)"
                    )
            for b in (insts, *data):  # queuing several runs on the same bos is fine
                if b._dirty:
                    raise ProtocolError("run reads a bo whose host writes were not synced TO_DEVICE")
            r = run()
            r._state = ert_cmd_state.ERT_CMD_STATE_QUEUED
            for b in (insts, *data):
                b._in_flight += 1
            npu.runs += 1
            self._ctx._queue.put((r, self._name, insts, data, npu._take_fault()))
            return r

    def _execute(jobs: queue.Queue) -> None:
        while (job := jobs.get()) is not None:
            r, name, insts, data, outcome = job
            r._state = ert_cmd_state.ERT_CMD_STATE_RUNNING
            if outcome is ert_cmd_state.ERT_CMD_STATE_COMPLETED:
                try:
                    npu.program(name, insts.device.view(np.uint32), data)
                except Exception:  # a real device faults on a bad program or bad data
                    outcome = ert_cmd_state.ERT_CMD_STATE_ERROR
            if outcome is None:
                continue  # hung: never completes, and keeps its buffers
            for b in (insts, *data):
                b._in_flight -= 1
            for b in data:
                b._fresh = []  # the device may have written it: the host copy is stale
            r._state = outcome
            r._done.set()

    def _release_context(jobs: queue.Queue) -> None:
        jobs.put(None)
        with npu._lock:
            npu.live_contexts -= 1

    return types.SimpleNamespace(
        device=device,
        xclbin=xclbin,
        hw_context=hw_context,
        kernel=kernel,
        bo=bo,
        run=run,
        uuid=uuid,
        xclBOSyncDirection=xclBOSyncDirection,
        ert_cmd_state=ert_cmd_state,
        __name__="pyxrt (test double)",
    )
