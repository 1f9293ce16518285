"""Test double (NOT mlir-aie), part 3 of 4 (tests/doubles/iron/base.py has the overview): IRON's explicit
DMA objects and its runtime-sequence chain: python/iron/dataflow/flow.py and
runtime/tiledmatask.py as stored at the pinned commit, dataflow/tile_dma.py in stored 2026
versions (not stored at the pin).

Enforced: a DMA program only on its own tile's buffers and locks, all resolved when it is emitted
(`.op`); channel indices within Phoenix's (2 in / 2 out on compute and shim tiles, 6 / 6 on the
mem tile); one TileDma program per (direction, channel); Flow's keywords at the pin (no `name=`);
`tile_dma_chain` only inside the sequence body, refusing `Bd.next` and `Bd.iteration` and taking
one acquire and one release or neither; mem-tile BD ids from their channel's half of 48;
`await_()` only on a task started with `wait=True`, once. A TileDma channel's BD chain as IRON
lowers it (`TileDma.successors`): `Bd.next` None (the default of the tile_dma.py generation the
pin's tiledmatask.py imports `_emit_bd` from) follows the channel -- the next Bd, and from the last
back to the first while `DmaChannel.loop` (default True), else the end; "self" loops a Bd on
itself (the default of the older stored generation, @711203fe / @020e04b9); an int names a Bd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from doubles.iron.base import CHANNELS, MAX_LOCK_VALUE, DMAChannelDir, NPU1Col1, Tile, _State, in_sequence

MEM_BDS_PER_PARITY = 24


@dataclass
class Acquire:
    lock: object
    value: int = 1
    greater_equal: bool = True


@dataclass
class Release:
    lock: object
    value: int = 1


@dataclass
class Bd:
    buffer: object
    offset: int = 0
    length: int | None = None
    acquires: list = field(default_factory=list)
    releases: list = field(default_factory=list)
    next: int | str | None = None
    packet: tuple | None = None
    bd_id: int | None = None
    sizes: list = field(default_factory=list)
    strides: list = field(default_factory=list)
    pad_dimensions: list | None = None
    iteration: object = None
    out_of_order_id: int | None = None


@dataclass
class DmaChannel:
    direction: DMAChannelDir
    channel: int
    bds: list
    pad_value: int = 0
    repeat_count: int = 0
    out_of_order: bool = False
    loop: bool = True


def check_channel(tile: Tile, direction: DMAChannelDir, channel: int) -> None:
    s2mm, mm2s = CHANNELS[NPU1Col1.rows[tile.row]]
    limit = s2mm if direction == DMAChannelDir.S2MM else mm2s
    if not 0 <= channel < limit:
        raise ValueError(f"{tile} has {limit} {direction.name} channels, not channel {channel}")


def check_mem_bd_id(tile: Tile, channel: int, bd_id: int | None, what: str) -> None:
    """On the mem tile an even channel reaches BDs 0-23 only, an odd one 24-47 only."""
    if bd_id is not None and tile.row == 1 and bd_id // MEM_BDS_PER_PARITY != channel % 2:
        raise ValueError(f"{what}: BD id {bd_id} is not in channel {channel}'s half")


def _check_resolved(tile: Tile, bds) -> None:
    """What emitting the BDs takes: the tile's, each buffer's and each lock's `.op`."""
    tile.op  # noqa: B018
    for bd in bds:
        bd.buffer.op  # noqa: B018
        for use in (*bd.acquires, *bd.releases):
            use.lock.op  # noqa: B018


def _check_bd_tiles(tile: Tile, bds, what: str) -> None:
    for i, bd in enumerate(bds):
        if bd.buffer.tile is not tile:
            raise ValueError(f"{what} on {tile} was given a buffer on {bd.buffer.tile} (Bd {i})")
        for use in (*bd.acquires, *bd.releases):
            if use.lock.tile is not tile:
                raise ValueError(f"{what} Bd {i}: lock {use.lock.name} is on {use.lock.tile}, not {tile}")
            if not 0 < use.value <= MAX_LOCK_VALUE:
                raise ValueError(f"{what} Bd {i}: lock value {use.value}")


