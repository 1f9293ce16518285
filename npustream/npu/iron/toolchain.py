"""`npustream npu build`: the pinned amd/IRON and its toolchain in a directory of their own, the
operator designs of the encoder graph compiled there, and the manifest the runtime loads.

Layout of a build root (default ~/.cache/npustream/npu-iron/<IRON commit[:12]>):
    iron/          git checkout of amd/IRON at IRON_COMMIT
    venv/          python -m venv, then pip install -r iron/requirements.txt (it pins mlir_aie and
                   llvm-aie from their GitHub release indexes and installs iron itself, -e .)
    designs/<key>/ one operator design each: the pinned operator's build directory (xclbin, insts)
    jobs.json      what compile_designs.py was asked to build; results.json what it built
    manifest.json  graph width, designs -> xclbin/kernel/insts, the IRON commit, toolchain versions

Nothing here downloads at run time of the daemon: `npu build` is the one step that uses the
network, and says so. Readiness is checked first; every missing piece is one Finding with the
command that fixes it. Compiling needs no NPU; running (`npu bench`, `--engine npu`) does.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from npustream.npu.iron import compile_designs, runtime
from npustream.npu.iron.graph import CLASSES

IRON_REPO = "https://github.com/amd/IRON.git"
# The commit of iron/applications/whisper_small (README, ENGINEERING_EXPERIENCE): the only one with
# evidence that GEMM, LayerNorm, Softmax and GELU ran on Phoenix at Whisper shapes (docs/npu-iron.md).
IRON_COMMIT = "5cd25dc8bd90835464c82bb7da098db82d565d0f"
SUPPORTED_PYTHONS = ((3, 10), (3, 12), (3, 13))  # amd/IRON README: the versions its wheels exist for
MIN_KERNEL = (6, 10)  # amdxdna out of tree (github.com/amd/xdna-driver); in tree from 6.14
NETWORK_HOSTS = ("github.com",)  # the checkout and the mlir_aie / llvm-aie wheel indexes


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    needed_for: str = "build"  # "build" (compiling) or "run" (the NPU itself)


def default_root() -> Path:
    override = os.environ.get("NPUSTREAM_NPU_IRON_ROOT")
    base = Path(override) if override else Path.home() / ".cache/npustream/npu-iron"
    return base / IRON_COMMIT[:12]


def python_version(path: str) -> tuple[int, int] | None:
    """(major, minor) of a Python interpreter that runs and has venv, else None (a pyenv shim of
    a version not selected exits non-zero)."""
    try:
        done = subprocess.run(
            [path, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = done.stdout.split()
    return (int(parts[0]), int(parts[1])) if done.returncode == 0 and len(parts) == 2 else None


def find_python(
    which: Callable[[str], str | None] = shutil.which,
    version_of: Callable[[str], tuple[int, int] | None] = python_version,
) -> str | None:
    """An interpreter amd/IRON's wheels exist for, on PATH and working (3.12 first)."""
    for major, minor in ((3, 12), (3, 13), (3, 10)):
        path = which(f"python{major}.{minor}")
        if path and version_of(path) == (major, minor):
            return path
    return None


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _reachable(host: str, port: int = 443, timeout_s: float = 3.0) -> str | None:
    """None when a TCP connection to host:port opens, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def readiness(
    run_findings: list[Finding] = (),
    *,
    which: Callable[[str], str | None] = shutil.which,
    version_of: Callable[[str], tuple[int, int] | None] = python_version,
    reachable: Callable[[str], str | None] = _reachable,
    kernel_release: str | None = None,
    root: Path | None = None,
) -> list[Finding]:
    """What `npu build` needs (git, a supported Python, the network or a finished checkout) and
    what running needs (`run_findings`: device, driver, XRT, pyxrt from the NPU probe; plus the
    kernel version), each with its fix."""
    release = kernel_release or platform.release()
    version = _kernel_version(release)
    findings = [
        Finding(
            "kernel",
            version >= MIN_KERNEL,
            f"Linux {release}",
            ""
            if version >= MIN_KERNEL
            else "Linux 6.14+ has amdxdna in tree (6.10+ with github.com/amd/xdna-driver)",
            needed_for="run",
        ),
        *run_findings,
    ]
    git = which("git")
    findings.append(
        Finding("git", git is not None, git or "git not on PATH", "" if git else "sudo apt install git")
    )
    python = find_python(which, version_of)
    wanted = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_PYTHONS)
    findings.append(
        Finding(
            "python",
            python is not None,
            f"{python} for the toolchain venv"
            if python
            else f"no working python {wanted} on PATH (this is "
            f"{sys.version_info.major}.{sys.version_info.minor}; amd/IRON's mlir_aie and llvm-aie wheels "
            "exist for those versions only)",
            "" if python else "sudo apt install python3.12 python3.12-venv (or python3.10 / 3.13)",
        )
    )
    root = root or default_root()
    if (root / "iron" / ".git").exists() and (root / "venv" / "bin" / "python").exists():
        findings.append(Finding("network", True, f"not needed: {root} has the checkout and the venv"))
        return findings
    for host in NETWORK_HOSTS:
        why = reachable(host)
        findings.append(
            Finding(
                "network",
                why is None,
                f"{host}:443 reachable" if why is None else f"{host}:443 not reachable ({why})",
                ""
                if why is None
                else f"`npu build` clones {IRON_REPO} and installs mlir_aie and llvm-aie from "
                f"their GitHub release indexes: run it once where {host} is reachable",
            )
        )
    return findings


def blockers(findings: list[Finding], needed_for: str) -> list[Finding]:
    return [f for f in findings if not f.ok and f.needed_for == needed_for]


def _run(cmd: list[str], log: Callable[[str], None], **kwargs) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kwargs)


def prepare(
    root: Path, python: str, log: Callable[[str], None], *, source: str = IRON_REPO, commit: str = IRON_COMMIT
) -> Path:
    """Checkout + venv with the toolchain the checkout's requirements.txt pins; the venv's python."""
    checkout = root / "iron"
    if not (checkout / ".git").exists():
        _run(["git", "clone", "--no-checkout", source, str(checkout)], log)
    # the pin may sit off the default branch's history: fetch it by name (GitHub serves any commit)
    _run(["git", "-C", str(checkout), "fetch", "origin", commit], log)
    _run(["git", "-C", str(checkout), "checkout", "--detach", commit], log)
    venv = root / "venv"
    vpython = venv / "bin" / "python"
    if not vpython.exists():
        _run([python, "-m", "venv", str(venv)], log)
        _run([str(vpython), "-m", "pip", "install", "-r", "requirements.txt"], log, cwd=checkout)
    return vpython


def write_jobs(root: Path, graph) -> Path:
    """The compile jobs of a graph's distinct designs, for compile_designs.py in the venv."""

    jobs = [
        {
            "key": op.key,
            "module": op.module,
            "class": op.cls,
            "kwargs": op.kwargs,
            "args": list(CLASSES[op.cls][1]),
            "build_dir": str(root / "designs" / op.key),
        }
        for op in graph.operators
    ]
    path = root / f"jobs-w{graph.width}.json"
    path.write_text(json.dumps({"iron_commit": IRON_COMMIT, "jobs": jobs}, indent=1))
    return path


