"""The per-column NPU design as an IRON program (mlir-aie's aie.iron API, pinned in build.py), and
one MLIR module per plan holding a named runtime sequence per XRT run.

Every run of every column uses the same column device (iron_column.py: tiles, buffers, locks,
flows, the cores' static DMAs, the Workers running iron_core.py's core program, given to the
Program), so aiecc's xclbin is the same for every run of every plan; runs differ only in their
runtime sequence (iron_sequence.py).

`plan_module`: IRON's Program resolves the device and ONE runtime sequence (IRON at the pin has no
way to give a Program several: python/iron/program.py@e5562efc resolves one Runtime, whose
sequence the dialect decorator names after IRON's function, `@sequence`). That sequence is the
plan's first run, renamed; every other run is added to the same device as its own
`aie.runtime_sequence @c<column>_r<run>` with the dialect's decorator
(`aiex.runtime_sequence(*types, sym_name=...)`, python/dialects/aiex.py@4fb79094), emitted at the
dialect level (iron_sequence.emit_run, iron_chains=False). aiecc then compiles the cores once and
writes one instruction stream per sequence, `insts_<device>_<sequence>.bin` (mlir/README.md).

Everything comes from the pure-Python descriptions the tests and the DMA simulator check:
npu/plan/design.py, npu/program/core.py, npu/program/column.py and the column_* op modules. Tile
sizes are the plan's (plan.tiles), through those descriptions.

Without mlir-aie the tests install a recording test double as `aie.iron`, `aie.ir` and the
`aie.dialects.aie` / `aiex` bindings the sequence uses (tests/doubles/iron/); this module imports
the real API and knows nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aie import ir
from aie.dialects import aiex
from aie.iron import Program, Runtime
from aie.iron.device import NPU1Col1

from mlir.iron_column import build_column, words
from mlir.iron_sequence import emit_run

ARGS = ("in", "scratch", "out", "weights")  # the runtime sequence's (and the XRT kernel's) buffers
DEVICE = "main"  # the device's symbol: IRON's resolve_program(device_name="main") default
SEQUENCE_OPS = ("aie.runtime_sequence", "aiex.runtime_sequence")  # the op's name, newer and older


def sequence_name(column: int, number: int) -> str:
    """The runtime sequence (and aiecc key) of a column's run."""
    return f"c{column}_r{number:03d}"


@dataclass(frozen=True)
class NamedRun:
    """One XRT run as a named runtime sequence: `sizes` are the words of each runtime buffer (ARGS)
    of its column."""

    name: str
    run: object  # npu/program/column.ColumnRun
    sizes: dict


@dataclass(frozen=True)
class BlockArg:
    """A runtime sequence's block argument where iron_sequence expects IRON's RuntimeData (.op)."""

    op: object


def _types(sizes: dict) -> list:
    return [words(max(sizes[a], 1)) for a in ARGS]


def _program(column, run, sizes: dict) -> Program:
    def sequence(*args):
        emit_run(column, run, dict(zip(ARGS, args, strict=True)))

    rt = Runtime(sequence, _types(sizes))
    for flow in column.flows.values():
        rt.add_flow(flow)
    for tile_dma in column.tile_dmas:
        rt.add_tile_dma(tile_dma)
    for lock in [
        *column.mem_locks.values(),
        *column.go,  # shared by a Worker or the sequence and a DMA
        *(lock for locks in column.fifo_locks for pair in locks.values() for lock in pair),
    ]:
        rt.add_lock(lock)
    # The ring is the one Buffer only the sequence's tasks touch; the cores' Buffers (and the
    # Kernels) reach IRON through their Workers' fn_args (iron_core.worker_args).
    rt.add_buffer(column.ring)
    return Program(NPU1Col1(), rt, workers=column.workers)


def column_program(plan, run, sizes: dict[str, int]) -> Program:
    """The IRON program of one run alone (its sequence IRON's). `sizes`: words of each runtime
    buffer (ARGS)."""
    return _program(build_column(plan), run, sizes)


def plan_module(plan, runs: list[NamedRun]):
    """The resolved module of a plan: the column device and one named runtime sequence per run,
    in `runs` order after the first (IRON's, renamed), which comes last in the module."""
    column = build_column(plan)
    first, rest = runs[0], runs[1:]
    module = _program(column, first.run, first.sizes).resolve_program(device_name=DEVICE)
    with module.context, ir.Location.unknown():
        (device,) = module.body.operations
        block = device.regions[0].blocks[0]
        (iron_sequence,) = [op for op in block.operations if op.operation.name in SEQUENCE_OPS]
        iron_sequence.attributes["sym_name"] = ir.StringAttr.get(first.name)
        with ir.InsertionPoint(iron_sequence):
            for named in rest:
                _named_sequence(column, named)
    return module


def _named_sequence(column, named: NamedRun) -> None:
    @aiex.runtime_sequence(*_types(named.sizes), sym_name=named.name)
    def sequence(*args):
        host = {role: BlockArg(arg) for role, arg in zip(ARGS, args, strict=True)}
        emit_run(column, named.run, host, iron_chains=False)
