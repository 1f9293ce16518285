"""The programs of a plan's XRT runs: each task's phases (op kind -> its phase builder), a run's
whole instruction stream (`column_run`), and how many instruction-stream operations each task
costs the command processor (`issue_counts`, which the timing model charges)."""

from __future__ import annotations

from dataclasses import dataclass

from npustream.npu.plan.buffers import ColumnLayouts, plan_layouts
from npustream.npu.plan.design import memtile_locks
from npustream.npu.plan.plans import Plan, Task
from npustream.npu.program.attention import attention_phases
from npustream.npu.program.column import ColumnRun, Push, Sequencer, SetLock, WriteDescriptor
from npustream.npu.program.layernorm import layernorm_phases
from npustream.npu.program.matmul import matmul_phases
from npustream.npu.program.phases import Ctx, Phase, Rings


def task_phases(plan: Plan, task: Task, layouts: ColumnLayouts, table: dict) -> list[Phase]:
    """The phases of one plan task (an op share on a column)."""

    ctx = Ctx(plan, task, layouts, table)
    if task.op.kind in ("matmul", "conv"):
        return matmul_phases(ctx)
    if task.op.kind == "attention":
        return attention_phases(ctx)
    if task.op.kind == "layernorm":
        return layernorm_phases(ctx)
    raise ValueError(f"the column program has no dataflow for op kind {task.op.kind!r} ({task.op.name})")


def column_run(plan, column: int, numbers: list[int], layouts, table: dict) -> ColumnRun:
    """The program of one XRT run of `column`: tasks `numbers` of its plan tasks, in order."""

    run = ColumnRun()
    sequencer = Sequencer(run)
    units = Rings(plan).units
    for number in numbers:
        for phase in task_phases(plan, plan.columns[column][number], layouts, table):
            run.phases.append(phase.what)
            for lock in memtile_locks(plan.dims, plan.tiles):  # every ring empty: all units free
                ring, role = lock.split(".")
                run.ops.append(SetLock(lock, units[ring] if role == "prod" else 0))
            for core, values in enumerate(phase.descriptors):
                run.ops += [WriteDescriptor(core, values), SetLock(f"core{core}.go", 1)]
            for unit in phase.units:
                sequencer.unit(unit)
            sequencer.drain()
    return run


@dataclass(frozen=True)
class IssueCount:
    """A plan task's part of its column's instruction stream (column_program.ColumnRun.ops)."""

    ops: int  # runtime-sequence operations: pushes, awaits, lock sets, descriptor writes
    pushes: int  # DMA tasks configured and started
    head: int  # operations up to and including the first push: issued before any DMA moves


_ISSUE_COUNTS: dict[tuple, IssueCount] = {}


def issue_counts(plan: Plan) -> tuple[tuple[IssueCount, ...], ...]:
    """Per column, per task, counted from the task's program as column_program.column_run builds
    it. A run of several tasks is their programs back to back (every phase drains its queues and
    BDs), so a task's count is its own whatever run it is in. The layers' ops differ only in
    names and DDR places, neither of which changes a program's operations, so each distinct op
    share is built once per process (about 0.4 s for a Whisper base plan instead of 2 s; the
    tests check the cached counts against every run's program)."""

    out = []
    for column, layouts in enumerate(plan_layouts(plan)):
        # the weights' offsets do not change the count: any table naming them will do
        table = {
            f"{task.op.name}.{part}": (0, "<u2", ())
            for task in plan.columns[column]
            for part in ("wb", "res", "g", "beta")
        }
        counts = []
        for number, task in enumerate(plan.columns[column]):
            op = task.op
            key = (
                plan.kind,
                plan.dims,
                plan.tiles,
                op.name.partition(".")[2] or op.name,
                op.kind,
                op.macs,
                op.vector_elems,
                op.weight_bytes,
                op.rows,
                op.heads,
                len(op.inputs),
                op.gelu,
                task.share,
            )
            if key not in _ISSUE_COUNTS:
                ops = column_run(plan, column, [number], layouts, table).ops
                pushes = [i for i, o in enumerate(ops) if isinstance(o, Push)]
                _ISSUE_COUNTS[key] = IssueCount(len(ops), len(pushes), pushes[0] + 1 if pushes else len(ops))
            counts.append(_ISSUE_COUNTS[key])
        out.append(tuple(counts))
    return tuple(out)
