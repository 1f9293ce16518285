"""The IRON design (mlir/encoder_column.py and the iron_* modules) recorded by the test double of
mlir-aie's Python API (npustream/npu/iron_double*.py) when mlir-aie is absent: every run of both
plans for Whisper base on Phoenix is expressed, its sequence matching the column program one for
one (every task, BD, BD id, lock use, iteration, repeat count and await); the device and the core
program match the descriptions; the resource checker passes on the recorded buffers; build.py's
module generation runs. What the double itself refuses: test_npu_iron_double.py."""

from __future__ import annotations

import importlib

import pytest
from npu_random_weights import random_weights

from npustream.model.dims import WhisperDims
from npustream.npu.ops.params import CALIBRATED_PRESETS
from npustream.npu.ops.tiles import DEFAULT_TILES
from npustream.npu.plan.buffers import column_weight_names, pack_weights, plan_layouts
from npustream.npu.plan.design import core_buffers, memtile_bytes, memtile_locks
from npustream.npu.plan.plans import column_runs, make_plan
from npustream.npu.predict.resources import check_recorded_design
from npustream.npu.program import core as cp
from npustream.npu.program.column import Await, Push, SetLock, WriteDescriptor
from npustream.npu.program.runs import column_run

SMALL = WhisperDims(80, 200, 128, 2, 1, 51865, 448, 128, 2, 1)
BASE = WhisperDims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)
PHOENIX = CALIBRATED_PRESETS["phoenix"]  # the parameters plans are chosen and built with
ARGS = ("in", "scratch", "out", "weights")


