"""The column device in IRON: tiles, buffers, locks, flows, the cores' static DMA programs and
the Workers. Everything comes from npustream/npu/plan/design.py (buffers, rings, channels),
npustream/npu/plan/design.py's FLOWS (the routes the DMA simulator checks) and npu/program/core.py (through
iron_core.py). The per-run part, the runtime sequence, is iron_sequence.py.

Core-side FIFOs: depth 2 everywhere (column_design.FIFO_SLOTS). They are spelled out as one
Buffer of two objects, a counting Lock pair and a TileDma channel of two Bds (ping, pong) rather
than as ObjectFifos, because their other end is not an ObjectFifo end: the mem tile's side of
every route is a ring whose BDs the runtime sequence programs per op (tile_dma_chain), and one
core program takes objects of every op kind out of the same buffers (core_program.Held picks
the object by index), which the glue (column_glue.cc) receives as (buffer, index).

The ring is the mem tile's only Buffer, one for every ring of column_design.memtile_rings: the
column programs' offsets are offsets into it (a BD addresses its buffer plus an offset), so
where the allocator places it does not matter, only that it fits (the resource checker).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from aie.dialects._aie_enum_gen import AIETileType, DMAChannelDir
from aie.iron import (
    Acquire,
    Bd,
    Buffer,
    DmaChannel,
    Flow,
    Kernel,
    Lock,
    Release,
    TileDma,
    Worker,
)
from aie.iron.device import Tile

from npustream.npu.plan import design as cd
from npustream.npu.plan.design import FLOWS
from npustream.npu.program import core as cp
from npustream.npu.program.column import WORD

OBJECT = "column_kernels.o"  # the kernels and the glue, linked by build.py
COLUMN = 0  # the design is placed on one column; XRT picks the physical column per context


def words(n: int) -> type[np.ndarray]:
    return np.ndarray[(n,), np.dtype[np.int32]]


@dataclass
class Column:
    """The column's IRON objects, by the names the descriptions use."""

    shim: Tile
    mem: Tile
    cores: list[Tile]
    ring: Buffer  # the mem tile's memory: every ring of column_design.memtile_rings
    mem_locks: dict[str, Lock]  # "<ring>.prod" / ".cons" / "a<r>.hold"
    fifos: list[dict[str, Buffer]]  # per core: in0, in1, out (two objects each)
    fifo_locks: list[dict[str, tuple[Lock, Lock]]]  # per core and FIFO: (prod, cons)
    scratch: list[Buffer]
    descriptors: list[Buffer]  # the runtime parameters the sequence writes (core_program.FIELDS)
    counters: list[Buffer]  # per FIFO an acquire and a release count
    go: list[Lock]
    kernels: dict[str, Kernel]  # the glue's entry points (core_program.GLUE)
    flows: dict[tuple[str, str], Flow] = field(default_factory=dict)  # by source (tile, channel)
    tile_dmas: list[TileDma] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)


def channel_index(tile: str, direction: str, channel: str) -> int:
    """A channel's hardware index on its tile (column_design's channel tables)."""
    if tile == "shim":
        table = cd.SHIM_MM2S if direction == "MM2S" else cd.SHIM_S2MM
    elif tile == "mem":
        table = cd.MEM_MM2S if direction == "MM2S" else cd.MEM_S2MM
    else:
        table = cd.CORE_MM2S if direction == "MM2S" else cd.CORE_S2MM
    return table.index(channel)


