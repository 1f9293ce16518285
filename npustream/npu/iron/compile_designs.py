"""Compile the encoder's operator designs with the pinned amd/IRON, inside the build's own venv.

    <venv>/bin/python compile_designs.py JOBS.json OUT_DIR

This file runs under the toolchain venv's interpreter (amd/IRON, mlir-aie, Peano), not under
npustream's: it imports nothing from npustream and only the standard library besides `iron`.
For each job it constructs the pinned operator class with the job's keyword arguments and an
`AIEContext` whose build_dir is the design's directory, calls `compile()` (kernel objects,
MLIR, xclbin and instruction stream, the operator's own flow), and finds the design's MLIR,
xclbin and instruction stream there. Then it chains the designs into one xclbin with mlir-aie's
`aiecc --xclbin-input` (one kernel per design), so one hardware context runs a whole stream.
It writes OUT_DIR/results.json: per design its kernel name and files, and the chained xclbin,
or the first failure. Exit status 0 only when every design compiled and chained.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

CHAINED = "encoder.xclbin"
FIRST_KERNEL_ID = 0x901  # aiecc's default kernel id is 0x901; chained kernels count up from it


def _one(path: Path, pattern: str) -> Path:
    found = sorted(path.rglob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"{path}: expected one {pattern} after compile(), found {len(found)}")
    return found[0]


def compile_job(job: dict) -> dict:
    module = importlib.import_module(job["module"])
    cls = getattr(module, job["class"])
    context_mod = importlib.import_module("iron.common.context")
    context = context_mod.AIEContext()
    build_dir = Path(job["build_dir"])
    build_dir.mkdir(parents=True, exist_ok=True)
    context.build_dir = build_dir
    op = cls(**job["kwargs"], context=context)
    op.compile()
    return {
        "mlir": str(_one(build_dir, "*.mlir")),
        "xclbin": str(_one(build_dir, "*.xclbin")),
        "insts": str(_one(build_dir, "*insts*.bin")),
    }


def chain_command(
    aiecc: str, mlir: str, previous: Path | None, out: Path, kernel: str, index: int, peano: str | None
) -> list[str]:
    """aiecc adding one design's kernel to the chained xclbin (the first one starts it)."""
    cmd = [
        aiecc,
        "--no-compile-host",
        "--no-xchesscc",
        "--no-xbridge",
        "--aie-generate-xclbin",
        f"--xclbin-name={out}",
        f"--xclbin-kernel-name={kernel}",
        f"--xclbin-kernel-id={hex(FIRST_KERNEL_ID + index)}",
        f"--xclbin-instance-name={kernel}",
    ]
    if peano:
        cmd.append(f"--peano={peano}")
    if previous is not None:
        cmd.append(f"--xclbin-input={previous}")
    return [*cmd, mlir]


def main(argv: list[str]) -> int:
    jobs_path, out_dir = Path(argv[1]), Path(argv[2])
    jobs = json.loads(jobs_path.read_text())["jobs"]
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"designs": {}, "xclbin": None, "error": None}
    try:
        for i, job in enumerate(jobs):
            print(f"[{i + 1}/{len(jobs)}] {job['key']}", flush=True)
            results["designs"][job["key"]] = {**compile_job(job), "kernel": f"k{i:02d}"}
        aiecc = shutil.which("aiecc") or shutil.which("aiecc.py")
        if aiecc is None:
            raise RuntimeError("mlir-aie's aiecc is not on the venv's PATH: cannot chain the designs")
        llvm_aie = importlib.util.find_spec("llvm-aie") or importlib.util.find_spec("llvm_aie")
        peano = str(Path(llvm_aie.origin).parent) if llvm_aie and llvm_aie.origin else None
        previous = None
        for i, design in enumerate(results["designs"].values()):
            out = out_dir / f"chain-{i:02d}.xclbin"
            cmd = chain_command(aiecc, design["mlir"], previous, out, design["kernel"], i, peano)
            print("$ " + " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=Path(design["mlir"]).parent)
            previous = out
        final = out_dir / CHAINED
        shutil.copyfile(previous, final)
        results["xclbin"] = str(final)
    except Exception as exc:  # noqa: BLE001 - reported to npustream in results.json, whatever it is
        results["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return 0 if results["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
