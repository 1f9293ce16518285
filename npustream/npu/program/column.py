"""A column's program for one XRT run, as data: the runtime sequence (the instruction stream)
that drives the column's shim and mem-tile DMAs and releases its cores phase by phase.
runs.py fills it op by op (phases.py and the op modules); tests/tools/dma_sim.py executes it;
mlir/iron_sequence.py expresses it as an IRON runtime sequence (lock sets, descriptor writes,
DMA task chains with their BD ids, awaits).

Units: addresses, sizes and strides count 32-bit words (the DMA's granularity), sizes and
strides outermost first, at most 3 dimensions plus the iteration (which moves a BD's base by
`stride` words on each use, wrapping after `size` uses, starting at `current`).

A phase = reset the mem tile's ring locks, write the 4 cores' descriptors (npu/program/core.py),
release the cores, then push the phase's DMA tasks unit by unit and await them all. The
sequencer keeps the hardware's limits: at most 4 tasks queued per channel, 16 BDs per shim tile,
48 per mem tile (BDs 0-23 for even channels, 24-47 for odd ones), and awaits a channel's tasks
in the order they were pushed (each await consumes that channel's next completion token).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from npustream.npu.plan.design import MEM_MM2S, MEM_S2MM, SHIM_MM2S, SHIM_S2MM

WORD = 4
QUEUE_DEPTH = 4
SHIM_BDS = 16
MEM_BDS_PER_PARITY = 24
MAX_REPEAT = 255  # a task runs its BD chain repeat + 1 times
MAX_ITERATION = 64
MAX_WRAP = {"shim": 1023, "mem": 1023}
MAX_STRIDE = {"shim": 1 << 20, "mem": 1 << 17}
MAX_LENGTH = {"shim": (1 << 32) - 1, "mem": (1 << 17) - 1}  # words per BD use
MAX_LOCK_VALUE = 63


@dataclass(frozen=True)
class LockOp:
    lock: str  # "<ring>.prod" / "<ring>.cons"
    value: int


@dataclass(frozen=True)
class Bd:
    buffer: str  # shim: "in", "scratch", "out", "weights" (DDR); mem tile: "mem"
    offset: int  # words
    sizes: tuple[int, ...]  # words, outermost first
    strides: tuple[int, ...]
    iteration: tuple[int, int, int] = (1, 0, 0)  # (size, stride, current)
    acquire: LockOp | None = None  # acquire-greater-equal, then subtract
    release: LockOp | None = None

    @property
    def length(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n

    def advanced(self, uses: int) -> Bd:
        """This BD as it stands after `uses` uses (its iteration moved on)."""
        size, stride, current = self.iteration
        return Bd(
            self.buffer,
            self.offset,
            self.sizes,
            self.strides,
            (size, stride, (current + uses) % size),
            self.acquire,
            self.release,
        )


@dataclass(frozen=True)
class DmaTask:
    tile: str  # "shim" | "mem"
    direction: str  # "MM2S" (memory to stream) | "S2MM"
    channel: str  # a name of column_design's channel tables
    bds: tuple[Bd, ...]  # a chain
    repeat: int = 0

    @property
    def channel_index(self) -> int:
        table = {
            ("shim", "MM2S"): SHIM_MM2S,
            ("shim", "S2MM"): SHIM_S2MM,
            ("mem", "MM2S"): MEM_MM2S,
            ("mem", "S2MM"): MEM_S2MM,
        }[(self.tile, self.direction)]
        return table.index(self.channel)

    @property
    def queue(self) -> tuple[str, str, str]:
        return self.tile, self.direction, self.channel


def split_runs(task: DmaTask) -> list[DmaTask]:
    """A task whose chain runs more often than one task can repeat, as consecutive tasks."""
    runs, out, done = task.repeat + 1, [], 0
    while done < runs:
        count = min(runs - done, MAX_REPEAT + 1)
        out.append(
            DmaTask(
                task.tile,
                task.direction,
                task.channel,
                tuple(bd.advanced(done) for bd in task.bds),
                count - 1,
            )
        )
        done += count
    return out


# --- runtime-sequence operations -------------------------------------------------------------


@dataclass(frozen=True)
class SetLock:
    lock: str  # mem-tile ring lock, or "core<c>.go"
    value: int


@dataclass(frozen=True)
class WriteDescriptor:
    core: int
    values: tuple[int, ...]


@dataclass(frozen=True)
class Push:
    """Configure a task's BDs (with the given BD ids) and start it, issuing a completion token."""

    task: int  # index into ColumnRun.tasks
    bd_ids: tuple[int, ...]


@dataclass(frozen=True)
class Await:
    task: int


@dataclass
class ColumnRun:
    tasks: list[DmaTask] = field(default_factory=list)
    ops: list = field(default_factory=list)  # SetLock | WriteDescriptor | Push | Await
    phases: list[str] = field(default_factory=list)  # what each phase is, for messages


@dataclass
class Unit:
    """Tasks pushed together. `long` tasks run for the whole unit (they may only be awaited once
    the unit is pushed); `steps` are short groups of tasks pushed in order, each depending only on
    the long tasks and earlier steps, on channels no long task of the unit uses."""

    long: list[DmaTask]
    steps: list[list[DmaTask]] = field(default_factory=list)


