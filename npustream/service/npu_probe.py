"""What the NPU engine needs on this machine, checked without loading anything onto the NPU:
device node, driver, firmware, permissions, XRT and pyxrt, built NPU designs (xclbins). Each
finding says how to fix it. `blocker` is the first missing prerequisite: the reason `run` uses
the CPU instead."""

from __future__ import annotations

import grp
import importlib.util
import os
import resource
import shutil
from dataclasses import dataclass, field
from pathlib import Path

DEVICE = Path("/dev/accel/accel0")
DRIVER = "amdxdna"
FIRMWARE_DIR = Path("/lib/firmware/amdnpu")  # Phoenix firmware: amdnpu/1502_00/
XRT_ROOT = Path("/opt/xilinx/xrt")
DRIVER_FIX = (
    "a Ryzen AI NPU needs the amdxdna driver: Linux 6.14+ (6.10+ with "
    "github.com/amd/xdna-driver), then sudo modprobe amdxdna"
)
XRT_FIX = (
    "install XRT and its NPU plugin (github.com/amd/xdna-driver builds both), then "
    "source /opt/xilinx/xrt/setup.sh"
)


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # needed by the npu engine (False: informational)


@dataclass
class NpuReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocker(self) -> Finding | None:
        return next((f for f in self.findings if f.required and not f.ok), None)


def _device_findings(report: NpuReport) -> None:
    if not DEVICE.exists():
        others = (
            sorted(str(p) for p in Path("/dev/accel").glob("accel*")) if Path("/dev/accel").is_dir() else []
        )
        report.findings.append(
            Finding(
                "device",
                False,
                f"{DEVICE} missing" + (f" (found {', '.join(others)})" if others else ""),
                DRIVER_FIX,
            )
        )
        return
    st = DEVICE.stat()
    group = _group_name(st.st_gid)
    access = os.access(DEVICE, os.R_OK | os.W_OK)
    detail = f"{DEVICE} mode {st.st_mode & 0o777:o} group {group}"
    fix = ""
    if not access:
        configured = _user_in_group_database(group)
        fix = (
            "log out and in again: you were added to the group but this session predates it"
            if configured
            else f'sudo usermod -aG {group} "$USER", then log out and in'
        )
    report.findings.append(
        Finding("device access", access, detail + ("" if access else ": no read/write access"), fix)
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_in_group_database(group: str) -> bool:
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    try:
        return user in grp.getgrnam(group).gr_mem
    except KeyError:
        return False


def _driver_findings(report: NpuReport) -> None:
    loaded = Path(f"/sys/module/{DRIVER}").is_dir()  # what lsmod lists, plus built-in drivers
    bound = Path("/sys/class/accel/accel0/device/driver")
    driver = bound.resolve().name if bound.exists() else None
    detail = f"{DRIVER} loaded" if loaded else f"{DRIVER} not loaded"
    if driver:
        detail += f", accel0 bound to {driver}"
    report.findings.append(Finding("driver", loaded, detail, "" if loaded else DRIVER_FIX))
    fw = sorted(p.name for p in FIRMWARE_DIR.iterdir()) if FIRMWARE_DIR.is_dir() else []
    report.findings.append(
        Finding(
            "firmware",
            bool(fw),
            f"{FIRMWARE_DIR}: {', '.join(fw)}" if fw else f"{FIRMWARE_DIR} missing",
            "" if fw else "install a linux-firmware that has amdnpu/ (Phoenix: amdnpu/1502_00)",
            required=False,
        )
    )


def _xrt_findings(report: NpuReport) -> None:
    smi = shutil.which("xrt-smi") or (
        str(XRT_ROOT / "bin/xrt-smi") if (XRT_ROOT / "bin/xrt-smi").exists() else None
    )
    report.findings.append(
        Finding(
            "XRT",
            smi is not None,
            f"xrt-smi at {smi}" if smi else f"no XRT ({XRT_ROOT} missing)",
            "" if smi else XRT_FIX,
        )
    )
    spec = importlib.util.find_spec("pyxrt")
    if spec is not None:
        report.findings.append(Finding("pyxrt", True, f"pyxrt at {spec.origin}"))
        return
    bundled = sorted((XRT_ROOT / "python").glob("pyxrt*.so")) if XRT_ROOT.is_dir() else []
    fix = (
        f"export PYTHONPATH={XRT_ROOT / 'python'} (source /opt/xilinx/xrt/setup.sh) before starting npustream"
        if bundled
        else XRT_FIX
    )
    report.findings.append(Finding("pyxrt", False, "pyxrt not importable", fix))


def _build_findings(report: NpuReport, required: bool = True) -> None:
    """Built NPU designs where the npu engine looks for them (npustream.npu.run.manifest): each is a
    directory with manifest.json, the xclbin and the instruction streams."""
    from npustream.errors import EngineError
    from npustream.npu.run import manifest

    pattern = manifest.default_build_dir("*", "*")  # $NPUSTREAM_NPU_BUILD, or one per preset-plan
    builds, broken = [], []
    for build in sorted(pattern.parent.glob(pattern.name)):
        try:
            manifest.load_manifest(build)
        except EngineError as exc:
            broken.append(str(exc))
        else:
            builds.append(build.name)
    if builds:
        report.findings.append(
            Finding("NPU builds", True, f"{', '.join(builds)} in {pattern.parent}", required=required)
        )
    else:
        detail = broken[0] if broken else f"no built NPU design in {pattern}"
        report.findings.append(
            Finding(
                "NPU builds",
                False,
                detail,
                manifest.BUILD_HINT + "; or set NPUSTREAM_NPU_BUILD to a build directory",
                required=required,
            )
        )


def _memlock_finding(report: NpuReport) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    text = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft / 2**20:g} MiB"
    report.findings.append(
        Finding(
            "memlock",
            True,
            f"locked-memory limit {text} (NPU buffers are pinned; the system "
            "unit sets LimitMEMLOCK=infinity)",
            required=False,
        )
    )


def _iron_build_findings(report: NpuReport, required: bool) -> None:
    """The amd/IRON operator build `npustream npu build` makes (npustream.npu.iron), per plan."""
    from npustream.npu.iron import runtime, toolchain

    root = toolchain.default_root()
    built = [d.name for d in (root / "w4", root / "w2") if (d / runtime.MANIFEST).exists()]
    fix = (
        "`npustream npu build` (it checks this machine first and lists what is missing); "
        "then `npustream npu bench` measures the build against the timing model"
    )
    report.findings.append(
        Finding(
            "IRON NPU build",
            bool(built),
            f"{', '.join(built)} in {root}" if built else f"no amd/IRON operator build in {root}",
            "" if built else fix,
            required=required,
        )
    )


def probe(design: str = "iron") -> NpuReport:
    """design: the NPU engines' design the build finding is required for (iron or custom)."""
    report = NpuReport()
    _device_findings(report)
    _driver_findings(report)
    _xrt_findings(report)
    _iron_build_findings(report, required=design == "iron")
    _build_findings(report, required=design == "custom")
    _memlock_finding(report)
    return report