def _runs(kind: str, dims: WhisperDims, weights, only=None):
    """(plan, column, number, run, sizes) for every run of the plan (or column `only`)."""
    plan = make_plan(kind, dims, DEFAULT_TILES, PHOENIX)
    for column, layouts in enumerate(plan_layouts(plan)):
        if only is not None and column != only:
            continue
        blob, table = pack_weights(weights, column_weight_names(plan, column, weights))
        sizes = {role: b.nbytes // 4 for role, b in layouts.buffers.items()} | {"weights": blob.size // 4}
        for number, tasks in enumerate(column_runs(plan, column)):
            yield plan, column, number, column_run(plan, column, list(tasks), layouts, table), sizes


def _first(kind: str, column: int):
    plan, _, _, run, sizes = next(_runs(kind, SMALL, random_weights(SMALL), only=column))
    return plan, run, sizes


def _expected(run) -> list[tuple]:
    """The run's sequence as events: lock sets, descriptor words, pushes (the task's form), awaits
    (by push number)."""
    events, numbers = [], {}
    for op in run.ops:
        if isinstance(op, SetLock):
            ring, _ = op.lock.split(".")
            events.append(
                (
                    "set_lock",
                    f"go_c{ring[4:]}" if ring.startswith("core") else op.lock.replace(".", "_"),
                    op.value,
                )
            )
        elif isinstance(op, WriteDescriptor):
            events += [("rtp_write", f"desc_c{op.core}", i, v) for i, v in enumerate(op.values)]
        elif isinstance(op, Push):
            task, numbers[op.task] = run.tasks[op.task], len(numbers)
            lock = lambda use: (use.lock.replace(".", "_"), use.value) if use else None  # noqa: E731
            bds = tuple(
                (
                    bd.buffer,
                    bd.offset,
                    bd.length,
                    bd.sizes,
                    bd.strides,
                    bd.iteration if bd.iteration[0] > 1 else (1, 0, 0),
                    bd_id,
                    lock(bd.acquire),
                    lock(bd.release),
                )
                for bd, bd_id in zip(task.bds, op.bd_ids, strict=True)
            )
            events.append(
                (
                    "push",
                    ("shim", "mem").index(task.tile),
                    task.direction,
                    task.channel_index,
                    task.repeat,
                    bds,
                )
            )
        elif isinstance(op, Await):
            events.append(("await", numbers[op.task]))
    return events


def _iron_bd(bd) -> tuple:
    lock = lambda uses: (uses[0].lock.name, uses[0].value) if uses else None  # noqa: E731
    assert bd.buffer.name == "ring" and bd.iteration is None
    return (
        "mem",
        bd.offset,
        bd.length,
        tuple(bd.sizes) or (bd.length,),
        tuple(bd.strides) or (1,),
        (1, 0, 0),
        bd.bd_id,
        lock(bd.acquires),
        lock(bd.releases),
    )


def _dialect_bds(task) -> tuple:
    """A dialect-level task's BDs in chain order, from block 0 along next_bd to aie.end."""
    out, at, seen = [], 0, set()
    while True:
        assert at not in seen, "the chain loops"
        seen.add(at)
        ops = task.blocks[at]
        ((_, buffer, offset, length, sizes, strides, kw),) = [op for op in ops if op[0] == "dma_bd"]
        locks = {op[2].name: (op[1].owner.name, op[3]) for op in ops if op[0] == "use_lock"}
        name = "mem" if buffer.kind == "buffer" and buffer.owner.name == "ring" else ARGS[buffer.owner.index]
        out.append(
            (
                name,
                offset,
                length,
                sizes or (length,),
                strides or (1,),
                kw.get("iteration", (1, 0, 0)),
                kw["bd_id"],
                locks.get("AcquireGreaterEqual"),
                locks.get("Release"),
            )
        )
        if ops[-1][0] == "end":
            assert seen == set(range(len(task.blocks))), "every block is on the chain"
            return tuple(out)
        at = ops[-1][1]


def _recorded(sequence) -> list[tuple]:
    events, numbers = [], {}
    for at, op in enumerate(sequence):
        if op[0] in ("set_lock", "rtp_write"):
            events.append(op)
        elif op[0] == "push":  # IRON's tile_dma_chain
            _, _, row, direction, channel, bds, repeat, wait = op
            assert wait
            numbers[("iron", at)] = len(numbers)
            events.append(("push", row, direction, channel, repeat, tuple(_iron_bd(bd) for bd in bds)))
        elif op[0] == "await":
            events.append(("await", numbers[("iron", op[1])]))
        elif op[0] == "start_task":  # the dialect level (configure_task came just before)
            task = op[1]
            assert task.issue_token and id(task) not in numbers
            numbers[id(task)] = len(numbers)
            events.append(
                (
                    "push",
                    task.tile.row,
                    task.direction.name,
                    task.channel,
                    task.repeat_count,
                    _dialect_bds(task),
                )
            )
        elif op[0] == "await_task":
            events.append(("await", numbers[id(op[1])]))
        else:
            assert op[0] == "configure_task", op
    return events


@pytest.fixture(scope="module")
def base_weights():
    return random_weights(BASE)


@pytest.mark.parametrize("kind", ["pipeline", "split"])
def test_every_run_is_recorded_one_for_one(iron, base_weights, kind):
    _, design = iron
    runs = tasks = 0
    for plan, column, number, run, sizes in _runs(kind, BASE, base_weights):
        recorded = design.column_program(plan, run, sizes).resolve_program()
        assert _recorded(recorded.sequence) == _expected(run), f"column {column} run {number}"
        runs, tasks = runs + 1, tasks + len(run.tasks)
    assert runs == (4 if kind == "pipeline" else 180) and tasks > 17000  # measured: 17289 and 17887 tasks


def test_device_buffers_locks_flows_and_core_programs(iron):
    _double, design = iron
    plan, run, sizes = _first("pipeline", 0)
    recorded = design.column_program(plan, run, sizes).resolve_program()
    rt, cb = recorded.rt, core_buffers(plan.dims, plan.tiles)
    by_name = {b.name: b for b in rt.buffers}
    assert by_name["ring"].tile.row == 1 and by_name["ring"].nbytes == memtile_bytes(plan.dims, plan.tiles)
    for c in range(4):
        for fifo, size in (("in0", cb.in0), ("in1", cb.in1), ("out", cb.out)):
            assert by_name[f"{fifo}_c{c}"].tile.row == 2 + c and by_name[f"{fifo}_c{c}"].nbytes == 2 * size
        assert by_name[f"desc_c{c}"].use_write_rtp and by_name[f"desc_c{c}"].shape == (len(cp.FIELDS),)
    locks = {lk.name: lk for lk in rt.locks}
    assert {n.replace(".", "_") for n in memtile_locks(plan.dims, plan.tiles)} <= set(locks)
    assert all(locks[n.replace(".", "_")].tile.row == 1 for n in memtile_locks(plan.dims, plan.tiles))
    assert {locks[f"in0_prod_c{c}"].init for c in range(4)} == {2}
    # the flows: shim -> mem (a, b), mem -> cores (two row streams, the broadcast), cores -> mem, mem -> shim
    ends = {(f.src.row, f.src_channel): sorted(d.row for d in f.dsts) for f in rt.flows}
    assert ends[(1, 0)] == [2, 3] and ends[(1, 1)] == [4, 5] and ends[(1, 2)] == [2, 3, 4, 5]
    assert ends[(0, 0)] == ends[(0, 1)] == [1] and ends[(1, 3)] == [0]
    # each core: a ping-pong TileDma per FIFO, and its Worker's program: the phase loop
    for td in rt.tile_dmas:
        assert [(ch.direction.name, ch.channel, len(ch.bds)) for ch in td.channels] == [
            ("S2MM", 0, 2),
            ("S2MM", 1, 2),
            ("MM2S", 0, 2),
        ]
    assert [w.tile.row for w in rt.workers] == [2, 3, 4, 5]
    for c, worker in enumerate(rt.workers):
        (once,) = worker.body  # Worker.resolve's scf.for of one trip (while_true=False)
        assert once[:2] == ("for", 1)
        stores, (loop,) = once[2][:-1], once[2][-1:]
        assert [s[:3] for s in stores] == [("store", f"count_c{c}", i) for i in range(6)]
        assert loop[0] == "for" and loop[2][0] == ("acquire", f"go_c{c}", 1)
        assert set(_calls(loop[2])) == set(cp.GLUE), "every glue entry point is called by the core program"


def _calls(ops) -> list[str]:
    out = []
    for op in ops:
        if op[0] == "call":
            out.append(op[1])
        elif op[0] == "for":
            out += _calls(op[2])
    return out


def test_resource_checker_on_the_recorded_design(iron):
    _double, design = iron
    plan, run, sizes = _first("split", 2)
    recorded = design.column_program(plan, run, sizes).resolve_program()
    report = check_recorded_design(recorded, PHOENIX, plan.dims, plan.tiles)
    assert report.ok, report.violations
    tight = check_recorded_design(
        recorded,
        PHOENIX.replace(memtile_bytes=memtile_bytes(plan.dims, plan.tiles) - 1),
        plan.dims,
        plan.tiles,
    )
    assert [v.resource for v in tight.violations] == ["mem tile"]


def test_build_writes_one_module_per_run(iron, tmp_path):
    build = importlib.import_module("mlir.build")
    weights = random_weights(SMALL)
    plan = make_plan("split", SMALL, DEFAULT_TILES, PHOENIX)
    names = build.write_modules(tmp_path, plan, weights)
    assert names == [
        [f"c{c}_r{n:03d}" for n in range(len(column_runs(plan, c)))] for c in range(len(plan.columns))
    ]
    text = (tmp_path / f"{names[0][0]}.mlir").read_text()
    assert text.startswith(
        "// npustream's iron_double record, NOT MLIR"
    )  # the double stands in for MLIR here


def test_aiecc_commands_follow_the_2026_command_line(tmp_path):
    """tools/aiecc/CommandLineOptions.h (build.AIECC_CLI): outputs by --get-<name>, Peano the
    default (no --no-xchesscc / --no-xbridge / --aie-generate-*, which that aiecc rejects as
    unknown options); the cores compiled once, for the first run's xclbin."""
    build = importlib.import_module("mlir.build")
    commands = build.aiecc_commands(["c0_r000", "c0_r001", "c1_r000"], tmp_path)
    selectors = {"--get-xclbin", "--get-npu-insts", "--get-input-with-addresses"}
    for i, command in enumerate(commands):
        assert command[0] == "aiecc" and command[-1].endswith(".mlir")
        flags = {arg.split("=")[0] for arg in command[1:-1]}
        assert flags <= selectors | {"--peano", "--output-dir", "--xclbin-name", "--npu-insts-name"}
        assert ("--get-xclbin" in flags) == (i == 0)
        assert f"--output-dir=runs/{command[-1][:-5]}" in command
    assert not any("generate" in arg or "xchesscc" in arg or "xbridge" in arg for c in commands for arg in c)


def test_buffer_addresses_are_compared_across_modules():
    build = importlib.import_module("mlir.build")
    text = (
        '    %in0_c0 = aie.buffer(%tile_0_2) {address = 1024 : i32, sym_name = "in0_c0"} : memref<4096xi32>\n'
        '    %ring = aie.buffer(%tile_0_1) {address = 0 : i32, sym_name = "ring"} : memref<131072xi32>\n'
    )
    assert build.buffer_addresses(text) == {"in0_c0": 1024, "ring": 0}
    assert build.buffer_addresses(text.replace("1024", "2048")) != build.buffer_addresses(text)
