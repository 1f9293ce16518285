"""Compute cycles of the AIE kernels and the cores' program memory, as COUNTED from kernels/ (the
vector paths as written) by tests/tools/kernel_count.py into kernel_costs_table.py; a test
recounts and fails when the table and the code disagree. Every figure is a model's prediction of
the code as written (one vector instruction, two loads and one store per cycle, loops fully
software-pipelined; the assumptions below), not a measurement: docs/npu-numerics.md, "Kernel
costs", has the method.

The table is counted at one tile size and model width (COUNTED_AT); a call at other sizes scales
by its loop nest's size (every kernel loop's trips are linear in it): matmul calls by m*k*n or
m*n, LayerNorm by rows*d, attention by mq*nk*dh (update) or mq*dh (finish), GELU by elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.ops.graph import NpuOp
from npustream.npu.ops.kernel_costs_table import CALLS, COUNTED_AT, PROGRAM_BYTES_BY_FILE
from npustream.npu.ops.tiles import Tiles, n_tiles, padded
from npustream.npu.ops.weights import matmul_shape

# assumptions of the counting method (tests/tools/kernel_count.py reads them from here)
LOOKUP_CYCLES = 4  # a 16-lane aie::parallel_lookup on a 4-bank table: 4 lanes per cycle
SOFT_FLOAT_CYCLES = 30  # one scalar fp32 step through compiler-rt's soft-float (AIE2's scalar unit)
INSTRUCTION_BYTES = 8  # mean AIE2 instruction (the formats run from 16 to 128 bits)
PIPELINE_COPIES = 3  # a software-pipelined loop: prologue, kernel, epilogue
FUNCTION_BYTES = 32  # a function's prologue and epilogue
LOOP_BYTES = 16  # a loop's set-up and branch
SOFT_FLOAT_LIB_BYTES = 3072  # compiler-rt's fp32 add, sub, mul, div, compare, int <-> float
GLUE_BYTES_PER_ENTRY = 48  # mlir/column_glue.cc: pointer arithmetic and one kernel call each
CORE_BYTES_PER_NODE = 24  # the core program: one lock, counter, loop or call node
PROGRAM_MEMORY_BYTES = 16 * 1024  # Phoenix (AIE2) core program memory
LINKED = ("attention.cc", "layernorm.cc", "matmul.cc")  # the kernels the cores link (mlir/build.py)
GLUE_ENTRIES = 10  # column_glue.cc's entry points (core_program.GLUE)


@dataclass(frozen=True)
class Cycles:
    """Predicted cycles on one compute tile: `mmul` of them issue the 4x8x4 bf16 MAC (128 MACs
    each), the rest are everything else the kernel's code issues."""

    total: float
    mmul: float

    def __add__(self, other: Cycles) -> Cycles:
        return Cycles(self.total + other.total, self.mmul + other.mmul)

    def __mul__(self, times: float) -> Cycles:
        return Cycles(self.total * times, self.mmul * times)


def _size(row: str, tiles: Tiles, d_model: int, d_head: int) -> int:
    m, k, n = tiles.matmul_m, tiles.matmul_k, tiles.matmul_n
    return {
        "matmul_zero": m * n,
        "matmul_acc": m * k * n,
        "layernorm": tiles.layernorm_rows * d_model,
        "attn_update": tiles.attn_q_rows * tiles.attn_kv_rows * d_head,
        "attn_finish": tiles.attn_q_rows * d_head,
        "gelu": tiles.gelu_elems,
    }.get(row, m * n)  # the matmul_out variants


def call_cycles(row: str, tiles: Tiles, d_model: int, d_head: int) -> Cycles:
    """Predicted cycles of one kernel call (a row of the table) at these sizes."""
    counted = CALLS[row]
    scale = _size(row, tiles, d_model, d_head) / _size(row, Tiles(**COUNTED_AT["tiles"]), *COUNTED_AT["dims"])
    return Cycles(counted["cycles"] * scale, counted["mmul"] * scale)


def op_cycles(op: NpuOp, dims: WhisperDims, tiles: Tiles) -> Cycles | None:
    """Predicted cycles of the whole op's kernel calls, summed over tiles; None for an op kind
    the custom kernels do not run."""
    d, dh = dims.n_audio_state, dims.d_head

    def call(row: str) -> Cycles:
        return call_cycles(row, tiles, d, dh)

    if op.kind in ("matmul", "conv"):
        k, n = matmul_shape(op.name, dims)
        outputs = n_tiles(op.rows, tiles.matmul_m) * n_tiles(n, tiles.matmul_n)
        out = "matmul_out" + ("_gelu" if op.gelu else "") + ("_residual" if op.residual else "")
        steps = padded(k, tiles.matmul_k) // tiles.matmul_k
        return (call("matmul_zero") + call("matmul_acc") * steps + call(out)) * outputs
    if op.kind == "layernorm":
        return call("layernorm") * n_tiles(op.rows, tiles.layernorm_rows)
    if op.kind == "attention":
        q_tiles, kv_tiles = n_tiles(op.rows, tiles.attn_q_rows), n_tiles(op.rows, tiles.attn_kv_rows)
        return (call("attn_update") * kv_tiles + call("attn_finish")) * (op.heads * q_tiles)
    return None


def program_memory(core_nodes: int) -> dict[str, int]:
    """Predicted program bytes of one core, by part: the kernels it links (counted), compiler-rt's
    soft-float, the glue and the core program (core_nodes nodes). Settled only by the linked ELF."""
    parts = {name: PROGRAM_BYTES_BY_FILE[name] for name in LINKED}
    parts["soft-float (compiler-rt)"] = SOFT_FLOAT_LIB_BYTES
    parts["glue (column_glue.cc)"] = GLUE_BYTES_PER_ENTRY * GLUE_ENTRIES
    parts["core program"] = CORE_BYTES_PER_NODE * core_nodes
    parts["total"] = sum(parts.values())
    return parts


def per_call_table(tiles: Tiles, dims: WhisperDims) -> dict[str, int]:
    """Predicted cycles per kernel call at these sizes, by table row (what `plan --json` shows)."""
    return {row: math.ceil(call_cycles(row, tiles, dims.n_audio_state, dims.d_head).total) for row in CALLS}
