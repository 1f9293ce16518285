"""Plans: which column runs which part of which op.

- `pipeline`: the op list cut into one contiguous run per column, the cut chosen to minimise the
  slowest column's predicted time (the pipeline's period), so column k works on window w while
  column k+1 works on window w-1. Whole layers cannot balance (6 layers over 4 columns), so a cut
  may fall inside a layer, between two of its ops. Exact min-max partition by dynamic
  programming over the timing model's per-op costs. A column runs all its ops for a window in
  ONE XRT run (one instruction stream), so it pays one dispatch per window, not one per op.
- `split`: every op spread over all columns (rows for matmuls, convs and LayerNorms, heads for
  attention when they divide evenly, else query rows), one window at a time: the lowest latency
  for one window, a barrier between ops.

Between two pipeline stages the window's live activations (outputs of earlier ops that later
ops read) sit in depth-2 ping-pong buffers. A live activation a stage neither reads first nor
produces but that a later stage needs is carried: copied from the stage's input buffer to its
output buffer by DMA (`Stage.carried`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from npustream.model.dims import WhisperDims
from npustream.npu.ops.graph import NpuOp, encoder_ops
from npustream.npu.ops.params import NpuParams
from npustream.npu.ops.tiles import Tiles, n_tiles
from npustream.npu.ops.weights import matmul_shape
from npustream.npu.plan.cost import BF16, OpCost, Share, op_cost, row_tile


class PlanKind(StrEnum):
    """How a plan uses the columns. Each layer that runs a plan acts on these facts (buffer
    layouts, XRT runs, the executor's workers, the event simulation) instead of on a name."""

    PIPELINE = "pipeline"
    SPLIT = "split"

    @property
    def staged(self) -> bool:
        """Columns are pipeline stages: each runs its own contiguous op range on its own buffers,
        and a window passes from column to column through depth-2 ping-pong buffers. Otherwise
        every column takes its share of every op of one window, on shared buffers, with a host
        barrier after each op."""
        return self is PlanKind.PIPELINE

    def runs(self, tasks: int) -> list[tuple[int, ...]]:
        """A column's XRT runs per window, as task numbers: a stage runs all its tasks in one run
        (one instruction stream, one dispatch); a split column one task per run (the barrier)."""
        if self.staged:
            return [tuple(range(tasks))] if tasks else []
        return [(number,) for number in range(tasks)]


PLAN_KINDS = tuple(PlanKind)
INPUT = "mel"  # the host-written input activation (emulator.prepare_mel)


@dataclass(frozen=True)
class Task:
    """One XRT run: `share` of op number `index` on `column`, with its predicted cost."""

    index: int
    op: NpuOp
    column: int
    share: Share
    cost: OpCost

    @property
    def rows(self) -> slice:
        return slice(self.share.row0, self.share.row1)

    @property
    def heads(self) -> slice | None:
        whole = self.share.head0 == 0 and self.share.head1 == self.op.heads
        return None if whole else slice(self.share.head0, self.share.head1)


@dataclass(frozen=True)
class Stage:
    """A pipeline column's contiguous op range [first, stop) and what flows in and out of it."""

    column: int
    first: int
    stop: int
    live_in: tuple[str, ...]  # activations in the input buffer
    live_out: tuple[str, ...]  # activations in the output buffer
    carried: tuple[str, ...]  # live_in names copied unchanged to the output buffer
    carry_s: float  # predicted DMA time of the carry
    dispatch_s: float = 0.0  # the stage's one XRT run per window

    @property
    def overhead_s(self) -> float:
        """What the stage pays per window besides its tasks."""
        return self.dispatch_s + self.carry_s


@dataclass(frozen=True)
class Plan:
    kind: PlanKind
    dims: WhisperDims
    tiles: Tiles
    params: NpuParams
    ops: tuple[NpuOp, ...]
    columns: tuple[tuple[Task, ...], ...]  # each column's tasks in execution order
    stages: tuple[Stage, ...] = field(default=())  # pipeline only
    double_buffered: bool = True

    @cached_property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """Every activation's [rows, cols] (bf16 values): "mel" and each op's output."""
        d = self.dims.n_audio_state
        out = {INPUT: (2 * self.dims.n_audio_ctx + 2, self.dims.n_mels)}  # emulator.prepare_mel
        for op in self.ops:
            cols = matmul_shape(op.name, self.dims)[1] if op.kind in ("matmul", "conv") else d
            out[op.name] = (op.rows, cols)
        return out

    def column_ops(self, column: int) -> list[str]:
        return [task.op.name for task in self.columns[column]]


def live_at(ops: tuple[NpuOp, ...] | list[NpuOp], cut: int) -> tuple[str, ...]:
    """Activations produced before op `cut` (or the input) that op `cut` or a later op reads."""
    produced = [INPUT] + [op.name for op in ops[:cut]]
    needed = {name for op in ops[cut:] for name in op.inputs}
    if cut == len(ops):
        needed = {ops[-1].name}  # the encoder's output leaves through the last buffer
    return tuple(name for name in produced if name in needed)


def _stage_io(ops, first: int, stop: int, shapes, params: NpuParams) -> tuple[tuple, tuple, tuple, float]:
    live_in, live_out = live_at(ops, first), live_at(ops, stop)
    carried = tuple(name for name in live_in if name in live_out)
    nbytes = sum(math.prod(shapes[name]) * BF16 for name in carried)
    rate = min(params.shim_in_channels * params.channel_bytes_per_s, params.ddr_bytes_per_s / params.columns)
    if params.column_ddr_bytes_per_s:  # calibrated: read and written through the column's achieved rate
        rate = min(rate, params.column_ddr_bytes_per_s / 2)
    return live_in, live_out, carried, (nbytes / rate + params.dispatch_s) if carried else 0.0


def _whole_task(index: int, op: NpuOp, column: int, dims, tiles, params, active: int) -> Task:
    """The whole op on a column, inside the column's one run per window (no dispatch of its own)."""
    share = Share.whole(op)
    return Task(
        index,
        op,
        column,
        share,
        op_cost(op, share, dims, tiles, params, active_columns=active, dispatch=False),
    )


def pipeline_plan(
    dims: WhisperDims, tiles: Tiles, params: NpuParams, *, double_buffered: bool = True
) -> Plan:
    ops = tuple(encoder_ops(dims, tiles))
    k = params.columns
    if len(ops) < k:
        raise ValueError(f"{len(ops)} ops cannot fill {k} pipeline columns")
    # every column works at once in the steady state: each gets 1/k of DDR
    cost = [
        _whole_task(i, op, 0, dims, tiles, params, k).cost.time_s(double_buffered) for i, op in enumerate(ops)
    ]
    prefix = [0.0]
    for c in cost:
        prefix.append(prefix[-1] + c)
    probe = Plan(PlanKind.PIPELINE, dims, tiles, params, ops, ())
    shapes = probe.shapes

    def stage_cost(i: int, j: int) -> float:
        return prefix[j] - prefix[i] + _stage_io(ops, i, j, shapes, params)[3] + params.dispatch_s

    # best[s][j]: (period, total) of the best split of ops[:j] into s stages; lexicographic, so
    # the period is the exact min-max and, among equal periods, the total time is least
    n = len(ops)
    best = [[(math.inf, math.inf)] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = (0.0, 0.0)
    for s in range(1, k + 1):
        for j in range(s, n - (k - s) + 1):
            for i in range(s - 1, j):
                prev = best[s - 1][i]
                if prev[0] == math.inf:
                    continue
                c = stage_cost(i, j)
                cand = (max(prev[0], c), prev[1] + c)
                if cand < best[s][j]:
                    best[s][j], cut[s][j] = cand, i
    bounds, j = [], n
    for s in range(k, 0, -1):
        bounds.append((cut[s][j], j))
        j = cut[s][j]
    bounds.reverse()
    return _staged(dims, tiles, params, ops, bounds, double_buffered)


def _staged(dims, tiles, params: NpuParams, ops, bounds, double_buffered: bool) -> Plan:
    """The pipeline plan with stage `bounds` [(first, stop)] per column, costed with `params`."""
    k = params.columns
    shapes = Plan(PlanKind.PIPELINE, dims, tiles, params, ops, ()).shapes
    stages, columns = [], []
    for col, (first, stop) in enumerate(bounds):
        stages.append(
            Stage(col, first, stop, *_stage_io(ops, first, stop, shapes, params), params.dispatch_s)
        )
        columns.append(tuple(_whole_task(i, ops[i], col, dims, tiles, params, k) for i in range(first, stop)))
    return Plan(PlanKind.PIPELINE, dims, tiles, params, ops, tuple(columns), tuple(stages), double_buffered)


def split_shares(op: NpuOp, tiles: Tiles, columns: int) -> list[Share]:
    """Deal an op's row tiles (or its heads) out to the columns as evenly as whole tiles allow."""
    if op.kind == "attention" and op.heads % columns == 0:
        per = op.heads // columns
        return [Share(0, op.rows, c * per, (c + 1) * per) for c in range(columns)]
    rt = row_tile(op, tiles)
    blocks = n_tiles(op.rows, rt)
    if blocks < columns:
        raise ValueError(f"{op.name}: {blocks} row tiles cannot be split over {columns} columns")
    shares, start = [], 0
    for c in range(columns):
        count = blocks // columns + (1 if c < blocks % columns else 0)
        stop = min(op.rows, (start // rt + count) * rt)
        shares.append(Share(start, stop, 0, op.heads))
        start = stop
    return shares


def split_plan(dims: WhisperDims, tiles: Tiles, params: NpuParams, *, double_buffered: bool = True) -> Plan:
    ops = tuple(encoder_ops(dims, tiles))
    k = params.columns
    columns: list[list[Task]] = [[] for _ in range(k)]
    for i, op in enumerate(ops):
        for col, share in enumerate(split_shares(op, tiles, k)):
            cost = op_cost(op, share, dims, tiles, params, active_columns=k)
            columns[col].append(Task(i, op, col, share, cost))
    return Plan(
        PlanKind.SPLIT, dims, tiles, params, ops, tuple(tuple(c) for c in columns), (), double_buffered
    )


def recost(plan: Plan, params: NpuParams) -> Plan:
    """The same plan (a pipeline keeps its cut) with every task costed again with `params`: how
    another parameter set predicts the plan as built."""
    if plan.kind.staged:
        bounds = [(stage.first, stage.stop) for stage in plan.stages]
        return _staged(plan.dims, plan.tiles, params, plan.ops, bounds, plan.double_buffered)
    return split_plan(plan.dims, plan.tiles, params, double_buffered=plan.double_buffered)


def column_runs(plan: Plan, column: int) -> list[tuple[int, ...]]:
    """The XRT runs of a column per window, as task numbers: a pipeline column runs all its
    tasks in one run (one instruction stream); a split column one task per run, since the columns
    meet at a host barrier after every op."""
    return plan.kind.runs(len(plan.columns[column]))


def make_plan(kind: str, dims: WhisperDims, tiles: Tiles, params: NpuParams, **kwargs) -> Plan:
    if kind not in PLAN_KINDS:
        raise ValueError(f"unknown plan {kind!r}; choose one of {', '.join(PLAN_KINDS)}")
    build = pipeline_plan if PlanKind(kind).staged else split_plan
    return build(dims, tiles, params, **kwargs)
