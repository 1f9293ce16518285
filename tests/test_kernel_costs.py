"""The kernels' predicted costs (npustream/npu/ops/kernel_costs.py) against the kernel code: the
committed table is what tests/tools/kernel_count.py counts in kernels/ now, so a kernel edit that
changes its work fails here until the table is regenerated; the counter reads what it claims to
(the MACs of a matmul tile are the arithmetic's); and every core's program-memory estimate stays
within Phoenix's 16 KiB, with the resource checker refusing a design that does not."""

from __future__ import annotations

import shutil

import pytest

from npustream.model.dims import WhisperDims
from npustream.npu.ops import kernel_costs, kernel_costs_table
from npustream.npu.ops.graph import encoder_ops
from npustream.npu.ops.params import PRESETS
from npustream.npu.ops.tiles import DEFAULT_TILES, Tiles
from npustream.npu.predict.resources import check_design, core_program_memory
from tools import kernel_count

BASE = WhisperDims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)


def test_table_is_what_the_kernel_code_counts():
    counted_at = kernel_costs_table.COUNTED_AT
    tiles, (d_model, d_head) = Tiles(**counted_at["tiles"]), counted_at["dims"]
    assert kernel_count.count_table(tiles, d_model, d_head) == kernel_costs_table.CALLS, (
        "kernels/ changed: regenerate with PYTHONPATH=tests python -m tools.kernel_count "
        "> npustream/npu/ops/kernel_costs_table.py"
    )
    assert kernel_count.file_program_bytes() == kernel_costs_table.PROGRAM_BYTES_BY_FILE


def test_counter_reads_loops_helpers_and_flags():
    """A 64 x 64 x 32 tile is 131072 MACs: 1024 mmul instructions of 128; attention's q k^T and
    P.V at 32 x 32 x 64 the same; the GELU epilogue costs more than the plain one (its table
    lookups through the inline helpers), a residual adds a load per block."""
    calls = kernel_costs_table.CALLS
    assert calls["matmul_acc"]["mmul"] == 64 * 64 * 32 // 128
    assert calls["attn_update"]["mmul"] == 2 * 32 * 32 * 64 // 128
    assert calls["matmul_out_gelu"]["lookup"] == 2 * (64 * 32 // 16) and calls["matmul_out"]["lookup"] == 0
    assert calls["matmul_out_residual"]["load"] == calls["matmul_out"]["load"] + 64 * 32 // 16
    assert calls["matmul_acc"]["cycles"] >= calls["matmul_acc"]["mmul"]


def test_a_kernel_edit_changes_the_count(tmp_path, repo_root):
    """What makes the table test fail: one more MAC per inner iteration of the matmul."""
    kernels = tmp_path / "kernels"
    shutil.copytree(repo_root / "kernels", kernels)
    source = (kernels / "matmul.cc").read_text()
    (kernels / "matmul.cc").write_text(
        source.replace("C11.mac(A1, B1);", "C11.mac(A1, B1);\n        C11.mac(A1, B1);")
    )
    changed = kernel_count.count_call("npu_matmul_acc", {"m": 64, "k": 64, "n": 32}, kernels)
    assert changed.ops["mmul"] == kernel_costs_table.CALLS["matmul_acc"]["mmul"] * 5 / 4


def test_op_cycles_scale_with_the_work():
    ops = {op.name: op for op in encoder_ops(BASE)}
    fc1 = kernel_costs.op_cycles(ops["layer0.fc1"], BASE, DEFAULT_TILES)
    assert fc1.mmul == ops["layer0.fc1"].macs / 128  # padded MACs, 128 per mmul
    attn = kernel_costs.op_cycles(ops["layer0.attn"], BASE, DEFAULT_TILES)
    assert attn.total > attn.mmul > 0


def test_program_memory_within_16_kib_and_checked():
    parts = core_program_memory()
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert parts["total"] <= kernel_costs.PROGRAM_MEMORY_BYTES == PRESETS["phoenix"].program_bytes
    phoenix = PRESETS["phoenix"]
    assert check_design(BASE, DEFAULT_TILES, phoenix).ok
    tight = check_design(BASE, DEFAULT_TILES, phoenix.replace(program_bytes=parts["total"] - 1))
    assert [v.resource for v in tight.violations] == ["program memory"] * 4


@pytest.mark.parametrize("row", list(kernel_costs_table.CALLS))
def test_every_row_has_a_cost(row):
    assert kernel_costs.call_cycles(row, DEFAULT_TILES, 512, 64).total > 0
