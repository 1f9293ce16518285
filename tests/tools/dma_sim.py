"""A functional simulator of one column running a column program (npu/program/column.py): the shim
and mem-tile DMA channels execute their tasks BD by BD (address patterns, iteration, repeat,
locks with the hardware's acquire-greater-equal semantics), streams carry the words with bounded
buffering, the 4 cores' static ping-pong DMAs fill and drain their FIFOs, and the cores run the
core program (npu/program/core.py), calling the very glue the AIE build links (mlir/column_glue.cc)
on the kernels' portable C++ paths (tests/tools/host_kernels.py). Nothing here is timed: it checks that the
program moves the right words to the right places, in an order that cannot deadlock even with
small stream buffers, within the hardware's limits.

It is a test instrument for the design that mlir/ builds, not a model of the hardware's speed.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from npustream.npu.plan.buffers import column_weight_names, pack_weights
from npustream.npu.plan.design import FLOWS, core_buffers
from npustream.npu.program import core as cp
from npustream.npu.program.column import (
    WORD,
    Await,
    ColumnRun,
    Push,
    SetLock,
    WriteDescriptor,
)
from npustream.npu.program.runs import column_run
from npustream.npu.run.executor import EmulatorBackend, Executor
from tools.dma_sim_kernels import Kernels

STREAM_WORDS = 64  # words a stream link buffers before the sender waits (stream FIFOs are small)
MEM_WORDS = 512 * 1024 // WORD


class Deadlock(RuntimeError):
    pass


class Link:
    def __init__(self):
        self.chunks: deque[np.ndarray] = deque()
        self.words = 0

    def free(self) -> int:
        return STREAM_WORDS - self.words

    def push(self, data: np.ndarray) -> None:
        self.chunks.append(data)
        self.words += data.size

    def pull(self, count: int) -> np.ndarray:
        out, need = [], min(count, self.words)
        while need:
            head = self.chunks[0]
            take = head[:need]
            out.append(take)
            if take.size == head.size:
                self.chunks.popleft()
            else:
                self.chunks[0] = head[need:]
            need -= take.size
            self.words -= take.size
        return np.concatenate(out) if out else np.zeros(0, np.uint32)


def _indices(bd, use: int) -> np.ndarray:
    size, stride, current = bd.iteration
    idx = np.array([bd.offset + ((current + use) % size) * stride], np.int64)
    for s, st in zip(bd.sizes, bd.strides):
        idx = (idx[:, None] + np.arange(s, dtype=np.int64) * st).reshape(-1)
    return idx


class Channel:
    """A shim or mem-tile DMA channel running the tasks pushed to it, in order."""

    def __init__(self, sim, tile: str, direction: str, name: str):
        self.sim, self.tile, self.direction, self.name = sim, tile, direction, name
        self.queue: deque[int] = deque()
        self.state = None  # (task, rep, bd, indices, done words, acquired)
        self.uses: dict[int, int] = {}  # BD position in chain -> uses so far (per task)

    def _memory(self, bd) -> np.ndarray:
        return self.sim.mem if bd.buffer == "mem" else self.sim.ddr[bd.buffer]

    def step(self) -> bool:
        if self.state is None:
            if not self.queue:
                return False
            self.state = [self.queue[0], 0, 0, None, 0, False]
            self.uses = {}
        index, rep, b, idx, done, acquired = self.state
        task = self.sim.run.tasks[index]
        bd = task.bds[b]
        if not acquired:
            if bd.acquire and not self.sim.acquire(bd.acquire.lock, bd.acquire.value):
                return False
            idx = _indices(bd, self.uses.get(b, 0))
            memory = self._memory(bd)
            if idx.size and (idx.min() < 0 or idx.max() >= memory.size):
                raise IndexError(
                    f"{self.tile} {self.direction} {self.name}: BD {bd} reaches outside {bd.buffer}"
                )
            self.state[3:6] = [idx, 0, True]
            return True
        memory = self._memory(bd)
        links = (
            self.sim.links_from[(self.tile, self.name)]
            if self.direction == "MM2S"
            else [self.sim.link_to[(self.tile, self.name)]]
        )
        if self.direction == "MM2S":
            count = min(idx.size - done, *(link.free() for link in links))
            if count <= 0:
                return False
            data = memory[idx[done : done + count]]
            for link in links:
                link.push(data)
        else:
            data = links[0].pull(idx.size - done)
            if data.size == 0:
                return False
            memory[idx[done : done + data.size]] = data
            count = data.size
        done += count
        self.state[4] = done
        if done == idx.size:
            if bd.release:
                self.sim.release(bd.release.lock, bd.release.value)
            self.uses[b] = self.uses.get(b, 0) + 1
            b += 1
            if b == len(task.bds):
                b, rep = 0, rep + 1
            if rep > task.repeat:
                self.sim.completed.add(self.queue.popleft())
                self.state = None
            else:
                self.state = [index, rep, b, None, 0, False]
        return True


class CoreDma:
    """A compute tile's static ping-pong DMA of one FIFO: object after object, forever."""

    def __init__(self, sim, core: int, fifo: str, words: int):
        self.sim, self.core, self.fifo, self.words = sim, core, fifo, words
        self.buffer = np.zeros((2, words), np.uint32)
        self.index, self.done, self.holding = 0, 0, False
        inbound = fifo != "out"
        self.take, self.give = (f"core{core}.{fifo}.prod", f"core{core}.{fifo}.cons")[:: 1 if inbound else -1]

    def step(self) -> bool:
        if not self.holding:
            if not self.sim.acquire(self.take, 1):
                return False
            self.holding, self.done = True, 0
        if self.fifo == "out":
            links = self.sim.links_from[(f"core{self.core}", "out")]
            count = min(self.words - self.done, *(link.free() for link in links))
            if count <= 0:
                return False
            for link in links:
                link.push(self.buffer[self.index, self.done : self.done + count].copy())
        else:
            data = self.sim.link_to[(f"core{self.core}", self.fifo)].pull(self.words - self.done)
            if data.size == 0:
                return False
            self.buffer[self.index, self.done : self.done + data.size] = data
            count = data.size
        self.done += count
        if self.done == self.words:
            self.sim.release(self.give, 1)
            self.holding, self.index = False, self.index ^ 1
        return True


