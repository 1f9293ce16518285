"""Check plans and the column design against Phoenix's limits (params.NpuParams):

- program memory (16 KiB per compute tile): every core links every kernel the glue calls, the
  glue and the core program; ops/kernel_costs.program_memory estimates the bytes (counted from
  the kernels' source; an estimate until a linked core ELF says otherwise)
- L1 (64 KiB per compute tile): the core's FIFO objects times their depth (double buffers), its
  scratch, the kernels' static arrays, the descriptor and FIFO counters, the stack; and each
  kernel's own footprint (tiles.l1_footprints)
- mem tile (512 KiB): the rings of column_design.memtile_rings
- DMA channels: 2 in + 2 out per compute tile and per shim tile, 6 + 6 per mem tile
- buffer descriptors and locks the static design takes per tile (16 BDs and 16 locks per compute
  tile, 64 locks per mem tile); the BDs the runtime sequence programs on the shim and mem tiles
  are allocated within 16 and 2 x 24 by column_program.Sequencer, which refuses a program that
  would need more
- hardware contexts (at most 6 at once) and columns (4); an op the dataflow cannot cut (output
  columns not whole blocks of 4 tiles) is refused earlier, with a ConfigError, when planning

A violation names the buffer or resource, the amount used and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from npustream.errors import ConfigError
from npustream.model.dims import WhisperDims
from npustream.npu.ops.kernel_costs import program_memory
from npustream.npu.ops.params import NpuParams
from npustream.npu.ops.tiles import Tiles, l1_footprints
from npustream.npu.plan.design import (
    CORE_MM2S,
    CORE_S2MM,
    FIFO_SLOTS,
    MEM_MM2S,
    MEM_S2MM,
    SHIM_MM2S,
    SHIM_S2MM,
    core_buffers,
    memtile_bytes,
    memtile_locks,
)
from npustream.npu.plan.plans import Plan
from npustream.npu.program import core as core_program


@dataclass(frozen=True)
class Violation:
    resource: str  # "L1", "program memory", "mem tile", "DMA channels", "BDs", "locks", "contexts", "columns"
    where: str  # the tile, buffer or op concerned
    used: int
    limit: int

    def __str__(self) -> str:
        return f"{self.resource} of {self.where}: {self.used} used, limit {self.limit}"


@dataclass
class ResourceReport:
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def need(self, resource: str, where: str, used: int, limit: int) -> None:
        if used > limit:
            self.violations.append(Violation(resource, where, used, limit))

    def raise_if_violated(self) -> None:
        if self.violations:
            raise ConfigError("NPU resource check failed: " + "; ".join(map(str, self.violations)))

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "violations": [
                {
                    "resource": v.resource,
                    "where": v.where,
                    "used": v.used,
                    "limit": v.limit,
                    "message": str(v),
                }
                for v in self.violations
            ],
        }


def design_usage(dims: WhisperDims, tiles: Tiles) -> dict[str, int]:
    """What the static column design takes of each limited resource."""
    return {
        "core_l1": core_buffers(dims, tiles).total,
        "memtile_bytes": memtile_bytes(dims, tiles),
        "core_in_channels": len(CORE_S2MM),
        "core_out_channels": len(CORE_MM2S),
        "memtile_in_channels": len(MEM_S2MM),
        "memtile_out_channels": len(MEM_MM2S),
        "shim_in_channels": len(SHIM_MM2S),
        "shim_out_channels": len(SHIM_S2MM),
        "core_bds": FIFO_SLOTS * (len(CORE_S2MM) + len(CORE_MM2S)),
        "core_locks": 2 * len(core_program.FIFOS) + 1,  # a lock pair per FIFO and the "go" lock
        "memtile_locks": len(memtile_locks(dims, tiles)),
    }


def core_program_nodes(nodes=None) -> int:
    """Nodes of the core program (every lock use, loop, branch and call), what its code grows with."""
    count = 0
    for node in core_program.PHASE if nodes is None else nodes:
        count += 1
        if isinstance(node, core_program.Loop):
            count += core_program_nodes(node.body)
        elif isinstance(node, core_program.If):
            count += core_program_nodes(node.then) + core_program_nodes(node.orelse)
    return count


def core_program_memory() -> dict[str, int]:
    """Estimated program bytes of one core, by part (ops/kernel_costs.program_memory)."""
    return program_memory(core_program_nodes())


def check_design(
    dims: WhisperDims, tiles: Tiles, params: NpuParams, report: ResourceReport | None = None
) -> ResourceReport:
    report = report or ResourceReport()
    use = design_usage(dims, tiles)
    report.need("compute tiles", "column design (a 2 x 2 grid of cores)", 4, params.tiles_per_column)
    program = core_program_memory()["total"]
    for core in range(params.tiles_per_column):
        report.need(
            "L1",
            f"core{core} (FIFO objects x depth + scratch + kernel statics + state + stack)",
            use["core_l1"],
            params.l1_bytes,
        )
        report.need(
            "program memory",
            f"core{core} (kernels + glue + core program, estimated from the source)",
            program,
            params.program_bytes,
        )
    report.need(
        "mem tile",
        "memtile (the rings: row streams, broadcast, outputs)",
        use["memtile_bytes"],
        params.memtile_bytes,
    )
    for where, key, limit in (
        ("compute tile input (S2MM)", "core_in_channels", params.tile_in_channels),
        ("compute tile output (MM2S)", "core_out_channels", params.tile_out_channels),
        ("memtile input (S2MM)", "memtile_in_channels", params.memtile_in_channels),
        ("memtile output (MM2S)", "memtile_out_channels", params.memtile_out_channels),
        ("shim DDR -> array (MM2S)", "shim_in_channels", params.shim_in_channels),
        ("shim array -> DDR (S2MM)", "shim_out_channels", params.shim_out_channels),
    ):
        report.need("DMA channels", where, use[key], limit)
    report.need("BDs", "compute tile (static ping-pong BDs)", use["core_bds"], params.tile_bds)
    report.need("locks", "compute tile", use["core_locks"], params.tile_locks)
    report.need("locks", "memtile", use["memtile_locks"], params.memtile_locks)
    return report


def check_plan(plan: Plan) -> ResourceReport:
    """The column design for the plan's model, each op's shape, each kernel's L1 footprint, the
    plan's columns and contexts."""
    params = plan.params
    report = check_design(plan.dims, plan.tiles, params)
    used = sum(1 for tasks in plan.columns if tasks)
    report.need("columns", f"{plan.kind} plan", used, params.columns)
    report.need(
        "contexts", f"{plan.kind} plan (one hardware context per column)", used, params.max_hw_contexts
    )
    for kernel, nbytes in l1_footprints(plan.tiles, plan.dims).items():
        report.need("L1", f"{kernel} kernel buffers (double-buffered, ops/tiles.py)", nbytes, params.l1_bytes)
    return report


