"""The per-column NPU design as an IRON program (mlir-aie's aie.iron API, pinned in build.py).

One program per XRT run: the same column device (iron_column.py: tiles, buffers, locks, flows,
the cores' static DMAs, the Workers running iron_core.py's core program, given to the Program)
with that run's runtime sequence (iron_sequence.py), so aiecc's xclbin is the same for every run
of every plan.
Everything comes from the pure-Python descriptions the tests and the DMA simulator check:
npu/plan/design.py, npu/program/core.py, npu/program/column.py and the column_* op modules. Tile sizes are
the plan's (plan.tiles), through those descriptions.

Without mlir-aie the tests install a recording test double as `aie.iron` and the
`aie.dialects.aie` / `aiex` bindings the sequence uses (npustream/npu/iron_double*.py); this
module imports the real API and knows nothing of it.
"""

from __future__ import annotations

from aie.iron import Program, Runtime
from aie.iron.device import NPU1Col1

from mlir.iron_column import build_column, words
from mlir.iron_sequence import emit_run

ARGS = ("in", "scratch", "out", "weights")  # the runtime sequence's (and the XRT kernel's) buffers


def column_program(plan, run, sizes: dict[str, int]) -> Program:
    """The IRON program of one run. `sizes`: words of each runtime buffer (ARGS)."""
    column = build_column(plan)

    def sequence(*args):
        emit_run(column, run, dict(zip(ARGS, args, strict=True)))

    rt = Runtime(sequence, [words(max(sizes[a], 1)) for a in ARGS])
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


def run_module(plan, run, sizes: dict[str, int]) -> str:
    """The MLIR text of one run, resolved by IRON."""
    return str(column_program(plan, run, sizes).resolve_program())
