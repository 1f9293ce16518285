"""Run a plan: one worker thread per column, real bounded depth-2 ping-pong buffers between them.

pipeline: channel k (two slots) carries windows from column k-1 (the host for k = 0) to column
  k; column k takes a full slot from channel k, a free slot from channel k+1, runs its ops, then
  frees the one and fills the other. With two slots per channel, column k works on window w
  while column k+1 works on window w-1, and nobody runs more than two windows ahead.
split: all columns take part in every op of one window (their own rows or heads), meeting at a
  barrier after each op; the input and output channels are still ping-pong, so the host stages
  window w+1 while the array computes window w.

The same executor drives any `Backend`: the emulator (below, numpy) or the XRT runtime
(npu/run/xrt.py), which own the buffers and run a task on them.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np

from npustream import log
from npustream.errors import EngineError
from npustream.npu.ops import numerics
from npustream.npu.ops.weights import NpuWeights
from npustream.npu.plan.buffers import ColumnLayouts, Placed, plan_layouts
from npustream.npu.plan.plans import INPUT, Plan, Task
from npustream.npu.run.emulator import prepare_mel, run_op

logger = log.get(__name__)
POLL_S = 0.05  # how often a blocked wait looks for a failure elsewhere
STOP = -1  # the tag that tells a worker to finish


class Backend(Protocol):
    def allocate(self, nbytes: int, what: str) -> object: ...
    def write(self, buffer: object, placed: Placed, bits: np.ndarray) -> None: ...
    def read(self, buffer: object, placed: Placed) -> np.ndarray: ...
    def run(self, column: int, tasks: list[tuple[int, Task]], layouts: ColumnLayouts, buffers: dict) -> None:
        """Run (task number, task) pairs of a column in order; return when all are done."""

    def carry(self, column: int, layouts: ColumnLayouts, buffers: dict) -> None: ...
    def close(self) -> None: ...


class Failure:
    """The first error any thread hit; every blocked wait gives up once it is set."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.where = ""

    def set(self, where: str, error: BaseException) -> None:
        if self.error is None:
            self.error, self.where = error, where

    def check(self) -> None:
        if self.error is not None:
            raise EngineError(f"NPU {self.where} failed: {self.error}") from self.error


class PingPong:
    """Two slots used strictly alternately: the producer fills ping, pong, ping, ...; the
    consumer drains them in the same order. acquire_* block while the other side holds both."""

    def __init__(self, slots: tuple[object, object], name: str, failure: Failure):
        self.slots, self.name, self._failure = slots, name, failure
        self._free = threading.Semaphore(2)
        self._full = threading.Semaphore(0)
        self._tags = [0, 0]
        self._produce = self._consume = 0

    def _wait(self, sem: threading.Semaphore, block: bool) -> bool:
        while not sem.acquire(timeout=POLL_S if block else 0):
            self._failure.check()
            if not block:
                return False
        return True

    def acquire_produce(self, block: bool = True) -> int | None:
        if not self._wait(self._free, block):
            return None
        index, self._produce = self._produce, self._produce ^ 1
        return index

    def release_produce(self, index: int, tag: int) -> None:
        self._tags[index] = tag
        self._full.release()

    def acquire_consume(self) -> tuple[int, int]:
        self._wait(self._full, True)
        index, self._consume = self._consume, self._consume ^ 1
        return index, self._tags[index]

    def release_consume(self, index: int) -> None:
        self._free.release()


