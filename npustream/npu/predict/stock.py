"""amd/IRON's stock operators on Phoenix: what a dispatched operator step costs, and what a Whisper
encoder built from them costs. PREDICTED, not measured: every figure is a model's estimate from
params.NpuParams, whose step, switch, DMA and MAC-efficiency values are fitted to AMD's published
Phoenix measurements (calibration.py has the table, the fit and the check).

Each step is one dispatch of one IRON operator design on a partition of 1, 2 or 4 columns, run
alone and waited on (IRON never runs two operators at once on one context). Dataflows, from the
designs in amd/IRON (iron/operators/*/design.py; docs/npu-calibration.md cites the commits):

    GEMM     4 rows x columns cores, an (m,k)x(k,n) kernel call per core; A broadcast across the
             columns and re-read from DDR once per N pass (N / (n x columns) passes), B read once
             per M pass (M / (4 m) passes), C written once:
             DDR bytes = 2 (M K N / (n cols) + K N M / (4 m) + M N)          (bf16)
             compute   = M K N / (cols x 4 tiles x 128 MAC/cycle x efficiency x clock)
    others   (LayerNorm, Softmax, GELU, add, transpose, copy) columns x channels cores, each a
             contiguous chunk, shim <-> core directly: DDR bytes = 2 x elements x (inputs + 1);
             compute = elements x vector work per element over the cores (ELEMENT_WORK)

    transfer = DDR bytes / (columns x achieved bytes/s per column)       (calibrated parameters)
               with the uncalibrated parameters, which carry no achieved rate, the old model's
               limits instead: 2 in + 2 out shim channels x 4 B/cycle per column, DDR 40 GB/s
    step     = params.dispatch_s + max(compute, transfer)    (depth-2 ObjectFifos overlap the two)
    a run    = its steps back to back + params.design_switch_s whenever a step's design differs
               from the one before (IRON compiles every shape into its own design)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.ops.params import NpuParams

BF16 = 2
GEMM_ROWS = 4  # compute rows a GEMM design uses in every column
GEMM_TILE = 64  # IRON's default m = k = n

# Per element of an elementwise operator: (inputs, vector ops, transcendentals). ESTIMATES from reading
# IRON's aie2 kernels (shared/npu-iron-notes.md section 2); the published sizes (<= 32k elements) cannot
# constrain them, and at the encoder's sizes these operators are transfer-bound by a wide margin.
ELEMENT_WORK: dict[str, tuple[int, int, int]] = {
    "add": (2, 1, 0),
    "copy": (1, 0, 0),
    "transpose": (1, 0, 0),
    "gelu": (1, 10, 0),  # x^3, fused multiply-adds, tanh by 32-segment linear table, (1+t) x 0.5x
    "layer_norm": (1, 8, 0),  # sums of x and x^2, centre, scale (one rsqrt per row, negligible)
    "softmax": (1, 4, 1),  # mask, exp by table, sum, scale by the reciprocal
}
OPERATORS = ("gemm", *ELEMENT_WORK)


@dataclass(frozen=True)
class StockOp:
    """One dispatch of an amd/IRON operator design.

    gemm: shape (M, K, N) as the design is compiled (already padded), tile (m, k, n).
    others: shape (elements,), tile (elements per kernel call,), `channels` cores per column.
    """

    name: str
    operator: str
    shape: tuple[int, ...]
    columns: int
    tile: tuple[int, ...]
    channels: int = 1

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(
                f"{self.name}: unknown IRON operator {self.operator!r}; one of {', '.join(OPERATORS)}"
            )
        if self.columns not in (1, 2, 4):
            raise ValueError(f"{self.name}: a Phoenix partition is 1, 2 or 4 columns, not {self.columns}")
        if self.operator == "gemm":
            (big_m, big_k, big_n), (m, k, n) = self.shape, self.tile
            if big_m % (GEMM_ROWS * m) or big_k % k or big_n % (n * self.columns) or m % 4 or k % 8 or n % 4:
                raise ValueError(
                    f"{self.name}: GEMM {self.shape} does not tile by {self.tile} on {self.columns} "
                    "columns (M % 4m, K % k, N % (n x columns); m % 4, k % 8, n % 4)"
                )
        elif self.shape[0] % (self.cores * self.tile[0]):
            raise ValueError(
                f"{self.name}: {self.shape[0]} elements are not whole {self.tile[0]}-element "
                f"tiles over {self.cores} cores"
            )

    @property
    def cores(self) -> int:
        return self.columns * (GEMM_ROWS if self.operator == "gemm" else self.channels)

    @property
    def design(self) -> tuple:
        """What identifies the compiled design: a step whose design differs from the last pays a switch."""
        return (self.operator, self.shape, self.columns, self.tile, self.channels)

    @property
    def macs(self) -> int:
        return math.prod(self.shape) if self.operator == "gemm" else 0

    def ddr_bytes(self) -> tuple[int, int]:
        """Bytes (read, written) between DDR and the array."""
        if self.operator == "gemm":
            (big_m, big_k, big_n), (m, _, n) = self.shape, self.tile
            a_passes, b_passes = big_n // (n * self.columns), big_m // (GEMM_ROWS * m)
            return BF16 * (big_m * big_k * a_passes + big_k * big_n * b_passes), BF16 * big_m * big_n
        inputs = ELEMENT_WORK[self.operator][0]
        return BF16 * self.shape[0] * inputs, BF16 * self.shape[0]


@dataclass(frozen=True)
class StepCost:
    """Predicted seconds of one dispatched step."""

    step_s: float  # the fixed cost of a dispatched operator step
    compute_s: float
    transfer_s: float

    @property
    def time_s(self) -> float:
        return self.step_s + max(self.compute_s, self.transfer_s)


def transfer_s(read: int, written: int, columns: int, params: NpuParams) -> float:
    """DDR <-> array time of a partition of `columns` columns (module docstring)."""
    if params.column_ddr_bytes_per_s:
        return (read + written) / (columns * params.column_ddr_bytes_per_s)
    channel = params.channel_bytes_per_s
    return max(
        read / (columns * params.shim_in_channels * channel),
        written / (columns * params.shim_out_channels * channel),
        (read + written) / params.ddr_bytes_per_s,
    )


def step_cost(op: StockOp, params: NpuParams) -> StepCost:
    clock = params.clock_hz
    if op.operator == "gemm":
        compute = op.macs / (op.cores * params.tile_macs_per_s)
    else:
        _, vector, transcendental = ELEMENT_WORK[op.operator]
        per_core = op.shape[0] / op.cores
        compute = (
            per_core
            * (vector / params.vector_lanes + transcendental / params.transcendental_per_cycle)
            / clock
        )
    return StepCost(params.dispatch_s, compute, transfer_s(*op.ddr_bytes(), op.columns, params))


@dataclass(frozen=True)
class RunCost:
    """Predicted seconds of a run of steps on one context, back to back."""

    steps: tuple[StepCost, ...]
    switches: int
    switch_s: float

    @property
    def dispatches(self) -> int:
        return len(self.steps)

    @property
    def time_s(self) -> float:
        return sum(s.time_s for s in self.steps) + self.switches * self.switch_s

    @property
    def fixed_s(self) -> float:
        """What the run pays besides work: step costs and design switches."""
        return sum(s.step_s for s in self.steps) + self.switches * self.switch_s


def run_cost(ops: tuple[StockOp, ...] | list[StockOp], params: NpuParams) -> RunCost:
    """The steps of one context in order; the first step's design is loaded with the context."""
    switches = sum(1 for a, b in zip(ops, ops[1:]) if a.design != b.design)
    return RunCost(tuple(step_cost(op, params) for op in ops), switches, params.design_switch_s)


