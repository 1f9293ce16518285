"""The column programs (column_program.py, column_ops.py, core_program.py): within Phoenix's DMA
limits for the shipped shapes, and, run by the DMA simulator (dma_sim.py, with the real glue and
the kernels' portable paths), computing the encoder: op by op within one bf16 ulp of the
emulator, and whole windows for both plans."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from npu_random_weights import random_mels, random_weights

from npustream.model.dims import WhisperDims
from npustream.npu.ops import numerics
from npustream.npu.ops.params import PRESETS
from npustream.npu.ops.tiles import DEFAULT_TILES
from npustream.npu.plan.buffers import column_weight_names, pack_weights, plan_layouts
from npustream.npu.plan.plans import column_runs, make_plan
from npustream.npu.program.column import (
    MAX_LOCK_VALUE,
    MEM_BDS_PER_PARITY,
    QUEUE_DEPTH,
    SHIM_BDS,
    Await,
    Push,
    SetLock,
)
from npustream.npu.program.runs import column_run
from npustream.npu.run.emulator import encode_window, prepare_mel, run_op
from npustream.npu.run.executor import carry
from tools.dma_sim import ColumnSim, Deadlock, simulate_window

PHOENIX = PRESETS["phoenix"]
# small enough to simulate in seconds, shaped to reach every branch of the programs: odd row
# tiles (conv1's 400 rows), a ragged last row tile, query groups with a tail of 3, a ragged last
# key/value tile (200 = 6 x 32 + 8), an odd number of LayerNorm chunks; 2 heads split by rows
SMALL = WhisperDims(80, 200, 128, 2, 1, 51865, 448, 128, 2, 1)
FOUR_HEADS = WhisperDims(80, 200, 256, 4, 1, 51865, 448, 256, 4, 1)  # the split plan by heads
SHAPES = {"tiny": (384, 6, 4), "base": (512, 8, 6), "small": (768, 12, 12)}


def _check_run(run, layouts, blob_words: int) -> None:
    """Replay a run's sequence: queue depth, BD ids, token order, bounds, lock values."""
    sizes = {role: b.nbytes // 4 for role, b in layouts.buffers.items()} | {"weights": blob_words}
    queued: dict[tuple, list[int]] = {}
    owner: dict[tuple[str, int], int] = {}
    pushed, awaited = [], set()
    for op in run.ops:
        if isinstance(op, Push):
            task = run.tasks[op.task]
            queue = queued.setdefault(task.queue, [])
            queue.append(op.task)
            assert len(queue) <= QUEUE_DEPTH, task.queue
            pool = "shim" if task.tile == "shim" else f"mem{task.channel_index % 2}"
            for bd_id in op.bd_ids:
                assert owner.get((pool, bd_id)) in (None, *awaited), "a BD rewritten while in use"
                owner[(pool, bd_id)] = op.task
                if pool == "shim":
                    assert 0 <= bd_id < SHIM_BDS
                else:
                    parity = task.channel_index % 2
                    assert parity * MEM_BDS_PER_PARITY <= bd_id < (parity + 1) * MEM_BDS_PER_PARITY
            for bd in task.bds:
                if bd.buffer != "mem":
                    size, stride, _ = bd.iteration
                    last = (
                        bd.offset
                        + (size - 1) * stride
                        + sum((s - 1) * st for s, st in zip(bd.sizes, bd.strides))
                    )
                    assert bd.offset >= 0 and last < sizes[bd.buffer], (bd, sizes[bd.buffer])
            pushed.append(op.task)
        elif isinstance(op, Await):
            queue = queued[run.tasks[op.task].queue]
            assert queue[0] == op.task, "awaits follow each channel's completion tokens"
            queue.pop(0)
            awaited.add(op.task)
        elif isinstance(op, SetLock):
            assert 0 <= op.value <= MAX_LOCK_VALUE
    assert sorted(pushed) == sorted(awaited) == list(range(len(run.tasks)))


@pytest.mark.parametrize("shape", ["tiny", "base", pytest.param("small", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", ["pipeline", "split"])
def test_programs_fit_the_hardware(shape, kind):
    d, h, n = SHAPES[shape]
    dims = WhisperDims(80, 1500, d, h, n, 51865, 448, d, h, n)
    weights = random_weights(dims) if shape == "tiny" else None
    plan = make_plan(kind, dims, DEFAULT_TILES, PHOENIX)
    for column, layouts in enumerate(plan_layouts(plan)):
        if weights is not None:
            blob, table = pack_weights(weights, column_weight_names(plan, column, weights))
            words = blob.size // 4
        else:  # the layout of the weights buffer only matters through offsets: lay them out apart
            names = [t.op.name for t in plan.columns[column]]
            table = {
                f"{n}.{part}": (i * (1 << 26), "<u2", ())
                for i, n in enumerate(names)
                for part in ("wb", "res", "g", "beta")
            }
            words = len(names) << 24
        runs = column_runs(plan, column)
        for run in runs if kind == "pipeline" else runs[:12]:  # split: every kind of op appears early
            _check_run(column_run(plan, column, list(run), layouts, table), layouts, words)


def _column_buffers(plan, column, layouts, weights):
    blob, table = pack_weights(weights, column_weight_names(plan, column, weights))
    ddr = {role: np.zeros(b.nbytes, np.uint8) for role, b in layouts.buffers.items()} | {"weights": blob}
    return ddr, table


@pytest.fixture(scope="module")
def small_weights():
    return random_weights(SMALL)


def test_every_op_within_one_ulp_of_the_emulator(small_weights):
    """Each op's program on the emulator's own inputs: the kernels sum K in order where the
    emulator's BLAS blocks, so an element may differ by one bf16 ulp (two after GELU: a one-ulp
    difference in its bf16 input moves its output by up to GELU's slope); a misplaced tile or
    row would be off by the size of the values."""
    plan = make_plan("pipeline", SMALL, DEFAULT_TILES, PHOENIX)
    mel = random_mels(1, SMALL)[0]
    acts = {"mel": prepare_mel(mel)}
    for op in plan.ops:
        acts[op.name] = run_op(op, acts, small_weights)
    kinds = Counter()
    for column, layouts in enumerate(plan_layouts(plan)):
        ddr, table = _column_buffers(plan, column, layouts, small_weights)
        for name, placed in layouts.buffers["in"].tensors.items():
            placed.view(ddr["in"])[...] = numerics.to_bf16_bits(acts[name])
        carry(layouts, ddr)
        for number, task in enumerate(plan.columns[column]):
            ColumnSim(plan, column_run(plan, column, [number], layouts, table), ddr).run_to_end()
            role, placed = layouts.place(task.op.name)
            got, want = numerics.from_bf16_bits(placed.view(ddr[role])), acts[task.op.name]
            ulp = np.spacing(np.abs(want).astype(np.float32)) * 2.0**16  # bf16 has 16 fewer mantissa bits
            assert np.all(np.abs(got - want) <= (2 if task.op.gelu else 1) * ulp), task.op.name
            assert np.mean(got == want) > 0.99, task.op.name
            placed.view(ddr[role])[...] = numerics.to_bf16_bits(want)  # the next op starts exact
            kinds[task.op.kind] += 1
    assert set(kinds) == {"conv", "layernorm", "matmul", "attention"}


@pytest.mark.parametrize("dims", [SMALL, FOUR_HEADS], ids=["2heads", "4heads"])
@pytest.mark.parametrize("kind", ["pipeline", "split"])
def test_a_window_through_the_column_programs(dims, kind):
    weights = random_weights(dims)
    mel = random_mels(1, dims, seed=3)[0]
    got = simulate_window(make_plan(kind, dims, DEFAULT_TILES, PHOENIX), weights, mel)
    want = encode_window(mel, weights)
    err = np.abs(got - want)
    # one-ulp differences from the K order, carried through the layers; nothing larger
    assert err.max() < 0.02 * np.abs(want).max() and np.mean(err == 0) > 0.7


@pytest.mark.slow
def test_a_full_length_window(small_weights):
    """1500 positions: 47 query and key/value tiles (28 rows in the last), 47 row tiles."""
    dims = WhisperDims(80, 1500, 128, 2, 1, 51865, 448, 128, 2, 1)
    weights = random_weights(dims)
    mel = random_mels(1, dims)[0]
    got = simulate_window(make_plan("pipeline", dims, DEFAULT_TILES, PHOENIX), weights, mel)
    want = encode_window(mel, weights)
    assert np.abs(got - want).max() < 0.02 * np.abs(want).max()


def test_the_simulator_catches_broken_programs(small_weights):
    """A missing weight task stalls the cores (a deadlock the simulator reports); a BD one tile
    off gives wrong numbers."""
    plan = make_plan("pipeline", SMALL, DEFAULT_TILES, PHOENIX)
    # a matmul (or conv) reading its A from the column's input buffer (random data below): which
    # one depends on where the pipeline is cut
    column, number = next(
        (c, i)
        for c, tasks in enumerate(plan.columns)
        for i, t in enumerate(tasks)
        if t.op.kind in ("matmul", "conv") and t.op.inputs[0] in plan_layouts(plan)[c].buffers["in"].tensors
    )
    layouts = plan_layouts(plan)[column]
    ddr, table = _column_buffers(plan, column, layouts, small_weights)
    run = column_run(plan, column, [number], layouts, table)
    dropped = next(
        i
        for i, op in enumerate(run.ops)
        if isinstance(op, Push) and run.tasks[op.task].channel == "b" and run.tasks[op.task].tile == "shim"
    )
    broken = type(run)(
        run.tasks,
        run.ops[:dropped]
        + [
            op
            for op in run.ops[dropped + 1 :]
            if not (isinstance(op, Await) and op.task == run.ops[dropped].task)
        ],
    )
    with pytest.raises(Deadlock, match="no progress"):
        ColumnSim(plan, broken, {k: v.copy() for k, v in ddr.items()}).run_to_end()
    rng = np.random.default_rng(0)
    for placed in layouts.buffers["in"].tensors.values():
        placed.view(ddr["in"])[...] = numerics.to_bf16_bits(
            numerics.bf16_round(rng.standard_normal((placed.rows, placed.cols)).astype(np.float32))
        )
    role, out = layouts.place(plan.columns[column][number].op.name)
    results = []
    for shift in (0, 32):  # the A tiles read one K step (64 columns) late
        tasks = list(run.tasks)
        a = next(i for i, t in enumerate(tasks) if t.tile == "shim" and t.channel == "a")
        bds = tuple(replace(bd, offset=bd.offset + shift) for bd in tasks[a].bds)
        tasks[a] = replace(tasks[a], bds=bds)
        buffers = {k: v.copy() for k, v in ddr.items()}
        ColumnSim(plan, type(run)(tasks, run.ops), buffers).run_to_end()
        results.append(numerics.from_bf16_bits(out.view(buffers[role])))
    assert np.abs(results[0] - results[1]).max() > 0.1 * np.abs(results[0]).max()
