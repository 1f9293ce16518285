"""The resource checker on the column design and the plans: passes at Phoenix's limits for the
shipped models, and names the buffer and the limit when something does not fit; and, with
mlir-aie installed, the IRON design the build compiles, resolved and verified."""

from __future__ import annotations

import pytest
from npu_random_weights import random_weights

from npustream.errors import ConfigError
from npustream.model.dims import WhisperDims
from npustream.npu.ops.params import PRESETS
from npustream.npu.ops.tiles import DEFAULT_TILES, Tiles
from npustream.npu.plan.design import core_buffers, memtile_bytes
from npustream.npu.plan.plans import make_plan
from npustream.npu.predict.resources import check_design, check_plan
from npustream.npu.program.runs import column_run

BASE = WhisperDims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)
SMALL = WhisperDims(80, 1500, 768, 12, 12, 51865, 448, 768, 12, 12)
PHOENIX = PRESETS["phoenix"]


@pytest.mark.parametrize("dims", [BASE, SMALL], ids=["base", "small"])
@pytest.mark.parametrize("kind", ["pipeline", "split"])
def test_shipped_plans_fit_phoenix(dims, kind):
    report = check_plan(make_plan(kind, dims, DEFAULT_TILES, PHOENIX))
    assert report.ok, report.violations


def test_design_accounting_by_hand():
    # per core: in0 2 x 8 KiB (A tile 64 x 64 bf16), in1 2 x (32 x 64 bf16 + 32 fp32 bias),
    # out 2 x 4 KiB, scratch 2 fp32 accumulators and bias slices, the attention kernel's
    # 32 x 32 fp32 scores, bf16 P, 32 x 64 bf16 k^T and 32 bf16 alpha, the exp tables (2 x 256
    # bf16, twice) and the Phi tables (192 bf16 + 192 fp32, twice), 128 B of descriptor and FIFO
    # counters, 1 KiB of stack
    l1 = (
        2 * 8192
        + 2 * 4224
        + 2 * 4096
        + (2 * 64 * 32 * 4 + 2 * 32 * 4)
        + (4096 + 2048 + 4096 + 64)
        + 2 * 2 * 512
        + 2 * (192 * 2 + 192 * 4)
        + 128
        + 1024
    )
    assert core_buffers(BASE, DEFAULT_TILES).total == l1 <= 64 * 1024
    tight = check_design(BASE, DEFAULT_TILES, PHOENIX.replace(l1_bytes=l1 - 1))
    assert [v.where for v in tight.violations] == [
        f"core{i} (FIFO objects x depth + scratch + kernel statics + state + stack)" for i in range(4)
    ]
    assert tight.violations[0].used == l1 and tight.violations[0].limit == l1 - 1
    assert check_design(BASE, DEFAULT_TILES, PHOENIX.replace(l1_bytes=l1)).ok
    # mem tile: 2 row-stream rings of 2 A panels (K = 512: 8 objects each), the broadcast ring
    # of 8 objects, 4 output rings of 4
    assert memtile_bytes(BASE, DEFAULT_TILES) == 2 * 2 * 8 * 8192 + 8 * 4224 + 4 * 4 * 4096


def test_violations_name_resource_and_limit():
    small = PHOENIX.replace(memtile_in_channels=5, tile_bds=5, memtile_locks=12, memtile_bytes=256 * 1024)
    report = check_design(BASE, DEFAULT_TILES, small)
    messages = [str(v) for v in report.violations]
    assert messages == [
        "mem tile of memtile (the rings: row streams, broadcast, outputs): 361472 used, limit 262144",
        "DMA channels of memtile input (S2MM): 6 used, limit 5",
        "BDs of compute tile (static ping-pong BDs): 6 used, limit 5",
        "locks of memtile: 16 used, limit 12",
    ]
    with pytest.raises(ConfigError, match="NPU resource check failed: .*limit 5"):
        report.raise_if_violated()


def test_plan_limits_contexts_and_refuses_shapes_the_design_cannot_cut():
    plan = make_plan("split", BASE, DEFAULT_TILES, PHOENIX.replace(max_hw_contexts=3))
    assert [str(v) for v in check_plan(plan).violations] == [
        "contexts of split plan (one hardware context per column): 4 used, limit 3"
    ]
    odd = WhisperDims(
        80, 1500, 352, 11, 1, 51865, 448, 352, 11, 1
    )  # 352 outputs: not whole 128-column blocks
    with pytest.raises(ConfigError, match="stem.conv1: 352 output columns are not whole blocks of 4 x 32"):
        make_plan("pipeline", odd, DEFAULT_TILES, PHOENIX)


def test_kernel_footprints_are_checked():
    tiles = Tiles(matmul_m=64, matmul_k=128, matmul_n=64)  # matmul buffers double-buffered: > 64 KiB
    assert not check_design(BASE, tiles, PHOENIX).ok
    with pytest.raises(ConfigError, match="matmul kernel needs"):
        make_plan("split", BASE, tiles, PHOENIX)  # tiles.check_l1 refuses it before planning


@pytest.mark.hardware
def test_iron_design_resolves_and_verifies_with_mlir_aie():
    """With mlir-aie installed, IRON resolves a full run's design (IRON for what its runtime chains
    express, the aie / aiex dialect bindings for the rest: mlir/iron_sequence.py) and the module
    verifies. Without it, tests/test_npu_iron_design.py checks every run of both plans on the test
    double of those APIs."""
    pytest.importorskip(
        "aie.iron", reason="mlir-aie is not installed here (no toolchain): see mlir/README.md"
    )

    from mlir.encoder_column import column_program
    from npustream.npu.plan.buffers import column_weight_names, pack_weights, plan_layouts

    dims = WhisperDims(80, 200, 128, 2, 1, 51865, 448, 128, 2, 1)
    weights = random_weights(dims)
    plan = make_plan("pipeline", dims, DEFAULT_TILES, PHOENIX)
    layouts = plan_layouts(plan)[0]
    blob, table = pack_weights(weights, column_weight_names(plan, 0, weights))
    run = column_run(plan, 0, list(range(len(plan.columns[0]))), layouts, table)
    sizes = {role: b.nbytes // 4 for role, b in layouts.buffers.items()} | {"weights": blob.size // 4}
    module = column_program(plan, run, sizes).resolve_program()
    assert module.operation.verify()
