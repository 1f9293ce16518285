"""The Phoenix (XDNA1) NPU as numbers: the ONE place the timing model, the resource checker and the
runtime read hardware facts and timing assumptions from.

Every default comes from the table in ../shared/phoenix.md ("Timing-model defaults (fixed for the
project)") and its "Array", "Memory", "DMA and streams" and "Host runtime" sections. Change a value
only with a cited measurement, and say so here, so that predicted figures stay comparable.

Hawk Point is the same XDNA1 array (4 usable columns x 4 compute tiles) at a higher clock: its
preset differs only in the clock (1.6 GHz, inferred from 16 TOPS int8 over 20 tiles).

Two parameter sets. CALIBRATED_PRESETS replace the four values physics leaves open in phoenix.md's
table with values FITTED to AMD's published Phoenix measurements of its IRON operators
(npu/predict/calibration.py: the table, the fit, and a test that these numbers equal the refit):
plans are chosen and built with them (`preset(name)`). PRESETS are phoenix.md's table as it stands
(the old, UNCALIBRATED model, `preset(name, calibrated=False)`): every predicted figure is printed
beside the figure it gives for the same plan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from npustream.errors import ConfigError

KIB = 1024


@dataclass(frozen=True)
class NpuParams:
    name: str
    # --- array (mlir-aie docs/Devices.md, AIETargetModel.h) ---
    clock_hz: float = 1.0e9  # inferred from 10 TOPS int8 over 20 tiles
    columns: int = 4  # column 0 of 5 has no shim DMA: applications get 4
    tiles_per_column: int = 4  # compute rows 2-5
    # --- compute (AM020; mlir-aie programming guide section-4c) ---
    bf16_macs_per_cycle: int = 128  # per compute tile, fp32 accumulation (mmul 4x8x4)
    int8_macs_per_cycle: int = 256
    matmul_efficiency: float = 0.5  # share of peak in the inner loop (assumption; 0.43 measured)
    vector_lanes: int = 32  # bf16 element ops per cycle per tile (512-bit vector unit)
    transcendental_per_cycle: int = 8  # exp / erf / tanh / rsqrt elements per cycle per tile
    # --- data movement ---
    shim_in_channels: int = 2  # per shim tile (= per column)
    shim_out_channels: int = 2
    tile_in_channels: int = 2  # per compute tile (S2MM)
    tile_out_channels: int = 2  # per compute tile (MM2S)
    memtile_in_channels: int = 6
    memtile_out_channels: int = 6
    dma_bytes_per_cycle: int = 4  # 32-bit stream per channel
    ddr_bytes_per_s: float = 40e9  # shared by the whole array (assumption, LPDDR5 NPU share)
    # --- memories and descriptors (AIETargetModel.h) ---
    l1_bytes: int = 64 * KIB  # compute tile data memory
    program_bytes: int = 16 * KIB  # compute tile program memory (phoenix.md)
    memtile_bytes: int = 512 * KIB
    core_program_bytes: int = 16 * KIB
    tile_bds: int = 16  # buffer descriptors per compute tile
    shim_bds: int = 16
    memtile_bds: int = 48
    tile_locks: int = 16
    memtile_locks: int = 64
    # --- host runtime (xdna-driver PR #135, iree-amd-aie #380, mlir-aie hostruntime.py) ---
    dispatch_s: float = 40e-6  # one XRT run, dispatch to completion overhead
    startup_s: float = 20e-3  # xclbin registration + hardware context, once
    max_hw_contexts: int = 6
    # --- command processor: NOT in phoenix.md, so the default is unmeasured ---
    # The column's command processor's time per runtime-sequence operation of a column program
    # (npu/program/column.py: a DMA task's configure + push, an await, a lock set, a descriptor
    # write; each counts one). phoenix.md has no figure for it: 0 means the published predicted
    # figures assume issue is free (hidden). npu/predict/simulate.py says how a non-zero value is modelled.
    issue_op_s: float = 0.0
    # --- FITTED only (npu/predict/calibration.py); 0 in phoenix.md's table: not modelled ---
    design_switch_s: float = 0.0  # reconfiguring the array for another operator design
    column_ddr_bytes_per_s: float = 0.0  # achieved DDR <-> array traffic of one column, read + written

    @property
    def compute_tiles(self) -> int:
        return self.columns * self.tiles_per_column

    @property
    def tile_macs_per_s(self) -> float:
        """Sustained bf16 MAC rate of one compute tile (peak x kernel efficiency)."""
        return self.bf16_macs_per_cycle * self.matmul_efficiency * self.clock_hz

    @property
    def channel_bytes_per_s(self) -> float:
        return self.dma_bytes_per_cycle * self.clock_hz

    def replace(self, **changes: object) -> NpuParams:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, NpuParams] = {
    "phoenix": NpuParams(name="phoenix"),
    "hawkpoint": NpuParams(name="hawkpoint", clock_hz=1.6e9),
}

# FITTED by npu/predict/calibration.fit() to the published table npu/predict/phoenix_published.json
# (amd/IRON: phoenix/{small,extensive}/latest.csv on the ci branch, iron/operators/flm/gemm/README.md,
# iron/lm/llama3/decode_costs_npu1.json; commits in the table). tests/test_npu_calibration.py checks
# that these equal the refit. Hawk Point takes the same values (its host path and DDR are the same; its
# faster clock changes only what is physics).
FITTED: dict[str, float] = {
    "dispatch_s": 262.513e-6,  # median chained step of 33 small decode steps (was 40 us: XRT alone)
    "design_switch_s": 121.27e-6,  # mean of the 3 measured design switches
    "column_ddr_bytes_per_s": 4.40e9,  # achieved DDR traffic per column, read + written (GEMM rows)
    "matmul_efficiency": 0.44,  # achieved share of the bf16 MAC peak (GEMM rows; was 0.5 assumed)
}
CALIBRATED_PRESETS: dict[str, NpuParams] = {name: p.replace(**FITTED) for name, p in PRESETS.items()}


def preset(name: str, *, calibrated: bool = True) -> NpuParams:
    """A preset by name: with the fitted values in place (what plans are chosen and built with), or
    with `calibrated=False` phoenix.md's table as it stands (the old model)."""
    table = CALIBRATED_PRESETS if calibrated else PRESETS
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown NPU preset {name!r}; choose one of {', '.join(PRESETS)}") from None
