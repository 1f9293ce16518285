"""The Phoenix timing model: parameters from ../shared/phoenix.md, per-op costs re-derived by hand,
double buffering, DDR sharing, and the array compute bound."""

from __future__ import annotations

import re

import pytest

from npustream.errors import ConfigError
from npustream.model.dims import WhisperDims
from npustream.npu.ops.graph import encoder_ops
from npustream.npu.ops.kernel_costs_table import CALLS
from npustream.npu.ops.params import PRESETS, preset
from npustream.npu.ops.tiles import DEFAULT_TILES, n_tiles
from npustream.npu.plan.cost import Share, array_compute_bound_s, op_compute_s, op_cost, traffic

BASE = WhisperDims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)
PHOENIX = PRESETS["phoenix"]


def _ops() -> dict:
    return {op.name: op for op in encoder_ops(BASE, DEFAULT_TILES)}


def test_defaults_are_the_table_in_phoenix_md(shared_dir):
    """Every default of the fixed timing-model table, read from the shared document itself."""
    table = (shared_dir / "phoenix.md").read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", table, flags=re.MULTILINE))
    assert rows["clock"].startswith("1.0 GHz") and PHOENIX.clock_hz == 1.0e9
    assert "1.6 GHz" in rows["clock"] and PRESETS["hawkpoint"].clock_hz == 1.6e9
    assert rows["columns x compute tiles"] == "4 x 4" and (PHOENIX.columns, PHOENIX.tiles_per_column) == (
        4,
        4,
    )
    assert int(rows["bf16 MACs per cycle per tile"]) == PHOENIX.bf16_macs_per_cycle
    assert int(rows["int8 MACs per cycle per tile"]) == PHOENIX.int8_macs_per_cycle
    assert (
        float(rows["matmul kernel efficiency (share of peak in the inner loop)"]) == PHOENIX.matmul_efficiency
    )
    assert (
        int(rows["vector ops (add, mul, max, reductions), bf16 lanes per cycle per tile"])
        == PHOENIX.vector_lanes
    )
    assert (
        int(rows["exp / tanh / rsqrt (LUT or iterative), elements per cycle per tile"])
        == PHOENIX.transcendental_per_cycle
    )
    assert rows["DDR bandwidth shared by the array"] == "40 GB/s" and PHOENIX.ddr_bytes_per_s == 40e9
    assert rows["one XRT run, dispatch to completion overhead"] == "40 us" and PHOENIX.dispatch_s == 40e-6
    assert rows["xclbin registration and context creation"].startswith("20 ms") and PHOENIX.startup_s == 20e-3
    assert "4 bytes per cycle" in rows["shim DMA"] and PHOENIX.dma_bytes_per_cycle == 4
    # phoenix.md has no figure for the command processor's time per operation: unmeasured, 0
    assert "command processor" not in table and PHOENIX.issue_op_s == 0.0
    # Hawk Point differs only in its clock
    assert PRESETS["hawkpoint"].replace(name="phoenix", clock_hz=1.0e9) == PHOENIX
    with pytest.raises(ConfigError, match="unknown NPU preset"):
        preset("strix")


