"""The build manifest: what a build produced for one plan, and what the XRT runtime checks before
it loads anything. mlir/build.py writes it next to the xclbin and the instruction streams.

    {"format": 1, "plan": "pipeline", "preset": "phoenix", "dims": {...}, "tiles": {...},
     "xclbin": "encoder_column.xclbin", "kernel": "MLIR_AIE", "toolchain": {...},
     "columns": [{"tasks": [{"op": "layer0.qkv", "index": 3, "rows": [0, 1500], "heads": [0, 1]}, ...],
                  "runs": [{"tasks": [0, 1, 2], "insts": "aiecc/insts_main_c0_r000.bin"}, ...],
                  "buffers": {"in": {"nbytes": N,
                                     "tensors": {"mel": [offset, rows, cols, front, back]}}, ...},
                  "carried": [...], "weights": {"layer0.qkv.wb": [offset, "<u2", [12, 8, 4, 2112]], ...}}]}

A run is one XRT kernel call running some of the column's tasks (plan.column_runs): in the
pipeline plan all of them, once per window; in the split plan one per op. Each run is one named
runtime sequence (`c<column>_r<run>`) of the plan's one MLIR module, and "insts" the instruction
stream aiecc wrote for it (mlir/build.py).

Every run of the per-column kernel takes: opcode 3, the instruction buffer, its length in 32-bit
words, then the data buffers in DATA_ARGS order (mlir-aie's NPU kernel convention: group ids 1
for instructions, 3.. for data).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from npustream.errors import EngineError
from npustream.model.dims import WhisperDims
from npustream.npu.ops.params import preset
from npustream.npu.ops.tiles import Tiles
from npustream.npu.ops.weights import NpuWeights
from npustream.npu.plan.buffers import column_weight_names, pack_weights, plan_layouts
from npustream.npu.plan.plans import Plan, column_runs, make_plan

MANIFEST = "manifest.json"
FORMAT = 1
KERNEL = "MLIR_AIE"
OPCODE = 3
INSTS_ARG = 1
DATA_ARGS = ("in", "scratch", "out", "weights")  # kernel arguments 3, 4, 5, 6
FIRST_DATA_ARG = 3
BUILD_HINT = "build them with `python -m mlir.build` (docs/npu-scheduler.md, needs mlir-aie)"


def default_build_dir(plan_kind: str, preset_name: str) -> Path:
    """Where mlir/build.py puts a build and NpuEngine looks for it ($NPUSTREAM_NPU_BUILD wins)."""
    override = os.environ.get("NPUSTREAM_NPU_BUILD")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "npustream" / "npu-build" / f"{preset_name}-{plan_kind}"


def _signature(plan: Plan) -> dict:
    return {
        "plan": str(plan.kind),
        "preset": plan.params.name,
        "dims": asdict(plan.dims),
        "tiles": asdict(plan.tiles),
    }


def _json_table(table: dict) -> dict:
    return {name: [off, dtype, list(shape)] for name, (off, dtype, shape) in table.items()}


def column_entries(plan: Plan, weights: NpuWeights) -> list[dict]:
    """What each column of this plan needs: tasks, buffer layouts, carried names, weight table."""
    entries = []
    for column, layouts in enumerate(plan_layouts(plan)):
        _, table = pack_weights(weights, column_weight_names(plan, column, weights))
        entries.append(
            {
                "tasks": [
                    {
                        "op": t.op.name,
                        "index": t.index,
                        "rows": [t.share.row0, t.share.row1],
                        "heads": [t.share.head0, t.share.head1],
                    }
                    for t in plan.columns[column]
                ],
                "runs": [{"tasks": list(run)} for run in column_runs(plan, column)],
                "buffers": {
                    role: {
                        "nbytes": b.nbytes,
                        "tensors": {
                            n: [p.offset, p.rows, p.cols, p.front, p.back] for n, p in b.tensors.items()
                        },
                    }
                    for role, b in layouts.buffers.items()
                },
                "carried": list(layouts.carried),
                "weights": _json_table(table),
            }
        )
    return entries


def write_manifest(
    build_dir: Path, plan: Plan, weights: NpuWeights, *, xclbin: str, insts: list[list[str]], toolchain: dict
) -> Path:
    entries = column_entries(plan, weights)
    for entry, files in zip(entries, insts, strict=True):
        for run, name in zip(entry["runs"], files, strict=True):
            run["insts"] = name
    manifest = {
        "format": FORMAT,
        **_signature(plan),
        "xclbin": xclbin,
        "kernel": KERNEL,
        "toolchain": toolchain,
        "columns": entries,
    }
    path = Path(build_dir) / MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path


def load_manifest(build_dir: Path) -> dict:
    path = Path(build_dir) / MANIFEST
    if not path.is_file():
        raise EngineError(f"no built NPU design in {build_dir} ({MANIFEST} missing); {BUILD_HINT}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise EngineError(f"cannot read {path}: {error}") from error
    if manifest.get("format") != FORMAT:
        raise EngineError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT}; {BUILD_HINT}")
    for name in [manifest["xclbin"]] + [r["insts"] for c in manifest["columns"] for r in c["runs"]]:
        if not (Path(build_dir) / name).is_file():
            raise EngineError(f"{build_dir}/{name} is missing; {BUILD_HINT}")
    return manifest


def check_matches(manifest: dict, plan: Plan, weights: NpuWeights) -> None:
    """EngineError naming the first way the build differs from what this plan needs."""
    want = _signature(plan)
    for key, value in want.items():
        if manifest.get(key) != value:
            raise EngineError(
                f"the NPU build is for {key} {manifest.get(key)!r}, this run needs {value!r}; "
                f"rebuild: {BUILD_HINT}"
            )
    entries = column_entries(plan, weights)
    if len(manifest["columns"]) != len(entries):
        raise EngineError(f"the NPU build has {len(manifest['columns'])} columns, the plan {len(entries)}")
    for c, (built, need) in enumerate(zip(manifest["columns"], entries)):
        for key in ("buffers", "carried", "weights"):
            if built[key] != need[key]:
                raise EngineError(
                    f"the NPU build's column {c} {key} differ from this plan's; rebuild: {BUILD_HINT}"
                )
        runs = [{"tasks": r["tasks"]} for r in built["runs"]]
        if built["tasks"] != need["tasks"] or runs != need["runs"]:
            raise EngineError(
                f"the NPU build's column {c} runs other ops than this plan; rebuild: {BUILD_HINT}"
            )


def plan_from_manifest(manifest: dict) -> Plan:
    """The plan a build was made for, re-derived from its signature."""
    dims, tiles = WhisperDims(**manifest["dims"]), Tiles(**manifest["tiles"])
    return make_plan(manifest["plan"], dims, tiles, preset(manifest["preset"]))