class Core:
    """A compute tile running the core program phase after phase."""

    def __init__(self, sim, core: int):
        self.sim, self.core = sim, core
        self.fifos = {f: sim.core_dma[(core, f)] for f in cp.FIFOS}
        self.acq = dict.fromkeys(cp.FIFOS, 0)
        self.rel = dict.fromkeys(cp.FIFOS, 0)
        self.scratch = np.zeros(core_buffers(sim.plan.dims, sim.plan.tiles).scratch // 4, np.float32)
        self.phases = 0
        self.program = self._forever()

    def step(self) -> bool:
        return next(self.program)

    def _forever(self):
        while True:
            while not self.sim.acquire(f"core{self.core}.go", 1):
                yield False
            desc = dict(zip(cp.FIELDS, self.sim.descriptors[self.core]))
            yield from self._run(cp.PHASE, desc)
            self.phases += 1
            yield True

    def _lock(self, fifo: str, acquire: bool) -> str:
        inbound = fifo != "out"
        return f"core{self.core}.{fifo}." + ("cons" if inbound == acquire else "prod")

    def _run(self, nodes, desc):
        for node in nodes:
            if isinstance(node, cp.Acquire):
                while not self.sim.acquire(self._lock(node.fifo, True), 1):
                    yield False
                self.acq[node.fifo] += 1
            elif isinstance(node, cp.Release):
                self.sim.release(self._lock(node.fifo, False), 1)
                self.rel[node.fifo] += 1
            elif isinstance(node, cp.Skip):
                for _ in range(desc[node.count] if isinstance(node.count, str) else node.count):
                    yield from self._run((cp.Acquire(node.fifo), cp.Release(node.fifo)), desc)
            elif isinstance(node, cp.Loop):
                for _ in range(desc[node.count]):
                    yield from self._run(node.body, desc)
            elif isinstance(node, cp.If):
                yield from self._run(node.then if desc[node.flag] else node.orelse, desc)
            else:
                self.sim.kernels.call(self, node, desc)
                yield True


class ColumnSim:
    def __init__(self, plan, run: ColumnRun, ddr: dict[str, np.ndarray]):
        """`ddr`: the run's buffers by kernel argument ("in", "scratch", "out", "weights"), uint8
        arrays the simulation reads and writes in place."""
        self.plan, self.run = plan, run
        self.ddr = {role: buf.view(np.uint32) for role, buf in ddr.items()}
        self.mem = np.zeros(MEM_WORDS, np.uint32)
        self.locks: dict[str, int] = {}
        self.descriptors = [tuple([0] * len(cp.FIELDS))] * 4
        self.completed: set[int] = set()
        self.links_from = {src: [] for src in FLOWS}
        self.link_to = {}
        for src, dests in FLOWS.items():
            for dest in dests:
                link = Link()
                self.links_from[src].append(link)
                self.link_to[dest] = link
        cb = core_buffers(plan.dims, plan.tiles)
        self.core_dma = {}
        for c in range(4):
            for fifo, nbytes in (("in0", cb.in0), ("in1", cb.in1), ("out", cb.out)):
                self.core_dma[(c, fifo)] = CoreDma(self, c, fifo, nbytes // WORD)
                self.locks[f"core{c}.{fifo}.prod"], self.locks[f"core{c}.{fifo}.cons"] = 2, 0
            self.locks[f"core{c}.go"] = 0
        self.kernels = Kernels(plan)
        self.cores = [Core(self, c) for c in range(4)]
        self.channels = {
            (tile, d, name): Channel(self, tile, d, name)
            for tile, d, names in (
                ("shim", "MM2S", ("a", "b")),
                ("shim", "S2MM", ("o",)),
                ("mem", "S2MM", ("a", "b", "o0", "o1", "o2", "o3")),
                ("mem", "MM2S", ("a0", "a1", "b", "o")),
            )
            for name in names
        }
        self.next_op = 0
        self.in_use: dict[tuple[str, int], int] = {}

    def acquire(self, lock: str, value: int) -> bool:
        if self.locks.get(lock, 0) >= value:
            self.locks[lock] -= value
            return True
        return False

    def release(self, lock: str, value: int) -> None:
        self.locks[lock] = self.locks.get(lock, 0) + value
        if self.locks[lock] > 63:
            raise RuntimeError(f"lock {lock} overflows: {self.locks[lock]}")

    def _sequence(self) -> bool:
        """Execute runtime-sequence operations until one has to wait."""
        progressed = False
        while self.next_op < len(self.run.ops):
            op = self.run.ops[self.next_op]
            if isinstance(op, Await):
                if op.task not in self.completed:
                    return progressed
            elif isinstance(op, Push):
                task = self.run.tasks[op.task]
                channel = self.channels[task.queue]
                if len(channel.queue) >= 4:
                    raise RuntimeError(f"task queue of {task.queue} overflows")
                pool = "shim" if task.tile == "shim" else "mem"
                for bd in op.bd_ids:
                    owner = self.in_use.get((pool, bd))
                    if owner is not None and owner not in self.completed:
                        raise RuntimeError(
                            f"BD {bd} of the {pool} tile is rewritten while task {owner} uses it"
                        )
                    self.in_use[(pool, bd)] = op.task
                channel.queue.append(op.task)
            elif isinstance(op, SetLock):
                if not 0 <= op.value <= 63:
                    raise RuntimeError(f"set_lock {op.lock} to {op.value}")
                self.locks[op.lock] = op.value
            elif isinstance(op, WriteDescriptor):
                self.descriptors[op.core] = op.values
            self.next_op += 1
            progressed = True
        return progressed

    def run_to_end(self, max_rounds: int = 50_000_000) -> None:
        actors = [*self.channels.values(), *self.core_dma.values(), *self.cores]
        for _ in range(max_rounds):
            progressed = self._sequence()
            for actor in actors:
                while actor.step():
                    progressed = True
            if self.next_op == len(self.run.ops) and all(
                not c.queue and c.state is None for c in self.channels.values()
            ):
                return
            if not progressed:
                waiting = {
                    k: (list(c.queue), c.state[2] if c.state else None)
                    for k, c in self.channels.items()
                    if c.queue
                }
                raise Deadlock(
                    f"no progress at runtime op {self.next_op} of {len(self.run.ops)} "
                    f"({self.run.ops[self.next_op] if self.next_op < len(self.run.ops) else 'end'}); "
                    f"busy channels {waiting}; locks {self.locks}"
                )
        raise Deadlock("the simulation did not finish")


class DmaSimBackend(EmulatorBackend):
    """The executor's backend that runs each XRT run's column program in the DMA simulator,
    with the kernels' portable C++ paths on the cores: the same buffers, input and output
    paths as the emulator and XRT backends (npustream.npu.run.executor), only the runs differ."""

    def __init__(self, plan, weights):
        super().__init__(weights)
        self.plan = plan
        self.blobs = [
            pack_weights(weights, column_weight_names(plan, c, weights)) for c in range(len(plan.columns))
        ]

    def run(self, column: int, tasks: list, layouts, buffers: dict) -> None:
        blob, table = self.blobs[column]
        program = column_run(self.plan, column, [number for number, _ in tasks], layouts, table)
        ColumnSim(self.plan, program, {**buffers, "weights": blob}).run_to_end()


def simulate_window(plan, weights, mel: np.ndarray) -> np.ndarray:
    """One window through the plan's column programs on the DMA simulator: the encoder output,
    as the NPU would compute it."""
    executor = Executor(plan, DmaSimBackend(plan, weights))
    try:
        return executor.encode([mel])[0]
    finally:
        executor.close()
