"""The per-column NPU program's buffers and dataflows, as plain numbers: the single description
that the column program (npu/program/column.py, and through it the IRON/MLIR design in mlir/), the
timing model's byte counts and the resource checker all read. No mlir-aie needed to read it.

One column = shim tile (row 0), mem tile (row 1), 4 compute tiles (rows 2-5). The compute tiles
form a 2 x 2 grid: core c = (r, j) = divmod(c, 2) sits on row stream r and column half j.

    shim ch0 --> mem S2MM "a"  --> [mem buffers] --> mem MM2S "a0" --> cores (0,0) (0,1)  in0
    shim ch1 --> mem S2MM "b"  --> [mem buffers] --> mem MM2S "a1" --> cores (1,0) (1,1)  in0
                                                 --> mem MM2S "b"  --> all 4 cores        in1
    core c out --> mem S2MM "o<c>" --> [mem buffers] --> mem MM2S "o" --> shim S2MM --> DDR

Core-side buffers are fixed at build time (each FIFO has one object size, depth 2, a counting
lock pair, static ping-pong BDs); everything on the mem tile and the shim is programmed per task
by the runtime sequence (buffer descriptors, locks, repeat counts): so one core program and one
xclbin run every op, and the mem tile's memory is laid out afresh for each op (`memtile_layout`).

Every mem-tile buffer is a ring of slots with one writer (an S2MM channel) and one reader (an
MM2S channel) and a counting lock pair, reset at the start of each task. Writers from the shim
may write less than a slot (the payload); readers towards the cores always send whole slots
(the core-side object size), readers towards the shim only the payload.

Dataflows (the timing model counts exactly these bytes):
- matmul / conv: the column computes output blocks of 2 row tiles x 4 column tiles (128 x 128 at
  the default tiles). Core (r, j) owns row tile r and column tiles 2j, 2j+1 (two fp32 accumulators
  in L1, K accumulated in order: the numeric contract of numerics.matmul_tile). Per K step each
  row stream brings its row tile's A tile (both cores of the row use it) and the broadcast the 4
  weight tiles with their bias slices (each core uses its two); after the K loop the broadcast
  brings the block's residual tiles (each core takes its own two). The weights stream once per
  row pair. A is `resident` when the row pair's panel (2 row tiles x all of K) double-buffers in
  the mem tile (K up to d_model: qkv, out_proj, fc1, conv1): loaded once, re-read for every
  column block. Otherwise (fc2's K = 2048, conv2's 1536) A is `streamed` from DDR again for every
  column block, so no operand has to fit the mem tile: twice the shim traffic, still hidden.
- attention: per head, query tiles go out in groups of 4 (broadcast; core c takes the c-th);
  for each group the shim streams every key/value tile twice, once down each row stream, and
  each core with a query tile folds them all into its online softmax.
- layernorm: row chunks alternate between the row streams and, within one, between its two cores
  (each takes its own); gamma and beta are two broadcast objects every core holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npustream.errors import ConfigError
from npustream.model.dims import WhisperDims
from npustream.npu.ops import numerics
from npustream.npu.ops.graph import NpuOp
from npustream.npu.ops.params import NpuParams
from npustream.npu.ops.tiles import Tiles, n_tiles, padded
from npustream.npu.ops.weights import matmul_shape

BF16, F32 = 2, 4
STACK_BYTES = 1024  # mlir-aie's default core stack
ATTN_MAX_D_HEAD = 64  # kernels/attention.cc sizes its static k^T buffer for d_head 64 (every Whisper)
GRID = (2, 2)  # row streams x column halves: the 4 compute tiles of a column
BLOCK_ROW_TILES = 2  # row tiles per matmul output block (one per row stream)
BLOCK_COL_TILES = 4  # column tiles per block (two per core: its two accumulators)
OUT_SLOTS = 4  # per core on the mem tile: two blocks' output tiles in flight
FIFO_SLOTS = 2  # ping-pong everywhere else
STATE_BYTES = 128  # per core: the task descriptor (runtime parameters) and the FIFO indices
MEMTILE_BYTES = 512 * 1024  # Phoenix's mem tile (params.NpuParams.memtile_bytes; checked there)


@dataclass(frozen=True)
class CoreBuffers:
    """One compute tile's L1, fixed for the whole design (bytes)."""

    in0: int  # object of the row stream: A tile | residual pair | K|V tile | LayerNorm rows
    in1: int  # object of the broadcast: weight tile + bias slice | query tile | gamma | beta
    out: int  # object of the output FIFO: output tile | attention tile | LayerNorm rows
    scratch: int  # two matmul accumulators and bias slices | the attention state and query tile
    statics: int  # the kernels' static arrays (attention scores, P, k^T, alpha; the exp and Phi tables)
    state: int = STATE_BYTES
    stack: int = STACK_BYTES
    depth: int = FIFO_SLOTS

    @property
    def total(self) -> int:
        return (
            self.depth * (self.in0 + self.in1 + self.out)
            + self.scratch
            + self.statics
            + self.state
            + self.stack
        )


