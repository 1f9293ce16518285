"""The Phoenix timing model: parameters from ../shared/phoenix.md, per-op costs re-derived by hand,
double buffering, DDR sharing, and the array compute bound."""

from __future__ import annotations

import math
import re

import pytest

from npustream.model.dims import WhisperDims
from npustream.npu.graph import encoder_ops
from npustream.npu.params import PRESETS, preset
from npustream.npu.tiles import DEFAULT_TILES, n_tiles
from npustream.npu.timing import Share, array_compute_bound_s, op_cost, traffic
from npustream.errors import ConfigError

BASE = WhisperDims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)
PHOENIX = PRESETS["phoenix"]


def _ops() -> dict:
    return {op.name: op for op in encoder_ops(BASE, DEFAULT_TILES)}


def test_defaults_are_the_table_in_phoenix_md(shared_dir):
    """Every default of the fixed timing-model table, read from the shared document itself."""
    table = (shared_dir / "phoenix.md").read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", table, flags=re.M))
    assert rows["clock"].startswith("1.0 GHz") and PHOENIX.clock_hz == 1.0e9
    assert "1.6 GHz" in rows["clock"] and PRESETS["hawkpoint"].clock_hz == 1.6e9
    assert rows["columns x compute tiles"] == "4 x 4" and (PHOENIX.columns, PHOENIX.tiles_per_column) == (4, 4)
    assert int(rows["bf16 MACs per cycle per tile"]) == PHOENIX.bf16_macs_per_cycle
    assert int(rows["int8 MACs per cycle per tile"]) == PHOENIX.int8_macs_per_cycle
    assert float(rows["matmul kernel efficiency (share of peak in the inner loop)"]) == PHOENIX.matmul_efficiency
    assert int(rows["vector ops (add, mul, max, reductions), bf16 lanes per cycle per tile"]) == PHOENIX.vector_lanes
    assert int(rows["exp / tanh / rsqrt (LUT or iterative), elements per cycle per tile"]) == \
        PHOENIX.transcendental_per_cycle
    assert rows["DDR bandwidth shared by the array"] == "40 GB/s" and PHOENIX.ddr_bytes_per_s == 40e9
    assert rows["one XRT run, dispatch to completion overhead"] == "40 us" and PHOENIX.dispatch_s == 40e-6
    assert rows["xclbin registration and context creation"].startswith("20 ms") and PHOENIX.startup_s == 20e-3
    assert "4 bytes per cycle" in rows["shim DMA"] and PHOENIX.dma_bytes_per_cycle == 4
    # Hawk Point differs only in its clock
    assert PRESETS["hawkpoint"].replace(name="phoenix", clock_hz=1.0e9) == PHOENIX
    with pytest.raises(ConfigError, match="unknown NPU preset"):
        preset("strix")


def test_matmul_cost_by_hand():
    op = _ops()["layer0.qkv"]  # [1500, 512] @ [512, 1536] + bias
    cost = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX)
    m, k, n = 64, 64, 32
    out_tiles = n_tiles(1500, m) * (1536 // n)  # 24 x 48
    per_tile = math.ceil(out_tiles / 4)
    work = op.macs / (128 * 0.5 * 1e9) + op.vector_elems / (32 * 1e9)
    assert cost.compute_s == pytest.approx(per_tile / out_tiles * work, rel=1e-12)
    assert cost.steps == per_tile * (512 // k)
    # the mem tile holds 3 row blocks of A (64 x 512 bf16 = 64 KiB each) in a 236 KiB panel
    # object, so the weights (512 x 1536 bf16 + fp32 bias) stream 8 times for 24 row blocks
    tr = traffic(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX)
    weights = 512 * 1536 * 2 + 1536 * 4
    assert tr.ddr_in == 24 * 64 * 512 * 2 + 8 * weights
    assert tr.ddr_out == 24 * 64 * 1536 * 2
    l1 = per_tile * 8 * m * k * 2 + 8 * weights  # own A tiles, every broadcast weight tile
    assert tr.l1_in == l1
    assert cost.stream_s >= l1 / (2 * 4e9)  # 2 input channels x 4 bytes/cycle x 1 GHz


def test_double_buffering_is_max_not_sum():
    op = _ops()["layer0.fc1"]
    cost = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX)
    c, t = cost.compute_s, cost.stream_s
    assert cost.busy_s(double_buffered=False) == pytest.approx(cost.setup_s + c + t)
    assert cost.busy_s(double_buffered=True) == pytest.approx(cost.setup_s + max(c, t) + min(c, t) / cost.steps)
    assert cost.time_s() == pytest.approx(cost.busy_s() + 40e-6)
    assert cost.hidden_transfer_s() + cost.exposed_transfer_s() == pytest.approx(cost.transfer_s)
    assert cost.exposed_transfer_s(double_buffered=False) == pytest.approx(cost.transfer_s)


def test_layernorm_is_transfer_bound_and_ddr_is_shared():
    op = _ops()["layer0.ln1"]
    alone = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX, active_columns=1)
    shared = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX, active_columns=4)
    assert alone.stream_s > alone.compute_s  # 3 MB through the shim for 6 M element ops
    assert shared.bound == "ddr" and shared.stream_s > alone.stream_s
    nbytes = 2 * 1500 * 512 * 2 + 2 * 512 * 4 - (4 * 512 * 2 + 2 * 512 * 4)  # minus setup bytes
    assert shared.stream_s == pytest.approx(nbytes / 10e9)  # a quarter of 40 GB/s


def test_hawkpoint_compute_is_faster_by_its_clock():
    op = _ops()["layer0.attn"]
    ph = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX)
    hp = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PRESETS["hawkpoint"])
    assert ph.compute_s / hp.compute_s == pytest.approx(1.6)


def test_array_compute_bound_of_whisper_base():
    ops = encoder_ops(BASE, DEFAULT_TILES)
    macs = sum(op.macs for op in ops)
    assert 43.7e9 < macs < 45e9  # phoenix.md: about 43.7 GMAC, plus tile padding
    mac_only = macs / (16 * 128 * 0.5 * 1e9)
    assert mac_only == pytest.approx(0.0434, abs=0.001)  # phoenix.md: "about 43 ms"
    bound = array_compute_bound_s(ops, PHOENIX)
    assert mac_only < bound < 1.15 * mac_only  # plus vector and transcendental work


def test_share_must_start_on_a_tile_boundary():
    op = _ops()["layer0.qkv"]
    with pytest.raises(ValueError, match="64-row tile boundary"):
        traffic(op, Share(10, 500), BASE, DEFAULT_TILES, PHOENIX)
