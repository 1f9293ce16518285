"""Build the per-column NPU design for a plan: kernels and glue with Peano, ONE MLIR module for
the plan (encoder_column.plan_module: the column device and a named runtime sequence per XRT run
of every column), then one aiecc call for the xclbin and every sequence's instruction stream, then
manifest.json, the file the `npu` engine loads a build by, mapping each run to its stream.
README.md has the pinned toolchain and how to install it.

aiecc is the 2026 C++ driver (tools/aiecc/CommandLineOptions.h, AIECC_CLI below): outputs chosen
with --get-<name>, Peano the default compiler (no --no-xchesscc / --no-xbridge: Chess only with
--xchesscc). With --get-npu-insts and no --sequence-name it compiles every runtime sequence, one
file each named by the --npu-insts-name template, `{0}` the key `<device>_<sequence>`
(tools/aiecc/README.md@089e2276: `insts_<device>_<seq>.bin`; test/aiecc/cpp_npu_cpp_dynamic.mlir
@c53d4617 checks `insts_main_static17.bin` for sequence @static17 of device @main). The cores are
compiled once, for the xclbin, and every stream addresses the one allocation.

    python -m mlir.build [--plan pipeline|split] [--preset phoenix] [--model DIR] [--out DIR]
                         [--kernels-only] [--mlir-only]

--mlir-only writes the MLIR modules (and the generated headers) with mlir-aie's Python package
but without Peano or aiecc, for inspection; it writes no manifest, so the engine never loads it.
"""

from __future__ import annotations

import argparse
import os
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
MODULE = "encoder.mlir"  # the plan's module
OUTPUT_DIR = "aiecc"  # aiecc's --output-dir, inside the build directory
INSTS_TEMPLATE = "insts_{0}.bin"  # aiecc's default --npu-insts-name, passed explicitly


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


def plan_runs(plan, weights) -> list[list]:
    """Per column, its runs as encoder_column.NamedRun (sequence name, ColumnRun, buffer sizes)."""
    from mlir.encoder_column import ARGS, NamedRun, sequence_name
    from npustream.npu.plan.buffers import column_weight_names, pack_weights, plan_layouts
    from npustream.npu.plan.plans import column_runs
    from npustream.npu.program.runs import column_run

    columns = []
    for column, layouts in enumerate(plan_layouts(plan)):
        blob, table = pack_weights(weights, column_weight_names(plan, column, weights))
        sizes = {role: b.nbytes // 4 for role, b in layouts.buffers.items()} | {"weights": blob.nbytes // 4}
        assert set(sizes) == set(ARGS)
        columns.append(
            [
                NamedRun(
                    sequence_name(column, number), column_run(plan, column, list(run), layouts, table), sizes
                )
                for number, run in enumerate(column_runs(plan, column))
            ]
        )
    return columns


def write_module(out: Path, plan, weights) -> list[list[str]]:
    """The plan's one MLIR module (MODULE), resolved by IRON plus the named sequences; returns the
    sequence names per column."""
    from mlir.encoder_column import plan_module

    columns = plan_runs(plan, weights)
    flat = [named for runs in columns for named in runs]
    module = plan_module(plan, flat)
    (out / MODULE).write_text(str(module))
    tasks = sum(len(named.run.tasks) for named in flat)
    print(f"{MODULE}: {len(flat)} runtime sequences ({len(columns)} columns), {tasks} DMA tasks", flush=True)
    return [[named.name for named in runs] for runs in columns]


def aiecc_command(peano: Path) -> list[str]:
    """The one aiecc call (AIECC_CLI): the xclbin (compiling the cores once) and the instruction
    stream of every runtime sequence of the module, into OUTPUT_DIR."""
    return [
        "aiecc",
        f"--peano={peano}",
        f"--output-dir={OUTPUT_DIR}",
        "--get-xclbin",
        f"--xclbin-name={XCLBIN}",
        "--get-npu-insts",
        f"--npu-insts-name={INSTS_TEMPLATE}",
        MODULE,
    ]


def insts_file(sequence: str) -> str:
    """Where aiecc writes a sequence's instruction stream, relative to the build directory."""
    from mlir.encoder_column import DEVICE

    return f"{OUTPUT_DIR}/" + INSTS_TEMPLATE.format(f"{DEVICE}_{sequence}")


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
        write_module(out, plan, weights)
        print(f"MLIR written to {out} (no manifest: this is not a build the npu engine loads)")
        return 0
    peano, mlir_aie = toolchain()
    build_kernels(out, peano, mlir_aie)
    if args.kernels_only:
        return 0
    names = write_module(out, plan, weights)
    run(aiecc_command(peano), out)
    missing = [insts_file(n) for column_names in names for n in column_names]
    missing = [name for name in missing if not (out / name).is_file()]
    if missing:
        fail(
            f"aiecc wrote no {missing[0]} ({len(missing)} sequences' streams missing): this aiecc's "
            "--npu-insts-name key is not <device>_<sequence> (mlir/README.md)"
        )
    version = subprocess.run(["aiecc", "--aie-version"], capture_output=True, text=True, check=False).stdout
    toolchain_info = {"mlir_aie": MLIR_AIE_VERSION, "aiecc": version.strip(), "peano": str(peano)}
    path = write_manifest(
        out,
        plan,
        weights,
        xclbin=f"{OUTPUT_DIR}/{XCLBIN}",
        insts=[[insts_file(n) for n in column_names] for column_names in names],
        toolchain=toolchain_info,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