def build_column(plan) -> Column:
    from mlir.iron_core import core_body, worker_args

    dims, tiles = plan.dims, plan.tiles
    cb = cd.core_buffers(dims, tiles)
    shim = Tile(col=COLUMN, row=0, tile_type=AIETileType.ShimNOCTile)
    mem = Tile(col=COLUMN, row=1, tile_type=AIETileType.MemTile)
    cores = [
        Tile(col=COLUMN, row=2 + c, tile_type=AIETileType.CoreTile) for c in range(cd.tiles_per_column())
    ]
    ring = Buffer(tile=mem, type=words(cd.memtile_bytes(dims, tiles) // WORD), name="ring")
    mem_locks = {
        name: Lock(mem, lock_id=i, init=0, name=name.replace(".", "_"))  # set per phase
        for i, name in enumerate(cd.memtile_locks(dims, tiles))
    }
    sizes = {"in0": cb.in0, "in1": cb.in1, "out": cb.out}
    fifos, fifo_locks, scratch, descriptors, counters, go = [], [], [], [], [], []
    for c, tile in enumerate(cores):
        fifos.append(
            {
                f: Buffer(tile=tile, type=words(cd.FIFO_SLOTS * sizes[f] // WORD), name=f"{f}_c{c}")
                for f in cp.FIFOS
            }
        )
        # an inbound FIFO starts with both objects free for the DMA, the outbound one for the core
        fifo_locks.append(
            {
                f: (
                    Lock(tile, lock_id=2 * i, init=cd.FIFO_SLOTS, name=f"{f}_prod_c{c}"),
                    Lock(tile, lock_id=2 * i + 1, init=0, name=f"{f}_cons_c{c}"),
                )
                for i, f in enumerate(cp.FIFOS)
            }
        )
        scratch.append(
            Buffer(tile=tile, type=np.ndarray[(cb.scratch // 4,), np.dtype[np.float32]], name=f"scratch_c{c}")
        )
        descriptors.append(
            Buffer(tile=tile, type=words(len(cp.FIELDS)), name=f"desc_c{c}", use_write_rtp=True)
        )
        counters.append(Buffer(tile=tile, type=words(2 * len(cp.FIFOS)), name=f"count_c{c}"))
        go.append(Lock(tile, lock_id=2 * len(cp.FIFOS), init=0, name=f"go_c{c}"))
    kernels = {
        name: Kernel(name, OBJECT, [_arg_type(p, cb.scratch, sizes) for p in params])
        for name, params in cp.GLUE.items()
    }
    column = Column(
        shim, mem, cores, ring, mem_locks, fifos, fifo_locks, scratch, descriptors, counters, go, kernels
    )
    _flows(column)
    for c, tile in enumerate(cores):
        column.tile_dmas.append(_core_dma(column, c, sizes))
        column.workers.append(
            Worker(core_body(plan), fn_args=worker_args(column, c), tile=tile, while_true=False)
        )
    return column


def _arg_type(param: str, scratch_bytes: int, sizes: dict[str, int]):
    if param == "scratch":
        return np.ndarray[(scratch_bytes // 4,), np.dtype[np.float32]]
    if param in cp.FIFOS:
        return words(cd.FIFO_SLOTS * sizes[param] // WORD)
    return np.int32


def _tile(column: Column, name: str) -> Tile:
    return column.shim if name == "shim" else column.mem if name == "mem" else column.cores[int(name[4:])]


def _flows(column: Column) -> None:
    """One Flow per source channel of design.FLOWS; several destinations are a broadcast (all
    on the same channel index: in0 or in1 of each core)."""
    for (src, channel), dests in FLOWS.items():
        src_index = channel_index("core" if src.startswith("core") else src, "MM2S", channel)
        dst_tiles = [_tile(column, d) for d, _ in dests]
        dst_channels = {channel_index("core" if d.startswith("core") else d, "S2MM", ch) for d, ch in dests}
        if len(dst_channels) != 1:
            raise NotImplementedError(f"Flow from {src} {channel}: destinations on different channel indices")
        column.flows[(src, channel)] = Flow(
            _tile(column, src),
            dst_tiles if len(dst_tiles) > 1 else dst_tiles[0],
            src_channel=src_index,
            dst_channel=dst_channels.pop(),
        )


def _core_dma(column: Column, c: int, sizes: dict[str, int]) -> TileDma:
    """The static ping-pong: object after object into (out of) the FIFO's two halves, forever.
    Each Bd names its successor (the other half): IRON's default `Bd.next` changed between
    versions ("self", a Bd looping on itself, then None, following the channel)."""
    channels = []
    for fifo in cp.FIFOS:
        inbound = fifo in cd.CORE_S2MM
        prod, cons = column.fifo_locks[c][fifo]
        take, give = (prod, cons) if inbound else (cons, prod)
        n = sizes[fifo] // WORD
        bds = [
            Bd(
                column.fifos[c][fifo],
                offset=slot * n,
                length=n,
                acquires=[Acquire(take, value=1)],
                releases=[Release(give, value=1)],
                next=(slot + 1) % cd.FIFO_SLOTS,
            )
            for slot in range(cd.FIFO_SLOTS)
        ]
        direction = DMAChannelDir.S2MM if inbound else DMAChannelDir.MM2S
        channels.append(DmaChannel(direction, channel_index("core", direction.name, fifo), bds))
    return TileDma(column.cores[c], channels)