class TileDma:
    def __init__(self, tile: Tile, channels):
        self.tile, self.channels = tile, list(channels)
        keys = set()
        for ch in self.channels:
            check_channel(tile, ch.direction, ch.channel)
            if (ch.direction, ch.channel) in keys:
                raise ValueError(f"TileDma for {tile} already has {ch.direction.name} channel {ch.channel}.")
            keys.add((ch.direction, ch.channel))
            _check_bd_tiles(tile, ch.bds, "TileDma")

    def resolve(self) -> None:
        """The aie.mem / memtile_dma region: after the Program resolved the buffers and locks."""
        for ch in self.channels:
            _check_resolved(self.tile, ch.bds)
            successors(ch)

    def successors(self) -> dict[tuple[str, int], list[int | None]]:
        """Per (direction, channel): the index of the Bd each Bd's next_bd names (None: the end)."""
        return {(ch.direction.name, ch.channel): successors(ch) for ch in self.channels}


def successors(ch: DmaChannel) -> list[int | None]:
    """Where each Bd of the channel goes next, as tile_dma.py's lowering emits next_bd / aie.end."""
    out: list[int | None] = []
    for i, bd in enumerate(ch.bds):
        if bd.next is None:
            out.append(i + 1 if i + 1 < len(ch.bds) else (0 if ch.loop else None))
        elif bd.next == "self":
            out.append(i)
        elif isinstance(bd.next, int) and 0 <= bd.next < len(ch.bds):
            out.append(bd.next)
        else:
            raise ValueError(f"Bd.next must be 'self', an int index, or None; got {bd.next!r}")
    return out


class Flow:
    """A route. The design gives both channels, so the real one lowers to `aie.flow` (or, with
    several destinations, route endpoints and an `aie.route`) and needs no shim DMA allocation:
    the sequence's shim tasks name the channel directly."""

    def __init__(
        self, src, dst, *, src_port=None, src_channel=None, dst_port=None, dst_channel=None, shim_symbol=None
    ):
        self.src, self.dsts = src, dst if isinstance(dst, list) else [dst]
        self.src_channel, self.dst_channel = src_channel, dst_channel
        if not self.dsts:
            raise ValueError("Flow needs at least one destination.")
        if src_channel is not None:
            check_channel(src, DMAChannelDir.MM2S, src_channel)
        if dst_channel is not None:
            for d in self.dsts:
                check_channel(d, DMAChannelDir.S2MM, dst_channel)


class Task:
    """IRON's handle of a started runtime task (runtime/dmataskhandle.Task)."""

    def __init__(self, ops: list, record: tuple, wait: bool):
        self.ops, self.wait, self.done = ops, wait, False
        self.index = len(ops)
        ops.append(("push", *record, wait))

    def await_(self):
        if not self.wait:
            raise RuntimeError("await_() needs a task started with wait=True")
        if self.done:
            raise RuntimeError("task already awaited")
        self.done = True
        in_sequence("await_").append(("await", self.index))


def tile_dma_chain(tile, direction, channel, bds, repeat_count=0, wait=False, start=True, out_of_order=False):
    ops = in_sequence("tile_dma_chain")
    if not _State.iron_sequence:  # tiledmatask.py@4fb79094: active_sequence(), IRON's own sequence only
        raise RuntimeError("tile_dma_chain outside IRON's runtime sequence body (no active sequence)")
    if not bds:
        raise ValueError("tile_dma_chain needs at least one Bd")
    check_channel(tile, direction, channel)
    _check_bd_tiles(tile, bds, "tile_dma_chain")
    for i, bd in enumerate(bds):
        if bd.next is not None:
            raise ValueError(f"tile_dma_chain Bd {i} sets next={bd.next!r}")
        if bd.iteration is not None:
            raise ValueError(f"tile_dma_chain Bd {i} sets iteration")
        if (len(bd.acquires), len(bd.releases)) not in ((0, 0), (1, 1)):
            raise ValueError(f"tile_dma_chain Bd {i}: one acquire and one release, or neither")
        if len(bd.sizes) != len(bd.strides):
            raise ValueError(f"tile_dma_chain Bd {i}: sizes and strides go together")
        check_mem_bd_id(tile, channel, bd.bd_id, f"tile_dma_chain Bd {i}")
    if out_of_order or not start:
        raise NotImplementedError("the double records started in-order chains only")
    _check_resolved(tile, bds)
    return Task(ops, ("chain", tile.row, direction.name, channel, tuple(bds), repeat_count), wait)
