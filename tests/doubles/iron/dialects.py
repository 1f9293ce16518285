"""Test double (NOT mlir-aie), part 4 of 4 (tests/doubles/iron/base.py has the overview): the dialect-level
ops mlir/iron_sequence.py emits inside the runtime sequence where IRON's runtime chains stop,
with the signatures of the pinned python/dialects/aie.py and aiex.py (`dma_configure_task`,
`dma_start_task`, `dma_await_task`, `bds`, `dma_bd`, `use_lock`, `next_bd`, `EndOp`).

Enforced, from those wrappers, the dialect verifiers and the runtime-task lowering
(lib/Dialect/AIEX/Transforms/AIEDMATasksToNPU.cpp) as read: a task only inside the sequence
body and not inside another task's block; BD ops only inside a block of a task's region; each
block exactly one `dma_bd`, no or two lock uses (an acquire before it, a release after it, on
locks of the task's tile), ended by `next_bd` to a block of the same task or `aie.end`; a
`dma_bd` on a buffer of the task's tile, or on a runtime argument only on a shim tile;
`transfer_len` equal to the product of `sizes`; `iteration=(size, stride, current)` with size in
1..64, current in 0..size-1, stride from 1 (at most 131072 words on a mem tile), and at most 3
dimensions besides it; BD ids within the tile's pool (16 on a shim tile, the channel's half of 48
on the mem tile) and distinct within a task; `dma_await_task` only on a task configured with
`issue_token` and started more often than awaited.
"""

from __future__ import annotations

import contextlib
import enum
import math
import types
from dataclasses import dataclass, field

from doubles.iron.base import MAX_LOCK_VALUE, DMAChannelDir, Op, _State, in_sequence
from doubles.iron.dma import check_channel, check_mem_bd_id

MAX_ITERATION = 64
MAX_ITERATION_STRIDE = {"MemTile": 131072, "CoreTile": 8192}  # 32-bit words (dma_bd_iteration_errors.mlir)
SHIM_BDS = 16
DMA_BD_KEYWORDS = {
    "bd_id",
    "iteration",
    "packet",
    "burst_length",
    "next_bd_id",
    "pad_dimensions",
    "out_of_order_id",
    "axcache",
    "offset_parameter",
}


class LockAction(enum.IntEnum):
    Acquire = 0
    AcquireGreaterEqual = 2
    Release = 1


@dataclass(eq=False)
class ConfiguredTask:
    """What `aiex.dma_configure_task` returns (a DMAConfigureTaskOp): its region's blocks."""

    tile: object
    direction: DMAChannelDir
    channel: int
    issue_token: bool
    repeat_count: int
    blocks: list = field(default_factory=lambda: [[]])
    starts: int = 0
    awaits: int = 0

    @property
    def result(self):
        return self


class Block:
    """A block of a task's region; `with block:` moves the insertion point into it."""

    def __init__(self, task: ConfiguredTask, index: int):
        self.task, self.index = task, index

    @property
    def ops(self) -> list:
        return self.task.blocks[self.index]

    def __enter__(self):
        self._outer = _State.block
        _State.block = self.ops

    def __exit__(self, *exc):
        _State.block = self._outer


class BlockList:
    def __init__(self, task: ConfiguredTask):
        self.task = task

    def __getitem__(self, index: int) -> Block:
        while len(self.task.blocks) <= index:  # a new block appended on first access, as aie.bds does
            self.task.blocks.append([])
        return Block(self.task, index)


def _task_tile(what: str):
    if _State.block is None or _State.task is None:
        raise RuntimeError(f"{what} outside a BD block: it belongs in a block of a DMA task's region")
    return _State.task.tile