def core_buffers(dims: WhisperDims, tiles: Tiles) -> CoreBuffers:
    d, dh = dims.n_audio_state, dims.d_head
    m, k, n = tiles.matmul_m, tiles.matmul_k, tiles.matmul_n
    mq, nk = tiles.attn_q_rows, tiles.attn_kv_rows
    return CoreBuffers(
        in0=max(m * k * BF16, m * 2 * n * BF16, 2 * nk * dh * BF16, 2 * d * BF16),
        in1=max(weight_object_bytes(tiles), mq * dh * BF16, d * F32),
        out=max(m * n * BF16, mq * dh * BF16, d * BF16),
        scratch=max(2 * m * n * F32 + 2 * n * F32, (2 * mq + mq * dh) * F32 + mq * dh * BF16),
        # attention's scores, P, k^T and per-row bf16 scale; the exp and Phi tables (npu_aie.h)
        statics=mq * nk * F32
        + mq * nk * BF16
        + nk * ATTN_MAX_D_HEAD * BF16
        + mq * BF16
        + numerics.EXP_LUT_BYTES
        + numerics.PHI_LUT_BYTES,
    )


def weight_object_bytes(tiles: Tiles) -> int:
    """A weight tile (k x n bf16) followed by its bias slice (n fp32): layout "<op>.wb"."""
    return tiles.matmul_k * tiles.matmul_n * BF16 + tiles.matmul_n * F32


def layernorm_rows(dims: WhisperDims, tiles: Tiles) -> tuple[int, int]:
    """(rows per in0 object, rows per out object) of the LayerNorm dataflow."""
    cb = core_buffers(dims, tiles)
    r_out = cb.out // (dims.n_audio_state * BF16)
    return 2 * r_out, r_out


@dataclass(frozen=True)
class MatmulGeometry:
    """How a matmul share is cut into the column's output blocks."""

    rows: int  # output rows of the share
    k: int  # K (unpadded) and its K steps
    k_steps: int
    n: int  # N (unpadded) and its column tiles / column blocks
    col_tiles: int
    col_blocks: int
    row_tiles: int
    row_pairs: int
    residual: bool  # an activation residual or a constant one (conv2's positional embedding)
    resident: bool  # A of a row pair stays in the mem tile for all column blocks (else re-streamed)

    @property
    def blocks(self) -> int:
        return self.row_pairs * self.col_blocks


def matmul_geometry(op: NpuOp, rows: int, dims: WhisperDims, tiles: Tiles) -> MatmulGeometry:
    k_raw, n_raw = matmul_shape(op.name, dims)
    kp, np_ = padded(k_raw, tiles.matmul_k), padded(n_raw, tiles.matmul_n)
    col_tiles = np_ // tiles.matmul_n
    if col_tiles % BLOCK_COL_TILES:
        raise ConfigError(
            f"{op.name}: {n_raw} output columns are not whole blocks of "
            f"{BLOCK_COL_TILES} x {tiles.matmul_n}; the column design needs that"
        )
    residual = len(op.inputs) > 1 or op.weight_bytes > kp * np_ * BF16 + np_ * F32
    row_tiles = n_tiles(rows, tiles.matmul_m)
    k_steps = kp // tiles.matmul_k
    return MatmulGeometry(
        rows,
        k_raw,
        k_steps,
        n_raw,
        col_tiles,
        col_tiles // BLOCK_COL_TILES,
        row_tiles,
        n_tiles(row_tiles, BLOCK_ROW_TILES),
        residual,
        k_steps <= panel_k_steps(dims, tiles),
    )


@dataclass(frozen=True)
class Ring:
    """A ring of slots in the mem tile: one writer channel, one reader channel, a lock pair."""

    name: str
    slots: int
    slot_bytes: int
    offset: int  # bytes from the start of the mem tile

    @property
    def nbytes(self) -> int:
        return self.slots * self.slot_bytes


RING_SLOTS = {"a": 4, "b": 2 * BLOCK_COL_TILES, "o": OUT_SLOTS}
MAX_LOCK_UNITS = 63  # a lock counts at most 63: a ring's units (half in0 objects on a row stream)


