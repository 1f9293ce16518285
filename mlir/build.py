"""Build the per-column NPU design for a plan: kernels and glue with Peano, one MLIR module per
XRT run resolved by IRON (encoder_column.py: the same device, that run's runtime sequence), the
xclbin (once, from the first module) and each run's instruction stream with aiecc, then
manifest.json, the file the `npu` engine loads a build by.
README.md has the pinned toolchain and how to install it.

aiecc is the 2026 C++ driver (tools/aiecc/CommandLineOptions.h, AIECC_CLI below): outputs chosen
with --get-<name>, Peano the default compiler (no --no-xchesscc / --no-xbridge: Chess only with
--xchesscc). Only the first run compiles the cores (--get-xclbin); the others ask for their
instruction stream alone, which needs no core compile. Every run writes its buffer addresses
(--get-input-with-addresses) and the build refuses modules whose allocation differs from the
first's: the instruction streams address the xclbin's buffers. One module per plan with one
runtime sequence per run (aiecc --sequence-name) needs several sequences in one IRON Program,
which the IRON read (python/iron/runtime/runtime.py) does not offer.

    python -m mlir.build [--plan pipeline|split] [--preset phoenix] [--model DIR] [--out DIR]
                         [--kernels-only] [--mlir-only]

--mlir-only writes the MLIR modules (and the generated headers) with mlir-aie's Python package
but without Peano or aiecc, for inspection; it writes no manifest, so the engine never loads it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Pinned (README.md): the mlir-aie commit whose python/iron/runtime/tiledmatask.py,
# python/dialects/aie.py and aiex.py the design was written against (tile_dma_chain; the
# dialect-level dma_configure_task / bds / dma_bd(iteration=) / use_lock / dma_start_task /
# dma_await_task). No release was established to contain them all.
MLIR_AIE_VERSION = "commit 4fb79094fca70c8517a45aab65843d5de3a57563 (main, 2026; no release confirmed)"
# The aiecc command line as read in Xilinx/mlir-aie tools/aiecc/CommandLineOptions.h at
# 08c791150ea62803920cd79f4c0360e7512dc59a and tools/aiecc/README.md at 089e22763c79 (both 2026;
# neither is stored at MLIR_AIE_VERSION, so that the two agree is unverified).
AIECC_CLI = "tools/aiecc/CommandLineOptions.h at 08c791150ea6 (2026 C++ aiecc)"
XCLBIN = "encoder_column.xclbin"


def fail(message: str) -> None:
    print(f"build.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def require_iron() -> None:
    """mlir-aie's IRON importable, or a clear error."""
    try:
        import aie.iron  # noqa: F401
    except ImportError as error:
        fail(
            f"mlir-aie's IRON (aie.iron) is not importable ({error}); "
            f"install mlir-aie at {MLIR_AIE_VERSION}: "
            "mlir/README.md"
        )


def toolchain() -> tuple[Path, Path]:
    """(Peano install dir, mlir-aie install dir), or a clear error naming what is missing."""
    require_iron()
    mlir_aie = Path(os.environ.get("MLIR_AIE_INSTALL_DIR", ""))
    if not (mlir_aie / "include").is_dir():
        fail("MLIR_AIE_INSTALL_DIR does not point at the mlir_aie install (with include/): mlir/README.md")
    peano = Path(os.environ.get("PEANO_INSTALL_DIR", ""))
    if not (peano / "bin" / "clang++").is_file():
        fail(
            "PEANO_INSTALL_DIR does not point at an llvm-aie (Peano) install with bin/clang++: mlir/README.md"
        )
    if shutil.which("aiecc") is None:
        older = (
            " (only aiecc.py, the older Python driver with another command line)"
            if shutil.which("aiecc.py")
            else ""
        )
        fail(
            f"aiecc is not on PATH{older}: this build speaks the 2026 C++ aiecc ({AIECC_CLI}): mlir/README.md"
        )
    return peano, mlir_aie


