"""For the pyxrt TEST DOUBLE (tests/doubles/pyxrt.py): stand-in builds and the emulated device program.

`write_stand_in_build` writes what mlir/build.py would (manifest.json, an xclbin, one
instruction stream per run), except that the xclbin is a description only the double loads and
each instruction stream just names its run. `emulated_program` is the double's device: it
decodes those instruction streams and runs the task with the emulator on the device copies of
the buffers, with the weights unpacked from the weights buffer exactly as the runtime uploaded
them. Real instruction streams mean nothing to it.
"""

from __future__ import annotations

import json
import threading
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from doubles.pyxrt import DOUBLE_XCLBIN
from npustream.npu.plan.plans import column_runs
from npustream.npu.run.manifest import DATA_ARGS, FIRST_DATA_ARG, KERNEL, write_manifest

MAGIC = 0x4E505544  # "NPUD": a stand-in instruction stream


def write_stand_in_build(build_dir: Path, plan, weights) -> Path:
    """What mlir/build.py would write, for this double: a manifest, an xclbin description and
    instruction streams that name their run (MAGIC, column, run number, its task numbers)."""
    build_dir = Path(build_dir)
    (build_dir / "insts").mkdir(parents=True, exist_ok=True)
    xclbin = {
        "format": DOUBLE_XCLBIN,
        "uuid": str(uuidlib.uuid4()),
        "kernels": [{"name": KERNEL, "num_args": FIRST_DATA_ARG + len(DATA_ARGS)}],
    }
    (build_dir / "encoder_column.xclbin").write_text(json.dumps(xclbin))
    insts = []
    for c in range(len(plan.columns)):
        names = []
        for n, run in enumerate(column_runs(plan, c)):
            name = f"insts/c{c}_r{n:03d}.bin"
            np.array([MAGIC, c, n, *run], np.uint32).tofile(build_dir / name)
            names.append(name)
        insts.append(names)
    return write_manifest(
        build_dir,
        plan,
        weights,
        xclbin="encoder_column.xclbin",
        insts=insts,
        toolchain={"pyxrt_test_double": True},
    )


def emulated_program(manifest: dict) -> Callable:
    """The device side of a stand-in build: decode the instruction stream, then run the task
    with the emulator on the device copies of the buffers (weights unpacked from the weights
    buffer exactly as uploaded)."""
    from npustream.npu.plan.buffers import plan_layouts, unpack_weights
    from npustream.npu.run.executor import run_task
    from npustream.npu.run.manifest import plan_from_manifest

    plan = plan_from_manifest(manifest)
    layouts = plan_layouts(plan)
    decoded: dict[tuple[int, int], object] = {}  # (id, generation) of a weights bo -> NpuWeights
    lock = threading.Lock()  # each context runs on its own thread

    def program(name: str, insts: np.ndarray, data: list) -> None:
        if insts.size < 4 or insts[0] != MAGIC:
            raise ValueError("not a stand-in instruction stream")
        column, run = int(insts[1]), int(insts[2])
        numbers = tuple(int(v) for v in insts[3:])
        if column_runs(plan, column)[run] != numbers:
            raise ValueError("instruction stream for another plan")
        buffers = {role: b.device for role, b in zip(DATA_ARGS, data)}
        wbo = data[DATA_ARGS.index("weights")]
        key = (id(wbo), wbo.generation)
        with lock:
            if key not in decoded:
                table = {
                    n: (o, d, tuple(s)) for n, (o, d, s) in manifest["columns"][column]["weights"].items()
                }
                decoded[key] = unpack_weights(wbo.device, table, plan.dims, plan.tiles)
            weights = decoded[key]
        for number in numbers:
            run_task(plan.columns[column][number], layouts[column], buffers, weights)

    return program