def panel_k_steps(dims: WhisperDims, tiles: Tiles) -> int:
    """K steps of the longest A panel the row-stream rings double-buffer (0: none). Sized for the
    K = d_model matmuls (qkv, out_proj, fc1; conv1's K is smaller): two panels of a row tile each
    per row stream, if the mem tile holds them next to the other rings and a lock counts them."""
    cb = core_buffers(dims, tiles)
    k_steps = padded(dims.n_audio_state, tiles.matmul_k) // tiles.matmul_k
    rest = RING_SLOTS["b"] * cb.in1 + tiles_per_column() * RING_SLOTS["o"] * cb.out
    fits = (
        BLOCK_ROW_TILES * 2 * k_steps * cb.in0 + rest <= MEMTILE_BYTES and 2 * 2 * k_steps <= MAX_LOCK_UNITS
    )
    return k_steps if fits else 0


def memtile_rings(dims: WhisperDims, tiles: Tiles) -> dict[str, Ring]:
    """The mem tile's layout, the same for every op: the row streams' rings (A tiles or two A
    panels, K|V tiles, LayerNorm chunks), the broadcast ring (weight objects, residual and query
    tiles, gamma and beta) and one output ring per core. Slots hold whole core-side objects."""
    cb = core_buffers(dims, tiles)
    a = max(RING_SLOTS["a"], 2 * panel_k_steps(dims, tiles))
    sizes = [("a0", a, cb.in0), ("a1", a, cb.in0), ("b", RING_SLOTS["b"], cb.in1)]
    sizes += [(f"o{c}", RING_SLOTS["o"], cb.out) for c in range(tiles_per_column())]
    rings, offset = {}, 0
    for name, slots, slot_bytes in sizes:
        rings[name] = Ring(name, slots, slot_bytes, offset)
        offset += slots * slot_bytes
    return rings


def memtile_locks(dims: WhisperDims, tiles: Tiles) -> list[str]:
    """The mem tile's locks: a (free units, filled units) pair per ring, and per row stream a
    "hold" lock that keeps a resident A panel from being refilled while column blocks re-read it."""
    names = [f"{ring}.{role}" for ring in memtile_rings(dims, tiles) for role in ("prod", "cons")]
    return names + ["a0.hold", "a1.hold"]


def memtile_bytes(dims: WhisperDims, tiles: Tiles) -> int:
    return sum(r.nbytes for r in memtile_rings(dims, tiles).values())


def tiles_per_column() -> int:
    return GRID[0] * GRID[1]


# --- the static part: channels, flows, locks ---------------------------------------------------

MEM_S2MM = ("a", "b", "o0", "o1", "o2", "o3")  # mem tile input channels: from the shim, from cores
MEM_MM2S = ("a0", "a1", "b", "o")  # mem tile output channels: row streams, broadcast, to the shim
SHIM_MM2S = ("a", "b")  # shim: DDR -> mem tile
SHIM_S2MM = ("o",)  # shim: mem tile -> DDR
CORE_S2MM = ("in0", "in1")
CORE_MM2S = ("out",)


def check_params(params: NpuParams) -> None:
    """The design is for Phoenix's column: 4 compute tiles in a 2 x 2 grid."""
    if params.tiles_per_column != tiles_per_column():
        raise ConfigError(
            f"the column design needs {tiles_per_column()} compute tiles per column, "
            f"{params.name} has {params.tiles_per_column}"
        )


def c_header(dims: WhisperDims, tiles: Tiles) -> str:
    """The design's sizes for mlir/column_glue.cc (the AIE build's column_design.h)."""
    cb = core_buffers(dims, tiles)
    values = {
        "IN0_WORDS": cb.in0 // 4,
        "IN1_WORDS": cb.in1 // 4,
        "OUT_WORDS": cb.out // 4,
        "SCRATCH_FLOATS": cb.scratch // 4,
        "D_MODEL": dims.n_audio_state,
        "D_HEAD": dims.d_head,
        "LN_ROWS": layernorm_rows(dims, tiles)[1],
    }
    scale = float(np.float32(dims.d_head**-0.5))  # the emulator's fp32 softmax scale, exactly
    lines = ["// generated by npustream/npu/plan/design.py (mlir/build.py): do not edit", "#pragma once"]
    lines += [f"#define COL_{name} {value}" for name, value in values.items()]
    return "\n".join(lines + [f"#define COL_ATTN_SCALE {scale!r}f"]) + "\n"


# The stream routes of one column: (tile, channel) -> its destinations. A source with several
# destinations is a broadcast. The DMA simulator checks traffic against these; mlir/ makes one
# Flow per source from them.
FLOWS = {
    ("shim", "a"): [("mem", "a")],
    ("shim", "b"): [("mem", "b")],
    ("mem", "a0"): [("core0", "in0"), ("core1", "in0")],
    ("mem", "a1"): [("core2", "in0"), ("core3", "in0")],
    ("mem", "b"): [(f"core{c}", "in1") for c in range(4)],
    ("mem", "o"): [("shim", "o")],
    **{(f"core{c}", "out"): [("mem", f"o{c}")] for c in range(4)},
}
