"""One XRT run's runtime sequence (npustream/npu/column_program.ColumnRun) in IRON, op for op:

- SetLock: `Lock.set` on a mem-tile ring lock, or a core's "go" lock
- WriteDescriptor: the core's descriptor Buffer (a runtime parameter) written word by word
- Push: the task configured with the sequencer's BD ids and repeat count, issuing a completion
  token, and started
- Await: the pushed task's await

The building blocks are the phases npu/program/matmul.py, npu/program/attention.py and
npu/program/layernorm.py generate (ColumnRun.phases names them); the sequence replays them in order.

A mem-tile task whose BDs do not iterate is IRON's `tile_dma_chain`. The other tasks are emitted
one level down, with the aie / aiex dialect bindings, because IRON's runtime chains cannot say
them: `tile_dma_chain` refuses BD iteration (`Bd.iteration`, which moves a BD's base by a stride
on each use: every ring BD and most shim BDs), and the shim verbs `Flow.fill` / `drain` issue one
BD per task, take no BD id (the sequencer owns the shim's 16) and no iteration. The dialect ops
are the ones `tile_dma_chain` itself emits (`dma_configure_task`, a block per BD holding
`use_lock` / `dma_bd` / `use_lock` and `next_bd` or `end`, `dma_start_task`), plus `dma_bd`'s
`iteration`; the sequence body runs inside the runtime sequence's insertion point, so they land
there. A shim task's BDs address the sequence's runtime arguments (their `.op`, the block
arguments) on the shim channel the route starts or ends at.
"""

from __future__ import annotations

from aie.dialects import aie, aiex
from aie.dialects._aie_enum_gen import DMAChannelDir, LockAction
from aie.iron import Acquire, Bd, Release, tile_dma_chain

from npustream.npu.program.column import Await, ColumnRun, DmaTask, Push, SetLock, WriteDescriptor


def iterates(task: DmaTask) -> bool:
    return any(bd.iteration[0] > 1 for bd in task.bds)


def emit_run(column, run: ColumnRun, host: dict, *, iron_chains: bool = True) -> None:
    """Emit `run` into the active runtime sequence. `host`: the runtime buffers by role (each
    with `.op`, its block argument). `iron_chains=False` for a sequence IRON did not open (the
    named sequences encoder_column.plan_module adds beside IRON's one): IRON's `tile_dma_chain`
    works only inside IRON's own sequence body (it calls `active_sequence()`), so there every
    task is emitted at the dialect level, with the same ops `tile_dma_chain` emits. `Lock.set`
    (`aiex.set_lock`) and the descriptor's RTP writes are dialect ops and work in any sequence."""
    handles = {}
    for op in run.ops:
        if isinstance(op, SetLock):
            ring, _role = op.lock.split(".")
            lock = column.go[int(ring[4:])] if ring.startswith("core") else column.mem_locks[op.lock]
            lock.set(op.value)
        elif isinstance(op, WriteDescriptor):
            descriptor = column.descriptors[op.core]
            for i, value in enumerate(op.values):
                descriptor[i] = value
        elif isinstance(op, Push):
            handles[op.task] = emit_task(column, run.tasks[op.task], op.bd_ids, host, iron_chains)
        elif isinstance(op, Await):
            handles.pop(op.task).await_()
        else:
            raise NotImplementedError(f"sequence op {op!r} has no IRON form")


def emit_task(column, task: DmaTask, bd_ids: tuple[int, ...], host: dict, iron_chains: bool = True):
    """Configure and start `task`; returns a handle with `await_()`."""
    direction = DMAChannelDir.MM2S if task.direction == "MM2S" else DMAChannelDir.S2MM
    if iron_chains and task.tile == "mem" and not iterates(task):
        bds = [_iron_bd(column, bd, bd_id) for bd, bd_id in zip(task.bds, bd_ids, strict=True)]
        return tile_dma_chain(
            column.mem, direction, task.channel_index, bds, repeat_count=task.repeat, wait=True
        )
    return DialectTask(column, task, direction, bd_ids, host)


def _pattern(bd) -> dict:
    """sizes / strides, or none for a linear run (as IRON's Bd spells it)."""
    linear = len(bd.sizes) == 1 and bd.strides == (1,)
    return {"sizes": [] if linear else list(bd.sizes), "strides": [] if linear else list(bd.strides)}


def _iron_bd(column, bd, bd_id: int) -> Bd:
    acquires = [Acquire(column.mem_locks[bd.acquire.lock], value=bd.acquire.value)] if bd.acquire else []
    releases = [Release(column.mem_locks[bd.release.lock], value=bd.release.value)] if bd.release else []
    return Bd(
        column.ring,
        offset=bd.offset,
        length=bd.length,
        acquires=acquires,
        releases=releases,
        bd_id=bd_id,
        **_pattern(bd),
    )


class DialectTask:
    """A task IRON's runtime chains cannot express, as aiex.dma_configure_task with one block per
    BD (see the module docstring), started; `await_()` awaits its completion token."""

    def __init__(self, column, task: DmaTask, direction, bd_ids: tuple[int, ...], host: dict):
        tile = column.shim if task.tile == "shim" else column.mem
        self.op = aiex.dma_configure_task(
            tile.op, direction, task.channel_index, issue_token=True, repeat_count=task.repeat
        )
        with aie.bds(self.op) as blocks:
            for i, (bd, bd_id) in enumerate(zip(task.bds, bd_ids, strict=True)):
                with blocks[i]:
                    self._bd(column, bd, bd_id, host)
                    if i + 1 < len(task.bds):
                        aie.next_bd(blocks[i + 1])
                    else:
                        aie.EndOp()
        aiex.dma_start_task(self.op)

    @staticmethod
    def _bd(column, bd, bd_id: int, host: dict) -> None:
        buffer = column.ring.op if bd.buffer == "mem" else host[bd.buffer].op
        if bd.acquire:
            aie.use_lock(
                column.mem_locks[bd.acquire.lock].op, LockAction.AcquireGreaterEqual, value=bd.acquire.value
            )
        size, stride, current = bd.iteration
        iteration = {"iteration": (size, stride, current)} if size > 1 else {}
        aie.dma_bd(buffer, offset=bd.offset, transfer_len=bd.length, bd_id=bd_id, **_pattern(bd), **iteration)
        if bd.release:
            aie.use_lock(column.mem_locks[bd.release.lock].op, LockAction.Release, value=bd.release.value)

    def await_(self) -> None:
        aiex.dma_await_task(self.op)