class Sequencer:
    """Orders pushes and awaits within the hardware's limits. When a queue or a BD pool is full
    it awaits the oldest task that can finish without anything not yet pushed: a step's task, or
    a long task of an earlier unit."""

    def __init__(self, run: ColumnRun):
        self.run = run
        self.outstanding: deque[int] = deque()  # pushed, not awaited, in push order
        self.bd_owner: dict[tuple[str, int], int] = {}  # (pool, bd id) -> task
        self.pinned: set[int] = set()  # long tasks of the unit being pushed

    def _pool(self, task: DmaTask) -> tuple[str, range]:
        if task.tile == "shim":
            return "shim", range(SHIM_BDS)
        parity = task.channel_index % 2
        return f"mem{parity}", range(parity * MEM_BDS_PER_PARITY, (parity + 1) * MEM_BDS_PER_PARITY)

    def _await(self, index: int) -> None:
        """Await `index` and, first, every earlier task of its channel (tokens come in order)."""
        queue = self.run.tasks[index].queue
        for earlier in [t for t in self.outstanding if self.run.tasks[t].queue == queue]:
            if earlier in self.pinned:
                raise ValueError(f"the column program would wait for a long task of {queue} behind its unit")
            self.outstanding.remove(earlier)
            self.run.ops.append(Await(earlier))
            self.bd_owner = {k: v for k, v in self.bd_owner.items() if v != earlier}
            if earlier == index:
                return

    def _await_some(self, candidates: list[int], what: str) -> None:
        free = [
            t
            for t in candidates
            if not any(
                p in self.pinned and p <= t and self.run.tasks[p].queue == self.run.tasks[t].queue
                for p in self.outstanding
            )
        ]
        if not free:
            raise ValueError(f"the column program needs more than the hardware has: {what}")
        self._await(free[0])

    def push(self, task: DmaTask, *, long: bool = False) -> None:
        check_task(task)
        index = len(self.run.tasks)
        self.run.tasks.append(task)
        pool, ids = self._pool(task)
        while sum(self.run.tasks[t].queue == task.queue for t in self.outstanding) >= QUEUE_DEPTH:
            self._await_some(
                [t for t in self.outstanding if self.run.tasks[t].queue == task.queue],
                f"more than {QUEUE_DEPTH} tasks queued on {task.queue}",
            )
        while len([i for i in ids if (pool, i) not in self.bd_owner]) < len(task.bds):
            holders = [
                t for t in self.outstanding if any(v == t for (p, _), v in self.bd_owner.items() if p == pool)
            ]
            self._await_some(holders, f"{len(task.bds)} more BDs of the {pool} pool ({len(ids)})")
        bd_ids = tuple([i for i in ids if (pool, i) not in self.bd_owner][: len(task.bds)])
        for i in bd_ids:
            self.bd_owner[(pool, i)] = index
        self.outstanding.append(index)
        if long:
            self.pinned.add(index)
        self.run.ops.append(Push(index, bd_ids))

    def unit(self, unit: Unit) -> None:
        for task in unit.long:
            for part in split_runs(task):
                self.push(part, long=True)
        for step in unit.steps:
            for task in step:
                for part in split_runs(task):
                    self.push(part)
        self.pinned.clear()

    def drain(self) -> None:
        while self.outstanding:
            self._await(self.outstanding[0])


def check_task(task: DmaTask) -> None:
    """ValueError naming the first field outside what a Phoenix BD or task can hold."""
    if not task.bds:
        raise ValueError(f"{task.channel}: a task without BDs")
    if not 0 <= task.repeat <= MAX_REPEAT:
        raise ValueError(f"{task.channel}: repeat {task.repeat} outside 0..{MAX_REPEAT}")
    kind = task.tile
    for bd in task.bds:
        where = f"{task.tile} {task.direction} {task.channel} BD {bd}"
        if not 1 <= len(bd.sizes) <= 3 or len(bd.sizes) != len(bd.strides):
            raise ValueError(f"{where}: 1 to 3 dimensions")
        linear = len(bd.sizes) == 1 and bd.strides[-1] == 1
        wrapped = bd.sizes if kind == "mem" else bd.sizes[1:]  # the shim's outer size is implicit
        if not linear and any(s > MAX_WRAP[kind] for s in wrapped):
            raise ValueError(f"{where}: sizes above {MAX_WRAP[kind]}")
        if any(st > MAX_STRIDE[kind] or st < 1 for s, st in zip(bd.sizes, bd.strides) if s > 1):
            raise ValueError(f"{where}: strides outside 1..{MAX_STRIDE[kind]}")
        if bd.length > MAX_LENGTH[kind]:
            raise ValueError(f"{where}: {bd.length} words in one use, at most {MAX_LENGTH[kind]}")
        size, stride, current = bd.iteration
        if not (1 <= size <= MAX_ITERATION and 0 <= current < size and 0 <= stride <= MAX_STRIDE[kind]):
            raise ValueError(f"{where}: iteration {bd.iteration}")
        for lock in (bd.acquire, bd.release):
            if lock is not None and not 0 < lock.value <= MAX_LOCK_VALUE:
                raise ValueError(f"{where}: lock value {lock.value}")
        if (bd.acquire is None) != (bd.release is None):
            raise ValueError(f"{where}: a BD takes both an acquire and a release, or neither")
        if kind == "shim" and (bd.acquire or bd.buffer == "mem"):
            raise ValueError(f"{where}: shim BDs move DDR buffers, without locks")
        if kind == "mem" and bd.buffer != "mem":
            raise ValueError(f"{where}: mem-tile BDs move mem-tile memory")