def run(cmd: list[str], cwd: Path) -> None:
    print("+ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=cwd, check=False).returncode != 0:
        fail(f"{cmd[0]} failed")


def write_headers(out: Path, dims, tiles) -> None:
    from npustream.npu.ops.tiles import c_header
    from npustream.npu.plan import design as column_design

    (out / "npu_tiles.h").write_text(c_header(tiles))
    (out / "column_design.h").write_text(column_design.c_header(dims, tiles))


def build_kernels(out: Path, peano: Path, mlir_aie: Path) -> Path:
    flags = [
        "--target=aie2-none-unknown-elf",
        "-O2",
        "-std=c++20",
        "-DNPU_AIE=1",
        "-D__AIECC__",
        f"-I{REPO / 'kernels'}",
        f"-I{out}",
        f"-I{mlir_aie / 'include'}",
        f"-I{mlir_aie / 'aie_kernels'}",
    ]
    objects = []
    from npustream.npu.ops.kernel_costs import LINKED  # the kernels the glue calls: what a core links

    for source in [REPO / "kernels" / name for name in LINKED] + [Path(__file__).parent / "column_glue.cc"]:
        obj = out / (source.stem + ".o")
        run([str(peano / "bin" / "clang++"), *flags, "-c", str(source), "-o", str(obj)], out)
        objects.append(str(obj))
    run([str(peano / "bin" / "ld.lld"), "-r", *objects, "-o", "column_kernels.o"], out)
    return out / "column_kernels.o"


def write_modules(out: Path, plan, weights) -> list[list[str]]:
    """One MLIR module per run, resolved by IRON; returns the module names per column."""
    from mlir.encoder_column import ARGS, run_module
    from npustream.npu.plan.buffers import column_weight_names, pack_weights, plan_layouts
    from npustream.npu.plan.plans import column_runs
    from npustream.npu.program.runs import column_run

    names = []
    for column, layouts in enumerate(plan_layouts(plan)):
        blob, table = pack_weights(weights, column_weight_names(plan, column, weights))
        sizes = {role: b.nbytes // 4 for role, b in layouts.buffers.items()} | {"weights": blob.nbytes // 4}
        assert set(sizes) == set(ARGS)
        column_names = []
        for number, run in enumerate(column_runs(plan, column)):
            name = f"c{column}_r{number:03d}"
            program = column_run(plan, column, list(run), layouts, table)
            (out / f"{name}.mlir").write_text(run_module(plan, program, sizes))
            column_names.append(name)
            print(
                f"column {column} run {number}: {len(program.tasks)} DMA tasks, "
                f"{len(program.ops)} sequence ops",
                flush=True,
            )
        names.append(column_names)
    return names


def aiecc_commands(names: list[str], peano: Path) -> list[list[str]]:
    """The aiecc command of each run's module (AIECC_CLI): the first also builds the xclbin (and so
    compiles the cores); every one writes its instruction stream and its buffer addresses into
    runs/<name>/."""
    commands = []
    for name in names:
        xclbin = ["--get-xclbin", f"--xclbin-name={XCLBIN}"] if name == names[0] else []
        commands.append(
            [
                "aiecc",
                f"--peano={peano}",
                f"--output-dir=runs/{name}",
                *xclbin,
                "--get-npu-insts",
                "--npu-insts-name=insts.bin",
                "--get-input-with-addresses",
                f"{name}.mlir",
            ]
        )
    return commands


def buffer_addresses(mlir: str) -> dict[str, int]:
    """sym_name -> address of every aie.buffer in aiecc's input_with_addresses.mlir."""
    out = {}
    for line in mlir.splitlines():
        if "aie.buffer(" in line:
            name, address = re.search(r'sym_name = "([^"]+)"', line), re.search(r"address = (\d+)", line)
            if name and address:
                out[name.group(1)] = int(address.group(1))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=("pipeline", "split"), default="pipeline")
    parser.add_argument("--preset", choices=("phoenix", "hawkpoint"), default="phoenix")
    parser.add_argument("--model", default=None, help="model directory (default: the packaged Whisper base)")
    parser.add_argument("--out", default=None, help="build directory (default: where the npu engine looks)")
    parser.add_argument("--kernels-only", action="store_true")
    parser.add_argument("--mlir-only", action="store_true", help="write the MLIR without the toolchain")
    args = parser.parse_args()

    from npustream.model import store
    from npustream.npu.ops.params import preset
    from npustream.npu.ops.weights import load_npu_weights
    from npustream.npu.plan.plans import make_plan
    from npustream.npu.predict.resources import check_plan
    from npustream.npu.run.manifest import default_build_dir, write_manifest

    weights = load_npu_weights(store.resolve_model_dir(args.model))
    plan = make_plan(args.plan, weights.dims, weights.tiles, preset(args.preset))
    check_plan(plan).raise_if_violated()
    out = Path(args.out) if args.out else default_build_dir(args.plan, args.preset)
    out.mkdir(parents=True, exist_ok=True)
    write_headers(out, plan.dims, plan.tiles)
    if args.mlir_only:
        require_iron()
        write_modules(out, plan, weights)
        print(f"MLIR written to {out} (no manifest: this is not a build the npu engine loads)")
        return 0
    peano, mlir_aie = toolchain()
    build_kernels(out, peano, mlir_aie)
    if args.kernels_only:
        return 0
    names = write_modules(out, plan, weights)
    flat = [name for column_names in names for name in column_names]
    for command in aiecc_commands(flat, peano):
        run(command, out)
    first = buffer_addresses((out / "runs" / flat[0] / "input_with_addresses.mlir").read_text())
    for name in flat[1:]:
        if buffer_addresses((out / "runs" / name / "input_with_addresses.mlir").read_text()) != first:
            fail(f"run {name}'s buffers are not where {flat[0]}'s are: its instructions miss the xclbin's")
    version = subprocess.run(["aiecc", "--aie-version"], capture_output=True, text=True, check=False).stdout
    toolchain_info = {"mlir_aie": MLIR_AIE_VERSION, "aiecc": version.strip(), "peano": str(peano)}
    path = write_manifest(
        out,
        plan,
        weights,
        xclbin=f"runs/{flat[0]}/{XCLBIN}",
        insts=[[f"runs/{n}/insts.bin" for n in column_names] for column_names in names],
        toolchain=toolchain_info,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
