"""The resource checker on the column design and the plans: passes at Phoenix's limits for the
shipped model, and names the buffer and the limit when something does not fit."""

from __future__ import annotations

import dataclasses

import pytest

from npustream.errors import ConfigError
from npustream.model.dims import WhisperDims
from npustream.npu.column_design import Fifo, column_design
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
    design = column_design(dims, DEFAULT_TILES, PHOENIX)
    report = check_plan(make_plan(kind, dims, DEFAULT_TILES, PHOENIX), design)
    assert report.ok, report.violations


def test_design_accounting_by_hand():
    design = column_design(BASE, DEFAULT_TILES, PHOENIX)
    # per core: in0 2 x 8 KiB (A tile 64x64 bf16), in1 2 x (32x64 bf16 + 32 fp32), out 2 x 4 KiB,
    # scratch = attention state (32x32 fp32 scores + bf16 P + 32x64 fp32 acc + m, l), 1 KiB stack
    l1 = 2 * 8192 + 2 * (4096 + 128) + 2 * 4096 + (4096 + 2048 + 8192 + 256) + 1024
    assert l1 <= 64 * 1024
    tight = check_design(design, PHOENIX.replace(l1_bytes=l1 - 1))
    assert [v.where for v in tight.violations] == [f"core{i} (FIFO objects x depth + scratch + stack)" for i in range(4)]
    assert tight.violations[0].used == l1 and tight.violations[0].limit == l1 - 1
    assert check_design(design, PHOENIX.replace(l1_bytes=l1)).ok
    # the two panel objects fill the mem tile next to the stream and join staging
    memtile = sum(f.depth * f.object_bytes for f in design.fifos if f.name in ("panel", "stream", "joined"))
    assert memtile <= 512 * 1024 and 512 * 1024 - memtile < 4


def test_violations_name_buffer_and_limit():
    design = column_design(BASE, DEFAULT_TILES, PHOENIX)
    extra = Fifo("extra_in_core2", "memtile", ("core2",), 1024)
    deep = dataclasses.replace(design.fifo("in0_core1"), depth=13)
    fifos = tuple(deep if f.name == "in0_core1" else f for f in design.fifos) + (extra,)
    report = check_design(dataclasses.replace(design, fifos=fifos), PHOENIX)
    messages = [str(v) for v in report.violations]
    assert "DMA channels of core2 input (S2MM): 3 used, limit 2" in messages
    assert "DMA channels of memtile output (MM2S): 7 used, limit 6" in messages
    assert "BDs of core1: 17 used, limit 16" in messages  # in0 13 + in1 2 + out 2
    assert any(m.startswith("L1 of core1") for m in messages)  # 11 more 8 KiB objects do not fit
    assert not any(m.startswith(("L1 of core0", "BDs of core0")) for m in messages)
    with pytest.raises(ConfigError, match="NPU resource check failed: .*limit 2"):
        report.raise_if_violated()


def test_plan_limits_contexts_and_resident_panels():
    plan = make_plan("split", BASE, DEFAULT_TILES, PHOENIX.replace(max_hw_contexts=3))
    report = check_plan(plan, column_design(BASE, DEFAULT_TILES, plan.params))
    assert [str(v) for v in report.violations] == [
        "contexts of split plan (one hardware context per column): 4 used, limit 3"]
    # a 256 KiB mem tile cannot keep fc2's 64-row block of A (64 x 2048 bf16 = 256 KiB) resident
    small = PHOENIX.replace(memtile_bytes=256 * 1024)
    plan = make_plan("pipeline", BASE, DEFAULT_TILES, small)
    report = check_plan(plan, column_design(BASE, DEFAULT_TILES, small))
    fc2 = [v for v in report.violations if v.where.startswith("layer0.fc2")]
    assert fc2 and fc2[0].resource == "mem tile" and fc2[0].used == 64 * 2048 * 2


def test_kernel_footprints_are_checked():
    tiles = Tiles(matmul_m=64, matmul_k=128, matmul_n=64)  # matmul buffers double-buffered: > 64 KiB
    design = column_design(BASE, tiles, PHOENIX)
    assert not check_design(design, PHOENIX).ok
    with pytest.raises(ConfigError, match="matmul kernel needs"):
        make_plan("split", BASE, tiles, PHOENIX)  # tiles.check_l1 refuses it before planning
