"""The IRON design (mlir/encoder_column.py and the iron_* modules) recorded by the test double of
mlir-aie's Python API (npustream/npu/iron_double*.py) when mlir-aie is absent: every run of both
plans for Whisper base on Phoenix is expressed, its sequence matching the column program one for
one (every task, BD, BD id, lock use, iteration, repeat count and await); the device and the core
program match the descriptions; the resource checker passes on the recorded buffers; build.py's
module generation runs. What the double itself refuses: test_npu_iron_double.py."""

from __future__ import annotations

import importlib
import json
import sys

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


def test_build_writes_one_module_with_a_named_sequence_per_run(iron, tmp_path):
    """One module per plan: IRON's device and sequence (the first run, renamed) and every other
    run of every column as its own named aie.runtime_sequence, each recorded op for op as its
    column program says, at the dialect level where IRON's tile_dma_chain cannot be used."""
    build = importlib.import_module("mlir.build")
    _double, design = iron
    weights = random_weights(SMALL)
    plan = make_plan("split", SMALL, DEFAULT_TILES, PHOENIX)
    names = build.write_module(tmp_path, plan, weights)
    want = [[f"c{c}_r{n:03d}" for n in range(len(column_runs(plan, c)))] for c in range(len(plan.columns))]
    assert names == want
    assert [p.name for p in tmp_path.glob("*.mlir")] == [build.MODULE]
    text = (tmp_path / build.MODULE).read_text()
    assert text.startswith("// npustream's iron_double record, NOT MLIR")  # the double stands in for MLIR
    flat = [named for runs in build.plan_runs(plan, weights) for named in runs]
    module = design.plan_module(plan, flat)
    sequences = module.sequences()
    assert sorted(sequences) == sorted(n for column in want for n in column) and len(sequences) == len(flat)
    assert f"{len(flat)} runtime sequences" in text and "@c0_r000" in text and "@sequence" not in text
    for named in flat:
        assert _recorded(sequences[named.name]) == _expected(named.run), named.name
    # IRON's own sequence is the first run's (IRON's runtime chains allowed there); the others hold
    # dialect-level tasks only, mem-tile chains included
    assert module.sequence is sequences["c0_r000"]
    assert not any(op[0] == "push" for name, ops in sequences.items() if name != "c0_r000" for op in ops)
    mem_tasks = [op[1] for ops in sequences.values() for op in ops if op[0] == "start_task"]
    assert any(task.tile.row == 1 for task in mem_tasks)


def test_the_dialect_decorator_names_sequences_and_iron_chains_stay_in_irons(iron):
    """aiex.runtime_sequence names a sequence sym_name or else its function; a second sequence of
    one name is a symbol redefinition; IRON's tile_dma_chain works only in IRON's sequence body."""
    double, design = iron
    plan, run, sizes = _first("split", 0)
    module = design.column_program(plan, run, sizes).resolve_program()
    assert list(module.sequences()) == ["sequence"]  # IRON's function is named `sequence`
    aiex, ir = sys.modules["aie.dialects.aiex"], sys.modules["aie.ir"]
    column = importlib.import_module("mlir.iron_column").build_column(plan)
    (first,) = module.body.operations[0].sequences()
    with module.context, ir.Location.unknown(), ir.InsertionPoint(first):

        @aiex.runtime_sequence(*design._types(sizes))
        def spare(*args):
            pass

        with pytest.raises(ValueError, match="redefinition"):
            aiex.runtime_sequence(*design._types(sizes), sym_name="spare")(lambda *a: None)

        @aiex.runtime_sequence(*design._types(sizes), sym_name="chain")
        def chained(*args):
            iron_api = sys.modules["aie.iron"]
            bd = iron_api.Bd(column.ring, offset=0, length=4)
            with pytest.raises(RuntimeError, match="outside IRON's runtime sequence"):
                iron_api.tile_dma_chain(column.mem, double.DMAChannelDir.MM2S, 0, [bd])

    assert list(module.sequences()) == ["spare", "chain", "sequence"]  # inserted before IRON's


def test_aiecc_is_called_once_for_the_xclbin_and_every_sequence(iron, tmp_path):
    """tools/aiecc/CommandLineOptions.h (build.AIECC_CLI): outputs by --get-<name>, Peano the
    default (no --no-xchesscc / --no-xbridge / --aie-generate-*, which that aiecc rejects as
    unknown options); no --sequence-name, so every sequence's stream, named by the template."""
    build = importlib.import_module("mlir.build")
    command = build.aiecc_command(tmp_path)
    assert command[0] == "aiecc" and command[-1] == build.MODULE == "encoder.mlir"
    flags = dict(arg.split("=", 1) if "=" in arg else (arg, None) for arg in command[1:-1])
    assert flags == {
        "--peano": str(tmp_path),
        "--output-dir": "aiecc",
        "--get-xclbin": None,
        "--xclbin-name": build.XCLBIN,
        "--get-npu-insts": None,
        "--npu-insts-name": "insts_{0}.bin",
    }
    assert not any("generate" in arg or "xchesscc" in arg or "xbridge" in arg for arg in command)
    # aiecc's key is <device>_<sequence> (test/aiecc/cpp_npu_cpp_dynamic.mlir: insts_main_static17.bin)
    assert build.insts_file("c2_r017") == "aiecc/insts_main_c2_r017.bin"


def test_the_manifest_maps_each_run_to_its_sequences_instruction_file(iron, tmp_path):
    build = importlib.import_module("mlir.build")
    from npustream.npu.run.manifest import write_manifest

    weights = random_weights(SMALL)
    plan = make_plan("split", SMALL, DEFAULT_TILES, PHOENIX)
    names = [[f"c{c}_r{n:03d}" for n in range(len(column_runs(plan, c)))] for c in range(len(plan.columns))]
    path = write_manifest(
        tmp_path,
        plan,
        weights,
        xclbin=f"aiecc/{build.XCLBIN}",
        insts=[[build.insts_file(n) for n in column] for column in names],
        toolchain={},
    )
    manifest = json.loads(path.read_text())
    for c, column in enumerate(manifest["columns"]):
        want = [f"aiecc/insts_main_c{c}_r{n:03d}.bin" for n in range(len(column["runs"]))]
        assert [r["insts"] for r in column["runs"]] == want
    assert sum(len(c["runs"]) for c in manifest["columns"]) == 4 * len(plan.ops)  # a run per op and column