def dma_configure_task(
    tile,
    direction,
    channel,
    *,
    issue_token=None,
    repeat_count=None,
    repeat_count_val=None,
    out_of_order=None,
    packet=None,
):
    ops = in_sequence("aiex.dma_configure_task")
    if not isinstance(tile, Op) or tile.kind != "tile":
        raise TypeError(f"dma_configure_task takes a tile op, not {tile!r}")
    if repeat_count_val is not None or out_of_order or packet is not None:
        raise NotImplementedError("the double records constant repeat counts of in-order tasks only")
    check_channel(tile.owner, direction, channel)
    if not isinstance(repeat_count or 0, int) or (repeat_count or 0) < 0:
        raise ValueError(f"repeat_count {repeat_count!r}")
    task = ConfiguredTask(tile.owner, direction, channel, bool(issue_token), repeat_count or 0)
    ops.append(("configure_task", task))
    return task


@contextlib.contextmanager
def bds(parent: ConfiguredTask):
    outer = (_State.block, _State.task)
    _State.task, _State.block = parent, parent.blocks[0]  # the insertion point: the entry block
    try:
        yield BlockList(parent)
    finally:
        _State.block, _State.task = outer


def dma_bd(buffer, sizes=None, strides=None, offset=None, transfer_len=None, **kwargs):
    tile = _task_tile("aie.dma_bd")
    unknown = set(kwargs) - DMA_BD_KEYWORDS
    if unknown:
        raise TypeError(f"DMABDOp got unexpected keywords {sorted(unknown)}")
    if not isinstance(buffer, Op) or buffer.kind not in ("buffer", "arg"):
        raise TypeError(f"dma_bd takes an aie.buffer or a runtime argument, not {buffer!r}")
    if buffer.kind == "arg" and tile.kind != "ShimNOCTile":
        raise ValueError("DDR memory (runtime input arguments) can only be referred to on shim tiles.")
    if buffer.kind == "buffer" and buffer.owner.tile is not tile:
        raise ValueError(f"dma_bd on {tile} was given {buffer.owner!r} on {buffer.owner.tile}")
    sizes, strides = tuple(sizes or ()), tuple(strides or ())
    if len(sizes) != len(strides) or len(sizes) > 4:
        raise ValueError(f"dma_bd sizes {sizes} and strides {strides}: equal lengths, at most 4")
    if sizes and transfer_len != math.prod(sizes[-3:]):
        raise ValueError(
            f"Buffer descriptor length {transfer_len} does not match the transfer of sizes {sizes}"
        )
    if "iteration" in kwargs:
        _check_iteration(kwargs["iteration"], len(sizes), tile.kind)
    if "bd_id" in kwargs:
        bd_id = kwargs["bd_id"]
        if tile.kind == "ShimNOCTile" and not 0 <= bd_id < SHIM_BDS:
            raise ValueError(f"shim BD id {bd_id} outside 0..{SHIM_BDS - 1}")
        check_mem_bd_id(tile, _State.task.channel, bd_id, "dma_bd")
    _State.block.append(("dma_bd", buffer, offset or 0, transfer_len, sizes, strides, dict(kwargs)))


def _check_iteration(iteration, dims: int, tile_kind: str) -> None:
    if not (isinstance(iteration, (tuple, list)) and len(iteration) == 3):
        raise TypeError(f"iteration {iteration!r}: the BDIterationAttr builder takes (size, stride, current)")
    size, stride, current = iteration
    if not 1 <= size <= MAX_ITERATION:
        raise ValueError(f"BD iteration size must be in [1, {MAX_ITERATION}], not {size}")
    if not 0 <= current < size:
        raise ValueError(f"BD iteration current must be in [0, size), not {current}")
    if stride < 1 or stride > MAX_ITERATION_STRIDE.get(tile_kind, stride):
        raise ValueError(
            f"BD iteration stride {stride} outside [1, {MAX_ITERATION_STRIDE.get(tile_kind)}] words"
        )
    if dims > 3:
        raise ValueError(
            "Cannot give more than 3 dimensions for step sizes and wraps on this tile when the "
            f"iteration attribute is also set (got {dims} dimensions)"
        )