def check_recorded_design(recorded, params: NpuParams, dims: WhisperDims, tiles: Tiles) -> ResourceReport:
    """The limits on a design as IRON records it (mlir/encoder_column.py, through the aie.iron
    test double npustream/npu/iron_double_program.Recorded): L1 per compute tile from the buffers declared
    on it, doubled objects included, plus what the descriptions say the core also needs (kernel
    statics, stack: not IRON buffers); the mem tile from its buffers; DMA channels per tile from
    the static TileDma programs and the flows' ends."""
    report = ResourceReport()
    rt = recorded.rt
    cb = core_buffers(dims, tiles)
    rows = sorted({b.tile.row for b in rt.buffers})
    for row in rows:
        nbytes = sum(b.nbytes for b in rt.buffers if b.tile.row == row)
        if row == 1:
            report.need("mem tile", "memtile (IRON buffers)", nbytes, params.memtile_bytes)
        elif row >= 2:
            report.need(
                "L1",
                f"core{row - 2} (IRON buffers + kernel statics + stack)",
                nbytes + cb.statics + cb.stack,
                params.l1_bytes,
            )
    channels: dict[tuple[int, str], set[int]] = {}
    for flow in rt.flows:
        channels.setdefault((flow.src.row, "out"), set()).add(flow.src_channel)
        for dst in flow.dsts:
            channels.setdefault((dst.row, "in"), set()).add(flow.dst_channel)
    for td in rt.tile_dmas:
        for ch in td.channels:
            channels.setdefault((td.tile.row, "in" if ch.direction.name == "S2MM" else "out"), set()).add(
                ch.channel
            )
    limits = {
        (0, "out"): params.shim_in_channels,
        (0, "in"): params.shim_out_channels,
        (1, "in"): params.memtile_in_channels,
        (1, "out"): params.memtile_out_channels,
    }
    for (row, way), used in sorted(channels.items()):
        limit = limits.get((row, way), params.tile_in_channels if way == "in" else params.tile_out_channels)
        report.need("DMA channels", f"tile row {row} ({way})", len(used), limit)
    return report