def test_matmul_cost_by_hand():
    """qkv on one column: output blocks of 2 row tiles x 4 column tiles; A once into a resident
    panel per row pair, the weight objects (tile + bias slice) once per row pair."""
    op = _ops()["layer0.qkv"]  # [1500, 512] @ [512, 1536] + bias
    cost = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX)
    m, k, n = 64, 64, 32
    row_tiles, col_tiles, k_steps = n_tiles(1500, m), 1536 // n, 512 // k  # 24, 48, 8
    blocks = (row_tiles // 2) * (col_tiles // 4)  # 12 row pairs x 12 column blocks
    # per output tile: zero, 8 K steps, the epilogue (bias, no GELU, no residual): counted cycles,
    # the mmul ones at the MAC pipeline's efficiency (0.5)
    calls = CALLS
    mmul = k_steps * calls["matmul_acc"]["mmul"]
    other = (
        calls["matmul_zero"]["cycles"]
        + k_steps * calls["matmul_acc"]["cycles"]
        + calls["matmul_out"]["cycles"]
    )
    per_tile = (mmul / 0.5 + other - mmul) / 1e9
    assert mmul == m * k * n * k_steps / 128
    assert cost.compute_s == pytest.approx(2 * blocks * per_tile, rel=1e-12)  # 2 tiles per block
    assert cost.steps == blocks * k_steps
    tr = traffic(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX)
    w_object = k * n * 2 + n * 4  # a weight tile and its fp32 bias slice
    a = row_tiles * m * 512 * 2
    assert tr.ddr_in == a + (row_tiles // 2) * col_tiles * k_steps * w_object
    assert tr.ddr_out == 1500 * 1536 * 2
    # per K step a core gets its row's A tile and all 4 weight objects of the block
    assert tr.l1_in == blocks * k_steps * (m * k * 2 + 4 * w_object)
    assert cost.stream_s == pytest.approx(tr.l1_in / (2 * 4e9))  # the busiest core's 2 input channels
    assert cost.bound == "l1" and cost.stream_s < cost.compute_s


def test_big_k_matmuls_stay_near_compute():
    """fc2 (K = 2048) and conv2 (K = 1536) on a split-plan share: their panels do not fit the mem
    tile, so A streams again per column block (twice the shim bytes of a resident panel), and the
    shim still keeps pace within a few percent."""
    ops = _ops()
    for name in ("layer0.fc2", "stem.conv2"):
        share = Share(0, 384)
        tr = traffic(ops[name], share, BASE, DEFAULT_TILES, PHOENIX)
        k = 2048 if name == "layer0.fc2" else 1536
        assert tr.ddr_in >= (512 // 128) * 384 * k * 2  # A once per column block of 128
        cost = op_cost(ops[name], share, BASE, DEFAULT_TILES, PHOENIX, active_columns=4)
        assert cost.compute_s < cost.busy_s() < 1.06 * cost.compute_s, name


def test_attention_cost_by_hand():
    """Per head, query tiles in groups of 4 (one per core); each group streams every K|V tile
    down both row streams."""
    op = _ops()["layer0.attn"]
    share = Share(0, 1500, 0, 2)  # two heads, as in the split plan
    tr = traffic(op, share, BASE, DEFAULT_TILES, PHOENIX)
    q_tiles, kv_tiles = n_tiles(1500, 32), n_tiles(1500, 32)  # 47, 47
    groups = n_tiles(q_tiles, 4)  # 12
    kv_object = 2 * 32 * 64 * 2
    assert tr.ddr_in == 2 * (groups * 2 * kv_tiles * kv_object + 1500 * 64 * 2)
    assert tr.ddr_out == 2 * 1500 * 64 * 2
    assert tr.steps == 2 * groups * kv_tiles
    cost = op_cost(op, share, BASE, DEFAULT_TILES, PHOENIX, active_columns=4)
    assert cost.stream_s < cost.compute_s  # K|V re-streaming stays hidden behind the softmax work


def test_double_buffering_is_max_not_sum():
    op = _ops()["layer0.fc1"]
    cost = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX)
    c, t = cost.compute_s, cost.stream_s
    assert cost.busy_s(double_buffered=False) == pytest.approx(cost.setup_s + c + t)
    assert cost.busy_s(double_buffered=True) == pytest.approx(
        cost.setup_s + max(c, t) + min(c, t) / cost.steps
    )
    assert cost.time_s() == pytest.approx(cost.busy_s() + 40e-6)
    inside = op_cost(
        op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX, dispatch=False
    )  # part of a longer run
    assert inside.time_s() == pytest.approx(cost.busy_s())
    assert cost.hidden_transfer_s() + cost.exposed_transfer_s() == pytest.approx(cost.transfer_s)
    assert cost.exposed_transfer_s(double_buffered=False) == pytest.approx(cost.transfer_s)


def test_layernorm_is_transfer_bound_and_ddr_is_shared():
    op = _ops()["layer0.ln1"]
    alone = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX, active_columns=1)
    shared = op_cost(op, Share.whole(op), BASE, DEFAULT_TILES, PHOENIX, active_columns=4)
    # 3 MB through the shim against the kernel's counted 2560 cycles per 4 rows: alone, the
    # compute (0.24 ms) passes the shim (0.19 ms); with 4 columns sharing DDR the transfer bounds it
    assert alone.compute_s > alone.stream_s and shared.stream_s > shared.compute_s
    assert shared.bound == "ddr" and shared.stream_s > alone.stream_s
    # rows in and out, gamma and beta; minus the first chunk per row stream (8 rows) and gamma|beta
    nbytes = 2 * 1500 * 512 * 2 + 2 * 512 * 4 - (2 * 8 * 512 * 2 + 2 * 512 * 4)
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
    bound = array_compute_bound_s(ops, PHOENIX, BASE, DEFAULT_TILES)
    # plus everything else the kernels issue (counted from kernels/: ops/kernel_costs.py), of
    # which attention's per-row softmax scalars are most
    assert mac_only < bound
    attention = sum(op_compute_s(op, BASE, DEFAULT_TILES, PHOENIX) for op in ops if op.kind == "attention")
    assert bound == pytest.approx(sum(op_compute_s(op, BASE, DEFAULT_TILES, PHOENIX) for op in ops) / 16)
    assert attention > sum(op.macs for op in ops if op.kind == "attention") / (128 * 0.5 * 1e9)


def test_share_must_start_on_a_tile_boundary():
    op = _ops()["layer0.qkv"]
    with pytest.raises(ValueError, match="64-row tile boundary"):
        traffic(op, Share(10, 500), BASE, DEFAULT_TILES, PHOENIX)


def test_issue_bound_by_hand():
    """simulate.task_time_s: a task of work W = 1 ms with N = 100 operations, P = 40 pushes, the
    first push the 10th operation. Issue hides behind the work until N c + W / P > W + H c."""
    from npustream.npu.plan.cost import OpCost
    from npustream.npu.plan.plans import Task
    from npustream.npu.predict.simulate import task_time_s
    from npustream.npu.program.runs import IssueCount

    cost = OpCost(compute_s=1e-3, stream_s=0.5e-3, setup_s=0.0, dispatch_s=40e-6, steps=1_000_000, bound="l1")
    work = cost.busy_s()  # 1 ms + 0.5 ns
    task = Task(0, _ops()["layer0.fc1"], 0, Share(0, 1500), cost)
    count = IssueCount(ops=100, pushes=40, head=10)
    assert task_time_s(task, count, 0.0) == cost.time_s()  # free issue: the work alone, exactly
    assert task_time_s(task, None, 5e-6) == cost.time_s()  # no count: no issue bound
    # 1 us per operation: the first push waits 10 us, the other 90 operations hide behind the work
    assert task_time_s(task, count, 1e-6) == pytest.approx(40e-6 + work + 10e-6, rel=1e-12)
    # 20 us per operation: issue-bound, 100 x 20 us, then the last task's share of the work
    assert task_time_s(task, count, 20e-6) == pytest.approx(40e-6 + 2e-3 + work / 40, rel=1e-12)
    # the crossover: W + 10 c = 100 c + W / 40  at  c = (39/40) W / 90
    c = work * 39 / 40 / 90
    assert task_time_s(task, count, c) == pytest.approx(40e-6 + work + 10 * c, rel=1e-12)