def use_lock(lock, action, value=None, *, blocking=None, acq_en=None):
    tile = _task_tile("aie.use_lock")
    if not isinstance(lock, Op) or lock.kind != "lock":
        raise TypeError(f"use_lock takes a lock op, not {lock!r}")
    if lock.owner.tile is not tile:
        raise ValueError(f"lock {lock.owner.name} is on {lock.owner.tile}, not the task's {tile}")
    value = 1 if value is None else value
    if not 0 < value <= MAX_LOCK_VALUE:
        raise ValueError(f"lock value {value}")
    _State.block.append(("use_lock", lock, LockAction(action), value))


def next_bd(dest):
    _task_tile("aie.next_bd")
    if not isinstance(dest, Block) or dest.task is not _State.task:
        raise ValueError("next_bd must name a block of the same task's region")
    _State.block.append(("next_bd", dest.index))


def EndOp():  # noqa: N802 - the generated op class's name
    _task_tile("aie.end")
    _State.block.append(("end",))


def check_blocks(task: ConfiguredTask) -> None:
    """The lowering's checks of a task's region (verifyBdInBlock, verifyOptionalLocksInBlock)."""
    ids = []
    for i, ops in enumerate(task.blocks):
        kinds = [op[0] for op in ops]
        if kinds.count("dma_bd") != 1:
            raise ValueError(
                f"task block {i}: {kinds.count('dma_bd')} aie.dma_bd operations, exactly one required"
            )
        if (
            not kinds
            or kinds[-1] not in ("next_bd", "end")
            or sum(k in ("next_bd", "end") for k in kinds) != 1
        ):
            raise ValueError(f"task block {i} must end in one aie.next_bd or aie.end")
        bd_at = kinds.index("dma_bd")
        locks = [(at, ops[at][2]) for at, kind in enumerate(kinds) if kind == "use_lock"]
        if locks and not (
            len(locks) == 2
            and locks[0][0] < bd_at < locks[1][0]
            and locks[0][1] != LockAction.Release
            and locks[1][1] == LockAction.Release
        ):
            raise ValueError(
                f"task block {i}: no lock uses, or an acquire before the BD and a release after it"
            )
        ids.append(ops[bd_at][6].get("bd_id"))
    pinned = [i for i in ids if i is not None]
    if len(set(pinned)) != len(pinned):
        raise ValueError(f"a task's BDs share ids: {ids}")


def dma_start_task(*tasks, repeat_count=None, no_token=False):
    ops = in_sequence("aiex.dma_start_task")
    if not tasks:
        raise ValueError("dma_start_task must receive at least one DMAConfigureTaskForOp to start")
    if repeat_count is not None or no_token:
        raise NotImplementedError("the double records starts with the task's own count and token")
    for task in tasks:
        check_blocks(task)
        task.starts += 1
        ops.append(("start_task", task))


def dma_await_task(*tasks):
    ops = in_sequence("aiex.dma_await_task")
    if not tasks:
        raise ValueError("dma_await_task must receive at least one DMAConfigureTaskForOp to wait for")
    for task in tasks:
        if not task.issue_token:
            raise ValueError("Cannot wait on a BD that is not configured to issue a token.")
        if task.awaits >= task.starts:
            raise RuntimeError("dma_await_task on a task with no start left to await")
        task.awaits += 1
        ops.append(("await_task", task))


def aie_module() -> types.ModuleType:
    module = types.ModuleType(
        "aie.dialects.aie", "npustream's test double of aie.dialects.aie (iron_double_dialects)"
    )
    for name in ("bds", "dma_bd", "use_lock", "next_bd", "EndOp", "LockAction", "DMAChannelDir"):
        setattr(module, name, globals()[name])
    return module


def aiex_module() -> types.ModuleType:
    module = types.ModuleType(
        "aie.dialects.aiex", "npustream's test double of aie.dialects.aiex (iron_double_dialects)"
    )
    for name in ("dma_configure_task", "dma_start_task", "dma_await_task"):
        setattr(module, name, globals()[name])
    return module
