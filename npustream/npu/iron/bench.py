"""`npustream npu bench`: each operator design and whole windows on the NPU, measured against the
calibrated timing model's prediction, as one JSON report.

Per design: its first step in the graph, started and waited for alone `repeats` times (min and
median wall time, host included: what a runlist step costs plus one dispatch). Whole windows:
`Stream.encode` on the shared JFK clip's first window, `windows` times. Each measured figure sits
next to the model's prediction for the same design (or null without a calibrated model), so the
report says where the model is wrong. On a machine that cannot run it the report says why.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time

import numpy as np

from npustream import __version__
from npustream.errors import EngineError
from npustream.npu.iron import plans, runtime, toolchain
from npustream.npu.run.xrt import import_pyxrt

FORMAT = "npustream-npu-bench-1"


def _header() -> dict:
    return {
        "format": FORMAT,
        "npustream": __version__,
        "iron_commit": toolchain.IRON_COMMIT,
        "host": platform.node(),
        "kernel": platform.release(),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def not_ready_report(findings, reason: str | None = None) -> dict:
    missing = [f for f in findings if not f.ok and f.needed_for == "run"]
    return {
        **_header(),
        "ran": False,
        "reason": reason or "; ".join(f"{f.name}: {f.detail}" for f in missing),
        "missing": [{"name": f.name, "detail": f.detail, "fix": f.fix} for f in missing],
    }


def _time(fn, repeats: int) -> dict:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return {
        "runs": repeats,
        "min_ms": round(min(seconds) * 1e3, 3),
        "median_ms": round(statistics.median(seconds) * 1e3, 3),
    }


def measure(stream: runtime.Stream, mel: np.ndarray, plan: plans.Plan, *, repeats: int, windows: int) -> dict:
    """Time each design (its first step, alone) and whole windows on an open stream, next to the
    calibrated model's prediction for the same design and window."""
    pyxrt = stream.pyxrt
    first_run: dict[str, tuple] = {}
    counts: dict[str, int] = {}
    for pairs, _ in stream.segments:
        for step, run in pairs:
            first_run.setdefault(step.op.key, (step, run))
            counts[step.op.key] = counts.get(step.op.key, 0) + 1
    designs = []
    for op in stream.graph.operators:
        _, run = first_run[op.key]

        def once(run=run, key=op.key) -> None:
            run.start()
            state = run.wait(stream.timeout_ms)
            if state != pyxrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
                raise EngineError(f"{key}: run ended {state}")

        designs.append(
            {
                "design": op.key,
                "class": op.cls,
                "params": op.kwargs,
                "steps_per_window": counts[op.key],
                "measured": _time(once, repeats),
                "predicted_ms": round(plans.step_prediction_s(op) * 1e3, 3),
            }
        )
    predicted = plans.predict(stream.graph.dims, plan)
    return {
        "designs": designs,
        "window": {
            "measured": _time(lambda: stream.encode(mel), windows),
            "npu_steps": predicted.steps,
            "predicted_ms": round(predicted.window_s * 1e3, 3),
            "predicted_design_switches": predicted.switches,
        },
    }


def run(
    dims,
    constants: dict[str, np.ndarray],
    plan_kind: str,
    mel: np.ndarray,
    *,
    repeats: int,
    windows: int,
    pyxrt=None,
    build_dir=None,
) -> dict:
    """Open one stream of the plan's build and measure it (EngineError when it cannot)."""
    plan = plans.PLANS[plan_kind]
    graph = plans.graph_for(dims, plan)
    manifest = runtime.load_manifest(build_dir or toolchain.default_root() / f"w{plan.width}", graph)
    pyxrt = pyxrt or import_pyxrt()
    (stream,) = runtime.open_streams(pyxrt, graph, manifest, constants, 1)
    return {
        **_header(),
        "ran": True,
        "plan": plan_kind,
        "width": plan.width,
        "toolchain": manifest.toolchain,
        "prediction_model": "calibrated (npu/predict/stock.py, docs/npu-calibration.md)",
        **measure(stream, mel, plan, repeats=repeats, windows=windows),
    }