# --- the Whisper encoder from stock operators (issue 15) -----------------------------------------


def _gemm(name: str, m_rows: int, k: int, n: int, columns: int) -> StockOp:
    """A GEMM padded to IRON's tiling: 64 x 64 x 64, n narrowed while N does not fill the columns."""
    big_m = -(-m_rows // (GEMM_ROWS * GEMM_TILE)) * GEMM_ROWS * GEMM_TILE
    big_k = -(-k // GEMM_TILE) * GEMM_TILE
    n_tile = GEMM_TILE
    while n % (n_tile * columns):
        n_tile //= 2
    return StockOp(name, "gemm", (big_m, big_k, n), columns, (GEMM_TILE, GEMM_TILE, n_tile))


def _elementwise(name: str, operator: str, elements: int, columns: int, tile: int) -> StockOp:
    channels = 1 if operator == "add" else 2  # IRON's add has one core per column
    return StockOp(name, operator, (elements,), columns, (tile,), channels)


def whisper_stock_ops(
    dims: WhisperDims, columns: int, *, softmax_per_head: bool = False
) -> tuple[StockOp, ...]:
    """The encoder of issue 15 as IRON operator dispatches, in order, every design on `columns` columns.

    T = 1500 positions padded to 1536 (a mask RTP marks the valid keys); LayerNorm gamma/beta and the
    attention scale folded into the next GEMM's weights, conv1's bias into its K padding (240 -> 256).
    Per layer (31 dispatches with one softmax over all heads): LN, QKV GEMM, Q-bias add, Q transpose,
    QK^T GEMM per head, softmax, PV GEMM per head, out-proj GEMM, bias add, residual add, LN, fc1 GEMM,
    bias add, GELU, fc2 GEMM, bias add, residual add. Stem: conv1 (im2col GEMM), GELU, conv2 GEMM,
    bias add, GELU, positional-embedding add; then the final LayerNorm."""
    t = -(-dims.n_audio_ctx // (GEMM_ROWS * GEMM_TILE)) * GEMM_ROWS * GEMM_TILE
    d, heads, d_head, ff = dims.n_audio_state, dims.n_audio_head, dims.d_head, dims.n_ff
    c = columns
    ops = [
        _gemm("stem.conv1", 2 * dims.n_audio_ctx, 3 * dims.n_mels, d, c),
        _elementwise("stem.gelu1", "gelu", 2 * t * d, c, d),
        _gemm("stem.conv2", t, 3 * d, d, c),
        _elementwise("stem.bias2", "add", t * d, c, d),
        _elementwise("stem.gelu2", "gelu", t * d, c, d),
        _elementwise("stem.pos", "add", t * d, c, d),
    ]
    for i in range(dims.n_audio_layer):
        p = f"layer{i}."
        ops += [
            _elementwise(p + "ln1", "layer_norm", t * d, c, d),
            _gemm(p + "qkv", t, d, 3 * d, c),
            _elementwise(p + "q_bias", "add", t * d, c, d),
            _elementwise(p + "q_transpose", "transpose", t * d, c, d),
        ]
        scores = [_gemm(f"{p}qk.{h}", t, d_head, t, c) for h in range(heads)]
        values = [_gemm(f"{p}pv.{h}", t, t, d_head, c) for h in range(heads)]
        if softmax_per_head:
            for h in range(heads):
                ops += [scores[h], _elementwise(f"{p}softmax.{h}", "softmax", t * t, c, t), values[h]]
        else:
            ops += [*scores, _elementwise(p + "softmax", "softmax", heads * t * t, c, t), *values]
        ops += [
            _gemm(p + "out_proj", t, d, d, c),
            _elementwise(p + "out_bias", "add", t * d, c, d),
            _elementwise(p + "residual1", "add", t * d, c, d),
            _elementwise(p + "ln2", "layer_norm", t * d, c, d),
            _gemm(p + "fc1", t, d, ff, c),
            _elementwise(p + "fc1_bias", "add", t * ff, c, d),
            _elementwise(p + "gelu", "gelu", t * ff, c, d),
            _gemm(p + "fc2", t, ff, d, c),
            _elementwise(p + "fc2_bias", "add", t * d, c, d),
            _elementwise(p + "residual2", "add", t * d, c, d),
        ]
    ops.append(_elementwise("final_ln", "layer_norm", t * d, c, d))
    return tuple(ops)


@dataclass(frozen=True)
class StockPlan:
    """A stock-operator plan's predicted figures for one window (PREDICTED)."""

    name: str
    columns: int  # per context
    contexts: int  # contexts working on different windows at once
    dispatches: int  # per window
    switches: int  # per window
    latency_s: float  # one window through one context
    period_s: float  # between windows leaving the array with every context busy
    fixed_s: float  # of latency_s: step costs and switches
    transfer_s: float  # of latency_s: steps' transfer where it exceeds their compute

    @property
    def throughput_per_s(self) -> float:
        return 1.0 / self.period_s


def stock_plan(
    name: str, dims: WhisperDims, params: NpuParams, columns: int, *, softmax_per_head: bool = False
) -> StockPlan:
    """`params.columns // columns` contexts of `columns`-column designs, each running whole windows; the
    contexts share nothing the model counts (each has its own columns, and DDR's 40 GB/s exceeds the
    four columns' calibrated traffic), and their host-side step costs are assumed to overlap."""
    run = run_cost(whisper_stock_ops(dims, columns, softmax_per_head=softmax_per_head), params)
    contexts = params.columns // columns
    transfer = sum(max(s.transfer_s - s.compute_s, 0.0) for s in run.steps)
    return StockPlan(
        name,
        columns,
        contexts,
        run.dispatches,
        run.switches,
        run.time_s,
        run.time_s / contexts,
        run.fixed_s,
        transfer,
    )


def stock_plans(dims: WhisperDims, params: NpuParams) -> tuple[StockPlan, StockPlan]:
    """Issue 15's two plans: latency (one stream of 4-column designs), throughput (two 2-column contexts)."""
    return (
        stock_plan("stock-latency", dims, params, params.columns),
        stock_plan("stock-throughput", dims, params, params.columns // 2),
    )
