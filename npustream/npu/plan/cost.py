"""The Phoenix timing model: what one op (or a share of it) costs on one column. PREDICTED, not
measured: every number this module produces is a model's estimate from params.NpuParams.

A column is a shim tile (DDR <-> array), a mem tile (512 KiB L2) and 4 compute tiles; the bytes
each moves are those of the dataflows in npu/plan/design.py (its docstring has them).

    compute   = (MACs / (128 x efficiency) + vector elems / 32 + transcendentals / 8) / clock,
                for the busiest compute tile's share of the op's counted work (graph.NpuOp)
    transfer  = the slowest of three DMA limits, each bytes / rate:
                  L1:   into / out of the busiest compute tile, 2 in + 2 out channels x 4 B/cycle
                  shim: DDR -> column, 2 in + 2 out channels x 4 B/cycle
                  DDR:  40 GB/s shared by the columns working at the same time
                  column (calibrated parameters only): read + written bytes over the column's achieved
                        DDR rate, fitted to published GEMM times (npu/predict/calibration.py)
    setup     = transfer that cannot overlap compute: what the first kernel call needs
    step      = with depth-2 buffers max(compute, transfer) per kernel call, so the share costs
                setup + max(C, T) + min(C, T) / steps; without double buffering C + T.
    dispatch  = one XRT run where the plan starts one (40 us; calibrated: the published ~260 us of a
                chained operator step); start-up (20 ms) is paid once.
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.ops.graph import NpuOp
from npustream.npu.ops.params import NpuParams
from npustream.npu.ops.tiles import Tiles, n_tiles, padded
from npustream.npu.plan.design import (
    BLOCK_COL_TILES,
    BLOCK_ROW_TILES,
    core_buffers,
    layernorm_rows,
    matmul_geometry,
    memtile_bytes,
    tiles_per_column,
    weight_object_bytes,
)

BF16, F32 = 2, 4


@dataclass(frozen=True)
class Share:
    """Which part of an op a column runs: output rows [row0, row1), heads [head0, head1)."""

    row0: int
    row1: int
    head0: int = 0
    head1: int = 1

    @staticmethod
    def whole(op: NpuOp) -> Share:
        return Share(0, op.rows, 0, op.heads)


@dataclass(frozen=True)
class Traffic:
    """Bytes and kernel calls of one op share on one column."""

    steps: int  # kernel calls (K steps / key-value tiles included) on the busiest tile
    tile_share: float  # busiest tile's share of the whole op's counted work
    l1_in: int  # bytes into the busiest compute tile
    l1_out: int
    ddr_in: int  # bytes from DDR into the column (shim)
    ddr_out: int
    setup_in: int  # of ddr_in, bytes that cannot overlap compute
    memtile: int  # bytes of the mem tile the share's buffers take


@dataclass(frozen=True)
class OpCost:
    """Predicted seconds of one op share on one column."""

    compute_s: float
    stream_s: float  # transfer that can overlap compute
    setup_s: float  # transfer that cannot
    dispatch_s: float  # 0 when the share runs inside a longer XRT run (pipeline stages)
    steps: int
    bound: str  # the DMA limit that set stream_s: "l1", "shim", "ddr" or (calibrated) "column"

    @property
    def transfer_s(self) -> float:
        return self.stream_s + self.setup_s

    def time_s(self, double_buffered: bool = True) -> float:
        return self.dispatch_s + self.busy_s(double_buffered)

    def busy_s(self, double_buffered: bool = True) -> float:
        """Time the column is busy with this share, dispatch excluded."""
        c, t = self.compute_s, self.stream_s
        if not double_buffered:
            return self.setup_s + c + t
        return self.setup_s + max(c, t) + min(c, t) / self.steps

    def exposed_transfer_s(self, double_buffered: bool = True) -> float:
        return self.busy_s(double_buffered) - self.compute_s

    def hidden_transfer_s(self, double_buffered: bool = True) -> float:
        return self.transfer_s - self.exposed_transfer_s(double_buffered)


def row_tile(op: NpuOp, tiles: Tiles) -> int:
    """Rows per kernel call: the granularity an op's rows can be split at."""
    return {
        "matmul": tiles.matmul_m,
        "conv": tiles.matmul_m,
        "layernorm": tiles.layernorm_rows,
        "attention": tiles.attn_q_rows,
    }[op.kind]


def _matmul(op: NpuOp, rows: int, dims: WhisperDims, tiles: Tiles) -> Traffic:
    m, k = tiles.matmul_m, tiles.matmul_k
    g = matmul_geometry(op, rows, dims, tiles)
    cb = core_buffers(dims, tiles)
    w_obj = weight_object_bytes(tiles)
    weights = g.col_tiles * g.k_steps * w_obj  # layout "<op>.wb": every weight tile with its bias
    a_rows = g.row_tiles * m * g.k_steps * k * BF16  # A of the share, in whole row tiles
    blocks = g.blocks  # core (0, j) works on every block (row tile 0 of each pair exists)
    per_block_in = g.k_steps * (cb.in0 + BLOCK_COL_TILES * cb.in1) + (2 * cb.in0 if g.residual else 0)
    residual = rows * g.n * BF16 if g.residual else 0
    # A once (resident panel) or again for every column block; the weights once per row pair
    a_passes, first_a = (
        (1, BLOCK_ROW_TILES * m * g.k_steps * k) if g.resident else (g.col_blocks, BLOCK_ROW_TILES * m * k)
    )
    return Traffic(
        steps=blocks * g.k_steps,
        tile_share=blocks * 2 / (n_tiles(op.rows, m) * g.col_tiles),
        l1_in=blocks * per_block_in,
        l1_out=blocks * 2 * cb.out,
        ddr_in=a_passes * a_rows + g.row_pairs * weights + residual,
        ddr_out=rows * g.n * BF16,
        setup_in=first_a * BF16 + BLOCK_COL_TILES * w_obj,  # the first panel or K step, 4 weight objects
        memtile=memtile_bytes(dims, tiles),
    )


