"""Check plans and the column design against Phoenix's limits (params.NpuParams):

- L1 (64 KiB per compute tile): the design's FIFO objects times their depth (double buffers),
  the kernels' scratch and the core stack; and each kernel's own footprint (tiles.l1_footprints)
- mem tile (512 KiB): the design's mem-tile FIFOs; and what each op keeps resident in a panel
- DMA channels: 2 in + 2 out per compute tile and per shim tile, 6 + 6 per mem tile
- buffer descriptors: each FIFO end uses `depth` BDs on its tile (16 per compute / shim tile,
  48 per mem tile); locks: 2 per FIFO end (16 per compute tile, 64 per mem tile)
- hardware contexts (at most 6 at once) and columns (4)

A violation names the buffer or resource, the amount used and the limit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from npustream.errors import ConfigError
from npustream.npu.column_design import ColumnDesign
from npustream.npu.params import NpuParams
from npustream.npu.plan import Plan
from npustream.npu.tiles import l1_footprints
from npustream.npu.timing import traffic


@dataclass(frozen=True)
class Violation:
    resource: str  # "L1", "mem tile", "DMA channels", "BDs", "locks", "contexts", "columns"
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
        return {"ok": self.ok, "violations": [
            {"resource": v.resource, "where": v.where, "used": v.used, "limit": v.limit, "message": str(v)}
            for v in self.violations]}


def check_design(design: ColumnDesign, params: NpuParams, report: ResourceReport | None = None) -> ResourceReport:
    report = report or ResourceReport()
    cores = [f"core{i}" for i in range(params.tiles_per_column)]
    l1: Counter[str] = Counter({c: design.scratch_bytes + design.stack_bytes for c in cores})
    memtile = 0
    ch_in: Counter[str] = Counter()
    ch_out: Counter[str] = Counter()
    bds: Counter[str] = Counter()
    locks: Counter[str] = Counter()
    for fifo in design.fifos:
        ends = (fifo.producer, *fifo.consumers)
        for tile in ends:
            if tile.startswith("core"):
                l1[tile] += fifo.depth * fifo.object_bytes  # each core end has its own buffers
            locks[tile] += 2  # a producer/consumer lock pair per end
        if "memtile" in ends and "shim" in ends:
            # L2 objects; core FIFOs linked to these (split, broadcast, join) share them
            memtile += fifo.depth * fifo.object_bytes
        # one DMA channel out of the producer (one per consumer unless broadcast), one into
        # each consumer; each end chains `depth` buffer descriptors
        ch_out[fifo.producer] += 1 if fifo.broadcast else len(fifo.consumers)
        bds[fifo.producer] += fifo.depth
        for tile in fifo.consumers:
            ch_in[tile] += 1
            bds[tile] += fifo.depth
    for core in cores:
        report.need("L1", f"{core} (FIFO objects x depth + scratch + stack)", l1[core], params.l1_bytes)
    report.need("mem tile", "memtile (FIFO objects x depth)", memtile, params.memtile_bytes)
    # the shim consumes array -> DDR FIFOs (params' "out" channels) and produces DDR -> array
    # ones ("in" channels); its locks are not limited here
    limits = {"shim": (params.shim_out_channels, params.shim_in_channels, params.shim_bds, 1 << 30),
              "memtile": (params.memtile_in_channels, params.memtile_out_channels, params.memtile_bds,
                          params.memtile_locks)}
    for tile in set(ch_in) | set(ch_out):
        lim_in, lim_out, lim_bd, lim_locks = limits.get(
            tile, (params.tile_in_channels, params.tile_out_channels, params.tile_bds, params.tile_locks))
        report.need("DMA channels", f"{tile} input (S2MM)", ch_in[tile], lim_in)
        report.need("DMA channels", f"{tile} output (MM2S)", ch_out[tile], lim_out)
        report.need("BDs", tile, bds[tile], lim_bd)
        report.need("locks", tile, locks[tile], lim_locks)
    return report


def check_plan(plan: Plan, design: ColumnDesign) -> ResourceReport:
    """The plan's columns and contexts, each op's resident panel, each kernel's L1 footprint,
    and the column design it runs on."""
    params = plan.params
    report = check_design(design, params)
    used = sum(1 for tasks in plan.columns if tasks)
    report.need("columns", f"{plan.kind} plan", used, params.columns)
    report.need("contexts", f"{plan.kind} plan (one hardware context per column)", used, params.max_hw_contexts)
    for kernel, nbytes in l1_footprints(plan.tiles, plan.dims).items():
        report.need("L1", f"{kernel} kernel buffers (double-buffered, tiles.py)", nbytes, params.l1_bytes)
    seen = set()
    for tasks in plan.columns:
        for task in tasks:
            if task.op.name in seen:
                continue
            seen.add(task.op.name)
            tr = traffic(task.op, task.share, plan.dims, plan.tiles, params)
            report.need("mem tile", f"{task.op.name} resident panel (both panel objects)",
                        tr.resident, 2 * design.panel_bytes)
    return report
