"""The resource checker on the column design and the plans: passes at Phoenix's limits for the
shipped models, and names the buffer and the limit when something does not fit; and the MLIR the
build compiles, printed from the same program the simulator checks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from npu_random_weights import random_weights

from npustream.errors import ConfigError
from npustream.model.dims import WhisperDims
from npustream.npu.column_design import core_buffers, memtile_bytes
from npustream.npu.column_program import MEM_BDS_PER_PARITY, SHIM_BDS, Push, column_run
from npustream.npu.params import PRESETS
from npustream.npu.plan import make_plan
from npustream.npu.resources import check_design, check_plan
from npustream.npu.tiles import DEFAULT_TILES, Tiles

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
    # 32 x 32 fp32 scores, bf16 P and 32 fp32 alpha, the LayerNorm kernel's 1280 fp32 row,
    # 128 B of descriptor and FIFO counters, 1 KiB of stack
    l1 = 2 * 8192 + 2 * 4224 + 2 * 4096 + (2 * 64 * 32 * 4 + 2 * 32 * 4) + (4096 + 2048 + 128) + 5120 + 128 + 1024
    assert core_buffers(BASE, DEFAULT_TILES).total == l1 <= 64 * 1024
    tight = check_design(BASE, DEFAULT_TILES, PHOENIX.replace(l1_bytes=l1 - 1))
    assert [v.where for v in tight.violations] == [
        f"core{i} (FIFO objects x depth + scratch + kernel statics + state + stack)" for i in range(4)]
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
        "contexts of split plan (one hardware context per column): 4 used, limit 3"]
    odd = WhisperDims(80, 1500, 352, 11, 1, 51865, 448, 352, 11, 1)  # 352 outputs: not whole 128-column blocks
    with pytest.raises(ConfigError, match="stem.conv1: 352 output columns are not whole blocks of 4 x 32"):
        make_plan("pipeline", odd, DEFAULT_TILES, PHOENIX)


def test_kernel_footprints_are_checked():
    tiles = Tiles(matmul_m=64, matmul_k=128, matmul_n=64)  # matmul buffers double-buffered: > 64 KiB
    assert not check_design(BASE, tiles, PHOENIX).ok
    with pytest.raises(ConfigError, match="matmul kernel needs"):
        make_plan("split", BASE, tiles, PHOENIX)  # tiles.check_l1 refuses it before planning


def test_mlir_module_prints_the_column_program():
    """The module the build hands aiecc: one device, every task of the run configured with the
    BD ids the sequencer chose, started and awaited; every lock and buffer it names declared."""
    run, text = _printed_column_module(column=1)
    from encoder_column import ARGS  # importable once the helper has put mlir/ on the path
    assert text.count("aie.device(npu1_1col)") == 1 and text.count("{") == text.count("}")
    pushes = [op for op in run.ops if isinstance(op, Push)]
    assert text.count("aiex.dma_configure_task(") == text.count("aiex.dma_start_task(") == len(pushes)
    assert text.count("aiex.dma_await_task(") == len(run.tasks)
    ids = [int(i) for i in re.findall(r"bd_id = (\d+) : i32", text)]
    assert ids == [i for op in pushes for i in op.bd_ids]
    assert max(ids) < 2 * MEM_BDS_PER_PARITY and all(i < SHIM_BDS for op in pushes for i in op.bd_ids
                                                      if run.tasks[op.task].tile == "shim")
    declared = set(re.findall(r"(%[a-z0-9_]+) = aie\.(?:lock|buffer|tile)", text))
    used = set(re.findall(r"aie\.use_lock\((%[a-z0-9_]+)", text)) | set(re.findall(r"set_lock\((%[a-z0-9_]+)", text))
    used |= set(re.findall(r"aie\.dma_bd\((%[a-z0-9_]+)", text)) - {f"%{a}" for a in ARGS}
    assert used <= declared, used - declared
    assert len(re.findall(r"aie\.core\(", text)) == 4 and len(re.findall(r"aie\.mem\(", text)) == 4
    assert all(f'@{k}(' in text for k in ("col_mm_acc", "col_attn_update", "col_layernorm"))
    assert np.all(np.diff([text.index(f"%core{c} = aie.tile") for c in range(4)]) > 0)


@pytest.mark.hardware
def test_mlir_module_parses_with_mlir_aie():
    """With mlir-aie installed, its own parser and verifiers accept the printed module."""
    pytest.importorskip("aie", reason="mlir-aie is not installed here (no toolchain): see mlir/README.md")
    from aie.dialects import aie as _aie_dialect  # noqa: F401  (registers the dialects)
    from aie.ir import Context, Location, Module

    _, text = _printed_column_module(column=0)
    with Context(), Location.unknown():
        module = Module.parse(text)
        assert module.operation.verify()


def _printed_column_module(column: int):
    """One pipeline column's run of a small random-weight model, and its printed MLIR module."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mlir"))
    from encoder_column import run_module

    from npustream.npu.buffers import column_weight_names, pack_weights, plan_layouts

    dims = WhisperDims(80, 200, 128, 2, 1, 51865, 448, 128, 2, 1)
    weights = random_weights(dims)
    plan = make_plan("pipeline", dims, DEFAULT_TILES, PHOENIX)
    layouts = plan_layouts(plan)[column]
    blob, table = pack_weights(weights, column_weight_names(plan, column, weights))
    run = column_run(plan, column, list(range(len(plan.columns[column]))), layouts, table)
    sizes = {role: b.nbytes // 4 for role, b in layouts.buffers.items()} | {"weights": blob.size // 4}
    return run, run_module(plan, run, sizes)