def compile_graph(root: Path, vpython: Path, graph, log: Callable[[str], None]) -> Path:
    """Compile the graph's designs in the venv (compile_designs.py), chain them, write the manifest.
    Returns the build directory the runtime loads (root/w<width>)."""
    jobs = write_jobs(root, graph)
    out = root / f"w{graph.width}"
    env = {**os.environ, "PATH": f"{vpython.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    _run([str(vpython), compile_designs.__file__, str(jobs), str(out)], log, env=env)
    results = json.loads((out / "results.json").read_text())
    if results.get("error"):
        raise RuntimeError(f"compiling the operator designs failed: {results['error']}")
    designs = {key: (d["kernel"], os.path.relpath(d["insts"], out)) for key, d in results["designs"].items()}
    return runtime.write_manifest(
        out,
        iron_commit=IRON_COMMIT,
        width=graph.width,
        xclbin=os.path.relpath(results["xclbin"], out),
        designs=designs,
        toolchain=_versions(vpython),
    ).parent


def _versions(vpython: Path) -> dict[str, str]:
    """mlir_aie and llvm-aie versions installed in the venv (pip's metadata)."""
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for name in ('mlir_aie', 'llvm-aie', 'iron'):\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(vpython), "-c", code], capture_output=True, text=True)
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {}
