"""Each op share as phases of the column program (npu/program/column.py): the cores' descriptors and
the DMA tasks, unit by unit, that move exactly the bytes the timing model counts (dataflows in
npu/plan/design.py, object orders in npu/program/core.py). This module has what the op kinds share;
npu/program/matmul.py, npu/program/attention.py and npu/program/layernorm.py the ops themselves.

Layout transforms happen on the way: the shim reads a tile column-block-major (8 or 4 columns at
a time down all its rows) and the mem tile writes it into (4 x 8), (8 x 4) or (4 x 4) blocks
(npu/ops/blocking.py); outputs go the other way. Mem-tile rings (column_design.memtile_rings) count
units: half an in0 object on the row streams (so a K|V object is written as a K and a V unit),
one object on the broadcast ring, one output object per core ring (a matmul core's two output
tiles fill two units, interleaved as one 64 x 64 tile so one BD can read them out).
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.npu.plan.buffers import ColumnLayouts
from npustream.npu.plan.design import core_buffers, memtile_rings
from npustream.npu.plan.plans import Plan, Task
from npustream.npu.program.column import WORD, Bd, DmaTask, LockOp, Unit

BF16 = 2


@dataclass
class Phase:
    what: str
    descriptors: list[tuple[int, ...]]  # per core
    units: list[Unit]  # pushed in order; a unit depends on nothing later


class Rings:
    """Where the next unit of each mem-tile ring is (reset at every phase)."""

    def __init__(self, plan: Plan):
        self.rings = memtile_rings(plan.dims, plan.tiles)
        cb = core_buffers(plan.dims, plan.tiles)
        self.unit = {"a0": cb.in0 // 2, "a1": cb.in0 // 2, "b": cb.in1} | {f"o{c}": cb.out for c in range(4)}
        self.units = {name: r.nbytes // self.unit[name] for name, r in self.rings.items()}
        self.reset()

    def reset(self) -> None:
        self.pos = dict.fromkeys(self.rings, 0)

    def start(self, ring: str) -> int:
        return self.rings[ring].offset // WORD

    def words(self, ring: str) -> int:
        return self.unit[ring] // WORD

    def bd(
        self,
        ring: str,
        sizes,
        strides,
        *,
        per_use: int,
        writer: bool,
        first: int = 0,
        shift: int = 0,
        lock: int | None = None,
    ) -> Bd:
        """A BD stepping `per_use` units of `ring` per use (its lock counts `lock` units, by
        default the same), starting `first` units after the ring's position, `shift` words in."""
        units = self.units[ring]
        start = (self.pos[ring] + first) % units
        if start % per_use:
            raise ValueError(f"ring {ring}: a {per_use}-unit object at unit {start}")
        lock = per_use if lock is None else lock
        locks = (LockOp(f"{ring}.prod", lock), LockOp(f"{ring}.cons", lock))
        acquire, release = locks if writer else locks[::-1]
        return Bd(
            "mem",
            self.start(ring) + shift,
            tuple(sizes),
            tuple(strides),
            (units // per_use, per_use * self.words(ring), start // per_use),
            acquire,
            release,
        )

    def advance(self, ring: str, units: int) -> None:
        self.pos[ring] = (self.pos[ring] + units) % self.units[ring]


class Ctx:
    def __init__(self, plan: Plan, task: Task, layouts: ColumnLayouts, table: dict):
        self.plan, self.task, self.layouts, self.table = plan, task, layouts, table
        self.dims, self.t = plan.dims, plan.tiles
        self.cb = core_buffers(plan.dims, plan.tiles)
        self.rings = Rings(plan)

    def act(self, name: str, row: int, col: int) -> tuple[str, int, int]:
        """(buffer, word offset of element [row, col], row stride in words) of an activation;
        row may be -front (the reserved zero rows)."""
        role, p = self.layouts.place(name)
        return role, (p.offset + (row * p.cols + col) * BF16) // WORD, p.cols * BF16 // WORD

    def weights(self, name: str) -> int:
        return self.table[name][0] // WORD


def shim_tile(
    buffer: str, offset: int, row_words: int, rows: int, block_cols: int, cols: int, *, iteration=(1, 0, 0)
) -> Bd:
    """Read (or write) a rows x cols bf16 tile column block by column block: the stream order
    the mem tile turns into (or out of) blocks of `block_cols` columns."""
    w = block_cols * BF16 // WORD
    return Bd(buffer, offset, (cols // block_cols, rows, w), (w, row_words, 1), iteration)


def blocked(rows: int, cols: int, br: int, bc: int) -> tuple[tuple, tuple]:
    """Mem-tile (sizes, strides) writing a column-block-major stream into br x bc blocks, or
    reading blocks out in that order (only the first `rows` rows)."""
    block = br * bc * BF16 // WORD
    return (cols // bc, rows // br, block), (block, cols // bc * block, 1)


def object_read(rings: Rings, ring: str) -> Bd:
    """Read whole core-side objects out of a row-stream ring (2 units) or the broadcast ring."""
    per = 1 if ring == "b" else 2
    return rings.bd(ring, (per * rings.words(ring),), (1,), per_use=per, writer=False)


def broadcast(rings: Rings, source: Bd, sizes, strides, count: int) -> list[DmaTask]:
    """`count` objects from DDR (`source`, the shim's side) through the broadcast ring, written
    into its slots with (sizes, strides)."""
    tasks = [
        DmaTask("shim", "MM2S", "b", (source,)),
        DmaTask("mem", "S2MM", "b", (rings.bd("b", sizes, strides, per_use=1, writer=True),), count - 1),
        DmaTask("mem", "MM2S", "b", (object_read(rings, "b"),), count - 1),
    ]
    rings.advance("b", count)
    return tasks


def output_ring_write(rings: Rings, core: int, count: int) -> DmaTask:
    """The mem tile takes `count` whole output objects from `core` into its output ring."""
    ring = f"o{core}"
    bd = rings.bd(ring, (rings.words(ring),), (1,), per_use=1, writer=True)
    return DmaTask("mem", "S2MM", ring, (bd,), count - 1)