def _attention(op: NpuOp, share: Share, dims: WhisperDims, tiles: Tiles) -> Traffic:
    mq, dh = tiles.attn_q_rows, dims.d_head
    cb = core_buffers(dims, tiles)
    heads = share.head1 - share.head0
    rows = share.row1 - share.row0
    q_tiles = n_tiles(rows, mq)
    groups = n_tiles(q_tiles, tiles_per_column())
    kv_tiles = n_tiles(op.rows, tiles.attn_kv_rows)
    kv_object = 2 * tiles.attn_kv_rows * dh * BF16  # a key tile and its value tile
    return Traffic(
        steps=heads * groups * kv_tiles,
        tile_share=heads * groups / (op.heads * n_tiles(op.rows, mq)),
        # every query tile of a group (broadcast), every key/value tile for each own query tile
        l1_in=heads * (q_tiles * cb.in1 + groups * kv_tiles * cb.in0),
        l1_out=heads * groups * cb.out,
        # per group every K|V tile down both row streams; the queries once
        ddr_in=heads * (groups * BLOCK_ROW_TILES * kv_tiles * kv_object + rows * dh * BF16),
        ddr_out=heads * rows * dh * BF16,
        setup_in=BLOCK_ROW_TILES * kv_object + tiles_per_column() * mq * dh * BF16,
        memtile=memtile_bytes(dims, tiles),
    )


def _layernorm(op: NpuOp, rows: int, dims: WhisperDims, tiles: Tiles) -> Traffic:
    d = dims.n_audio_state
    cb = core_buffers(dims, tiles)
    r_in, _ = layernorm_rows(dims, tiles)
    chunks = n_tiles(rows, r_in)
    own = n_tiles(chunks, tiles_per_column())
    stream = n_tiles(chunks, BLOCK_ROW_TILES)  # row stream 0 carries its two cores' chunks
    return Traffic(
        steps=max(own, 1),
        tile_share=own * r_in / padded(op.rows, tiles.layernorm_rows),
        l1_in=stream * cb.in0 + 2 * cb.in1,
        l1_out=own * 2 * cb.out,
        ddr_in=rows * d * BF16 + 2 * d * F32,
        ddr_out=rows * d * BF16,
        setup_in=BLOCK_ROW_TILES * r_in * d * BF16 + 2 * d * F32,
        memtile=memtile_bytes(dims, tiles),
    )


def traffic(op: NpuOp, share: Share, dims: WhisperDims, tiles: Tiles, params: NpuParams) -> Traffic:
    rt = row_tile(op, tiles)
    if share.row0 % rt:
        raise ValueError(f"{op.name}: a share must start on a {rt}-row tile boundary, not {share.row0}")
    rows = share.row1 - share.row0
    if op.kind in ("matmul", "conv"):
        return _matmul(op, rows, dims, tiles)
    if op.kind == "attention":
        return _attention(op, share, dims, tiles)
    if op.kind == "layernorm":
        return _layernorm(op, rows, dims, tiles)
    raise ValueError(f"the timing model has no dataflow for op kind {op.kind!r} ({op.name})")


def op_cost(
    op: NpuOp,
    share: Share,
    dims: WhisperDims,
    tiles: Tiles,
    params: NpuParams,
    *,
    active_columns: int = 1,
    dispatch: bool = True,
) -> OpCost:
    """Predicted cost of `share` of `op` on one column while `active_columns` share DDR;
    `dispatch`: the share is an XRT run of its own (else part of a longer run)."""
    tr = traffic(op, share, dims, tiles, params)
    clock, channel = params.clock_hz, params.channel_bytes_per_s
    compute = tr.tile_share * (
        op.macs / params.tile_macs_per_s
        + op.vector_elems / (params.vector_lanes * clock)
        + op.transcendental_elems / (params.transcendental_per_cycle * clock)
    )
    ddr_rate = params.ddr_bytes_per_s / active_columns
    stream_in = tr.ddr_in - tr.setup_in
    limits = {
        "l1": max(
            tr.l1_in / (params.tile_in_channels * channel), tr.l1_out / (params.tile_out_channels * channel)
        ),
        "shim": max(
            stream_in / (params.shim_in_channels * channel), tr.ddr_out / (params.shim_out_channels * channel)
        ),
        "ddr": (stream_in + tr.ddr_out) / ddr_rate,
    }
    setup_rate = min(params.shim_in_channels * channel, ddr_rate)
    if params.column_ddr_bytes_per_s:  # calibrated: the column's achieved DDR traffic, read + written
        limits["column"] = (stream_in + tr.ddr_out) / params.column_ddr_bytes_per_s
        setup_rate = min(setup_rate, params.column_ddr_bytes_per_s)
    bound = max(limits, key=limits.__getitem__)
    setup = tr.setup_in / setup_rate
    return OpCost(
        compute, limits[bound], setup, params.dispatch_s if dispatch else 0.0, max(tr.steps, 1), bound
    )


def array_compute_bound_s(ops: list[NpuOp], params: NpuParams) -> float:
    """All ops' counted work spread perfectly over every compute tile: no transfer, no dispatch,
    no imbalance. The floor any plan is compared against."""
    clock = params.clock_hz
    work = sum(
        op.macs / params.tile_macs_per_s
        + op.vector_elems / (params.vector_lanes * clock)
        + op.transcendental_elems / (params.transcendental_per_cycle * clock)
        for op in ops
    )
    return work / params.compute_tiles