class Executor:
    def __init__(self, plan: Plan, backend: Backend):
        self.plan, self.backend = plan, backend
        self.layouts = plan_layouts(plan)
        self.failure = Failure()
        k = len(plan.columns)
        first, last = self.layouts[0], self.layouts[-1]
        if plan.kind.staged:
            # channel c feeds column c; its slots hold the activations live at that cut
            sizes = [self.layouts[c].buffers["in"].nbytes for c in range(k)] + [last.buffers["out"].nbytes]
            self.scratch = [
                backend.allocate(L.buffers["scratch"].nbytes, f"column {c} scratch")
                for c, L in enumerate(self.layouts)
            ]
        else:
            sizes = [first.buffers["in"].nbytes, last.buffers["out"].nbytes]
            self.scratch = [backend.allocate(first.buffers["scratch"].nbytes, "shared scratch")] * k
        self.channels = [
            PingPong(
                tuple(backend.allocate(n, f"channel {c} slot {s}") for s in (0, 1)),
                f"channel {c}",
                self.failure,
            )
            for c, n in enumerate(sizes)
        ]
        # (column, window, start, end) of each column's work on each window, perf_counter seconds:
        # what the bench reports as measured overlap, and the tests check
        self.trace: list[tuple[int, int, float, float]] = []
        self._barrier = None if plan.kind.staged else threading.Barrier(k)
        self._shared: dict = {}
        target = self._stage if plan.kind.staged else self._split_share
        self._threads = [
            threading.Thread(target=self._guard, args=(target, c), name=f"npu-column-{c}", daemon=True)
            for c in range(k)
        ]
        for t in self._threads:
            t.start()

    # --- workers ---------------------------------------------------------------------------

    def _guard(self, target, column: int) -> None:
        try:
            target(column)
        except BaseException as error:  # recorded for the host thread, which raises it
            if self.failure.error is None:
                logger.error("npu.column_failed", column=column, error=str(error))
            self.failure.set(f"column {column}", error)
            if self._barrier is not None:
                self._barrier.abort()

    def _stage(self, column: int) -> None:
        inbox, outbox = self.channels[column], self.channels[column + 1]
        layouts, tasks = self.layouts[column], self.plan.columns[column]
        while True:
            i, tag = inbox.acquire_consume()
            o = outbox.acquire_produce()
            if tag != STOP:
                start = time.perf_counter()
                buffers = {"in": inbox.slots[i], "scratch": self.scratch[column], "out": outbox.slots[o]}
                if layouts.carried:
                    self.backend.carry(column, layouts, buffers)
                self.backend.run(column, list(enumerate(tasks)), layouts, buffers)
                self.trace.append((column, tag, start, time.perf_counter()))
            inbox.release_consume(i)
            outbox.release_produce(o, tag)
            if tag == STOP:
                return

    def _split_share(self, column: int) -> None:
        inbox, outbox = self.channels
        layouts, tasks = self.layouts[column], self.plan.columns[column]
        while True:
            if column == 0:  # column 0 takes the slots for everyone
                i, tag = inbox.acquire_consume()
                o = outbox.acquire_produce()
                self._shared.update(i=i, tag=tag, o=o)
            self._barrier.wait()
            i, o, tag = self._shared["i"], self._shared["o"], self._shared["tag"]
            if tag != STOP:
                start = time.perf_counter()
                buffers = {"in": inbox.slots[i], "scratch": self.scratch[column], "out": outbox.slots[o]}
                for number, task in enumerate(tasks):
                    self.backend.run(column, [(number, task)], layouts, buffers)
                    self._barrier.wait()  # op i+1 may read any rows of op i's output
                self.trace.append((column, tag, start, time.perf_counter()))
            self._barrier.wait()
            if column == 0:
                inbox.release_consume(i)
                outbox.release_produce(o, tag)
            if tag == STOP:
                return

    # --- host side -------------------------------------------------------------------------

    def _feed(self, index: int, mel: np.ndarray, block: bool) -> bool:
        inbox = self.channels[0]
        slot = inbox.acquire_produce(block)
        if slot is None:
            return False
        placed = self.layouts[0].buffers["in"].tensors[INPUT]
        self.backend.write(inbox.slots[slot], placed, numerics.to_bf16_bits(prepare_mel(mel)))
        inbox.release_produce(slot, index)
        return True

    def _collect(self) -> tuple[int, np.ndarray]:
        outbox = self.channels[-1]
        slot, tag = outbox.acquire_consume()
        placed = self.layouts[-1].buffers["out"].tensors[self.plan.ops[-1].name]
        bits = self.backend.read(outbox.slots[slot], placed)
        outbox.release_consume(slot)
        return tag, numerics.from_bf16_bits(bits)

    def encode(self, mels: list[np.ndarray]) -> list[np.ndarray]:
        """Stream the windows through the array; outputs in input order."""
        self.failure.check()
        results: list[np.ndarray | None] = [None] * len(mels)
        pending = 0
        for index, mel in enumerate(mels):
            while not self._feed(index, mel, block=False):  # both input slots full: drain one
                tag, out = self._collect()
                results[tag] = out
                pending -= 1
            pending += 1
        for _ in range(pending):
            tag, out = self._collect()
            results[tag] = out
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self.failure.error is None and any(t.is_alive() for t in self._threads):
            slot = self.channels[0].acquire_produce()
            self.channels[0].release_produce(slot, STOP)
            self._collect_stop()
        for t in self._threads:
            t.join(timeout=5)
        self.backend.close()

    def _collect_stop(self) -> None:
        slot, tag = self.channels[-1].acquire_consume()
        self.channels[-1].release_consume(slot)


# --- the emulator backend -------------------------------------------------------------------


def run_task(task: Task, layouts: ColumnLayouts, buffers: dict[str, np.ndarray], weights: NpuWeights) -> None:
    """Run one task on byte buffers (bf16 bits) with the emulator: read its inputs where the
    layout puts them, write its rows / heads of the output in place. Shared with the pyxrt
    test double, which calls it on device memory."""
    acts = {}
    for name in task.op.inputs:
        role, placed = layouts.place(name)
        acts[name] = numerics.from_bf16_bits(placed.view(buffers[role]))
    out = run_op(task.op, acts, weights, rows=task.rows, heads=task.heads)
    role, placed = layouts.place(task.op.name)
    dest = placed.view(buffers[role])[task.rows]
    if task.heads is not None:
        dh = weights.dims.d_head
        dest = dest[:, task.heads.start * dh : task.heads.stop * dh]
    dest[...] = numerics.to_bf16_bits(out)


def carry(layouts: ColumnLayouts, buffers: dict[str, np.ndarray]) -> None:
    for name in layouts.carried:
        src = layouts.buffers["in"].tensors[name].view(buffers["in"])
        layouts.buffers["out"].tensors[name].view(buffers["out"])[...] = src


class EmulatorBackend:
    """Buffers are numpy byte arrays; a task runs with the emulator's numerics."""

    def __init__(self, weights: NpuWeights):
        self.weights = weights

    def allocate(self, nbytes: int, what: str) -> np.ndarray:
        return np.zeros(nbytes, np.uint8)

    def write(self, buffer: np.ndarray, placed: Placed, bits: np.ndarray) -> None:
        placed.view(buffer)[...] = bits

    def read(self, buffer: np.ndarray, placed: Placed) -> np.ndarray:
        return placed.view(buffer).copy()

    def run(self, column: int, tasks: list[tuple[int, Task]], layouts: ColumnLayouts, buffers: dict) -> None:
        for _, task in tasks:
            run_task(task, layouts, buffers, self.weights)

    def carry(self, column: int, layouts: ColumnLayouts, buffers: dict) -> None:
        carry(layouts, buffers)

    def close(self) -> None:
        pass
