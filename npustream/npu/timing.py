"""The Phoenix timing model: what one op (or a share of it) costs on one column. PREDICTED, not
measured: every number this module produces is a model's estimate from params.NpuParams.

A column is a shim tile (DDR <-> array), a mem tile (512 KiB L2) and 4 compute tiles. The op's
kernel calls are dealt round-robin to the 4 compute tiles; the busiest tile sets the time.

    compute   = (MACs / (128 x efficiency) + vector elems / 32 + transcendentals / 8) / clock,
                for the busiest tile's share of the op's counted work (graph.NpuOp)
    transfer  = the slowest of three DMA limits, each bytes / rate:
                  L1:   mem tile -> compute tile, 2 in + 2 out channels x 4 B/cycle per tile
                  shim: DDR -> column, 2 in + 2 out channels x 4 B/cycle
                  DDR:  40 GB/s shared by the columns working at the same time
    setup     = transfer that cannot overlap compute: the first step's operands, and mem-tile
                panels too big to double-buffer (every load of those waits for the core)
    step      = with depth-2 ObjectFIFOs: max(compute, transfer) per step, so the op costs
                setup + max(C, T) + min(C, T) / steps; without double buffering C + T.
    dispatch  = one XRT run per op share (40 us); start-up (20 ms) is paid once, not here.

Dataflows (what decides the bytes):
(column_design.py has the buffers.)
- matmul / conv: the mem tile keeps a panel of P row blocks of A resident (P*m rows x all of K;
  P up to 4, as many as fit one panel object, so the next panel loads meanwhile; a block too big
  for one object takes both, single-buffered). The weight tiles stream past once per panel,
  broadcast to the 4 tiles: DDR carries A once and W ceil(row blocks / P) times. The 4 tiles
  share the panel's output tiles; each pulls its A tiles (m x k) for every K step of every
  output tile it owns, and sees every weight tile of the pass.
- layernorm: rows stream through once, each tile its own; gamma|beta broadcast.
- attention: per head the mem tile keeps that head's K and V (T x d_head each) resident,
  queries are broadcast; each tile folds every key/value tile into each of its query tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.column_design import column_design
from npustream.npu.graph import NpuOp
from npustream.npu.layout import matmul_shape
from npustream.npu.params import NpuParams
from npustream.npu.tiles import Tiles, n_tiles, padded

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
    resident: int  # bytes the mem tile's panel keeps resident at once
    panel_double_buffered: bool

@dataclass(frozen=True)
class OpCost:
    """Predicted seconds of one op share on one column."""

    compute_s: float
    stream_s: float  # transfer that can overlap compute
    setup_s: float  # transfer that cannot
    dispatch_s: float
    steps: int
    bound: str  # the DMA limit that set stream_s: "l1", "shim" or "ddr"

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
    return {"matmul": tiles.matmul_m, "conv": tiles.matmul_m, "layernorm": tiles.layernorm_rows,
            "attention": tiles.attn_q_rows}[op.kind]


def traffic(op: NpuOp, share: Share, dims: WhisperDims, tiles: Tiles, params: NpuParams) -> Traffic:
    tpc = params.tiles_per_column
    rt = row_tile(op, tiles)
    if share.row0 % rt:
        raise ValueError(f"{op.name}: a share must start on a {rt}-row tile boundary, not {share.row0}")
    row_blocks = n_tiles(share.row1 - share.row0, rt)
    panel = column_design(dims, tiles, params).panel_bytes
    d = dims.n_audio_state
    if op.kind in ("matmul", "conv"):
        m, k, n = tiles.matmul_m, tiles.matmul_k, tiles.matmul_n
        k_raw, n_raw = matmul_shape(op.name, dims)
        kp, np_ = padded(k_raw, k), padded(n_raw, n)
        weights = kp * np_ * BF16 + np_ * F32
        # a residual: a second activation input, or a constant table counted in weight_bytes
        residual = len(op.inputs) > 1 or op.weight_bytes > weights
        block = m * kp * BF16  # one row block of A, all of K
        double = panel >= block
        blocks = min(panel // block, tpc, row_blocks) if double else 1
        passes = math.ceil(row_blocks / blocks)
        out_tiles = row_blocks * (np_ // n)
        per_tile = math.ceil(out_tiles / tpc)
        rows_out = row_blocks * m * np_ * BF16
        return Traffic(
            steps=per_tile * (kp // k),
            tile_share=per_tile / (n_tiles(op.rows, m) * (np_ // n)),
            # own A tiles (+ residual tiles); every weight tile of every pass (broadcast)
            l1_in=per_tile * ((kp // k) * m * k * BF16 + (m * n * BF16 if residual else 0)) + passes * weights,
            l1_out=per_tile * m * n * BF16,
            ddr_in=row_blocks * block + passes * weights + (rows_out if residual else 0),
            ddr_out=rows_out,
            setup_in=blocks * block + k * n * BF16 if double else passes * block,
            resident=blocks * block,
            panel_double_buffered=double,
        )
    if op.kind == "layernorm":
        r = tiles.layernorm_rows
        per_tile = math.ceil(row_blocks / tpc)
        block = r * d * BF16
        return Traffic(
            steps=per_tile, tile_share=per_tile / n_tiles(op.rows, r),
            l1_in=per_tile * block + 2 * d * F32, l1_out=per_tile * block,
            ddr_in=row_blocks * block + 2 * d * F32, ddr_out=row_blocks * block,
            setup_in=block + 2 * d * F32, resident=tpc * block, panel_double_buffered=True,
        )
    if op.kind == "attention":
        mq, nk, dh = tiles.attn_q_rows, tiles.attn_kv_rows, dims.d_head
        heads = share.head1 - share.head0
        kv_tiles = n_tiles(op.rows, nk)
        calls = heads * row_blocks
        per_tile = math.ceil(calls / tpc)
        kv_panel = 2 * padded(op.rows, nk) * dh * BF16  # one head's K and V
        double = panel >= kv_panel
        q_bytes = row_blocks * mq * dh * BF16
        return Traffic(
            steps=per_tile * kv_tiles, tile_share=per_tile / (op.heads * n_tiles(op.rows, mq)),
            # every query tile (broadcast); every key/value tile for each own query tile
            l1_in=heads * q_bytes + per_tile * kv_tiles * 2 * nk * dh * BF16,
            l1_out=per_tile * mq * dh * BF16,
            ddr_in=heads * (q_bytes + kv_panel), ddr_out=heads * q_bytes,
            setup_in=kv_panel + mq * dh * BF16 if double else heads * kv_panel,
            resident=kv_panel, panel_double_buffered=double,
        )
    raise ValueError(f"the timing model has no dataflow for op kind {op.kind!r} ({op.name})")


def op_cost(
    op: NpuOp, share: Share, dims: WhisperDims, tiles: Tiles, params: NpuParams, *, active_columns: int = 1
) -> OpCost:
    """Predicted cost of `share` of `op` on one column while `active_columns` share DDR."""
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
        "l1": max(tr.l1_in / (params.tile_in_channels * channel), tr.l1_out / (params.tile_out_channels * channel)),
        "shim": max(stream_in / (params.shim_in_channels * channel), tr.ddr_out / (params.shim_out_channels * channel)),
        "ddr": (stream_in + tr.ddr_out) / ddr_rate,
    }
    bound = max(limits, key=limits.__getitem__)
    setup = tr.setup_in / min(params.shim_in_channels * channel, ddr_rate)
    return OpCost(compute, limits[bound], setup, params.dispatch_s, max(tr.steps, 1), bound)


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
