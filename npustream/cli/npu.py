"""`npustream npu build|bench|plan`: the NPU encoder from amd/IRON's operators (docs/npu-iron.md).

build   check this machine, then check out the pinned amd/IRON with the mlir-aie / Peano it
        requires into a directory of its own, compile the encoder's operator designs and write
        the manifest `--engine npu` loads. Without what it needs it names each missing piece.
bench   every operator design and whole windows on the NPU: measured against the calibrated
        model's prediction, one JSON report to attach to an issue.
plan    the plans by column width, their steps, designs, hardware contexts, and predictions.
"""

from __future__ import annotations

import argparse
import json
import sys

from npustream.errors import NpustreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "npu",
        help="build, benchmark and plan the NPU encoder (amd/IRON operators)",
        description=__doc__.splitlines()[0],
    )
    sub = p.add_subparsers(dest="npu_command", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="check out amd/IRON + toolchain, compile the operator designs")
    b.add_argument("--plan", choices=("latency", "throughput", "both"), default="both")
    b.add_argument("--root", default=None, help="build root (default ~/.cache/npustream/npu-iron/<commit>)")
    b.add_argument("--check", action="store_true", help="only check whether this machine can build and run")
    b.add_argument("--model", default=None, help="model directory (default: the packaged Whisper base)")
    b.add_argument("--json", action="store_true", help="print the readiness report as JSON")
    b.set_defaults(handler=build)
    r = sub.add_parser("bench", help="time each operator and whole windows on the NPU (JSON report)")
    r.add_argument("--plan", choices=("latency", "throughput"), default="latency")
    r.add_argument("--model", default=None, help="model directory (default: the packaged Whisper base)")
    r.add_argument("--repeats", type=int, default=20, help="timed runs per operator design")
    r.add_argument("--windows", type=int, default=5, help="timed whole windows")
    r.add_argument("--output", default=None, help="write the JSON report here as well")
    r.set_defaults(handler=bench)
    q = sub.add_parser("plan", help="plans by column width and their predicted cost")
    q.add_argument("--model", default=None, help="model directory (default: the packaged Whisper base)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=plan)


def _readiness():
    from npustream.npu.iron import toolchain
    from npustream.service import npu_probe

    run = [
        toolchain.Finding(f.name, f.ok, f.detail, f.fix, needed_for="run")
        for f in npu_probe.probe().findings
        if f.required and f.name not in ("NPU builds", "IRON NPU build")
    ]
    return toolchain.readiness(run_findings=run)


def _print_findings(findings, out=sys.stdout) -> None:
    for f in findings:
        mark = "ok " if f.ok else "MISSING"
        print(f"  [{mark}] {f.needed_for:5s} {f.name}: {f.detail}", file=out)
        if not f.ok and f.fix:
            print(f"            fix: {f.fix}", file=out)


def build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from npustream.npu.iron import plans, toolchain

    findings = _readiness()
    root = Path(args.root) if args.root else toolchain.default_root()
    if args.json:
        print(
            json.dumps(
                {
                    "iron_commit": toolchain.IRON_COMMIT,
                    "root": str(root),
                    "findings": [f.__dict__ for f in findings],
                },
                indent=1,
            )
        )
    else:
        print(f"amd/IRON {toolchain.IRON_COMMIT} -> {root}")
        _print_findings(findings)
    build_missing = toolchain.blockers(findings, "build")
    run_missing = toolchain.blockers(findings, "run")
    if build_missing:
        print(
            f"npustream: cannot build here: {', '.join(f.name for f in build_missing)} missing (fixes above)",
            file=sys.stderr,
        )
        return 1
    if run_missing and not args.json:
        print(
            f"note: the build can be made here, but the NPU cannot run it: "
            f"{', '.join(f.name for f in run_missing)} missing",
            file=sys.stderr,
        )
    if args.check:
        return 0 if not run_missing else 1
    from npustream.model import ct2_reader, store

    dims = ct2_reader.whisper_dims(ct2_reader.load(store.resolve_model_dir(args.model)))
    python = toolchain.find_python()
    root.mkdir(parents=True, exist_ok=True)
    vpython = toolchain.prepare(root, python, print)
    kinds = ("latency", "throughput") if args.plan == "both" else (args.plan,)
    for kind in kinds:
        out = toolchain.compile_graph(root, vpython, plans.graph_for(dims, plans.PLANS[kind]), print)
        print(f"{kind} plan: built {out}")
    return 0


def plan(args: argparse.Namespace) -> int:
    from npustream.model import ct2_reader, store
    from npustream.npu.iron import plans

    dims = ct2_reader.whisper_dims(ct2_reader.load(store.resolve_model_dir(args.model)))
    rows = []
    for p in plans.PLANS.values():
        pred = plans.predict(dims, p)
        rows.append(
            {
                "plan": p.kind,
                "width": p.width,
                "streams": p.streams,
                "hardware_contexts": p.contexts,
                "npu_steps_per_window": pred.steps,
                "designs": pred.designs,
                "design_switches": pred.switches,
                "predicted": {
                    "window_ms": round(pred.window_s * 1e3, 1),
                    "windows_per_s": round(pred.windows_per_s, 2),
                    "fixed_ms": round(pred.fixed_s * 1e3, 1),
                    "by_operator_ms": {k: round(v * 1e3, 1) for k, v in pred.by_class.items()},
                    "label": "PREDICTED by the calibrated timing model, not measured",
                },
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        pr = row["predicted"]
        print(
            f"{row['plan']:10s} {row['width']}-column designs x {row['streams']} stream(s), "
            f"{row['hardware_contexts']} hardware context(s): {row['npu_steps_per_window']} steps per window "
            f"over {row['designs']} designs, {row['design_switches']} design switches"
        )
        print(
            f"           PREDICTED (calibrated model, not measured): {pr['window_ms']} ms per window "
            f"({pr['fixed_ms']} ms of it step and switch costs), {pr['windows_per_s']} windows/s"
        )
        print("           " + ", ".join(f"{k} {v} ms" for k, v in pr["by_operator_ms"].items()))
    return 0


def bench(args: argparse.Namespace) -> int:
    from npustream.npu.iron import bench as npu_bench

    findings = _readiness()
    missing = [f for f in findings if not f.ok and f.needed_for == "run"]
    if missing:
        report = npu_bench.not_ready_report(findings)
    else:
        from npustream.asr.audio import N_SAMPLES, load_audio
        from npustream.asr.features import window_features
        from npustream.model import store
        from npustream.npu.iron import folds
        from npustream.stream.capture.sources import SAMPLE_PATH

        dims, constants = folds.load(store.resolve_model_dir(args.model))
        mel = window_features(load_audio(SAMPLE_PATH)[:N_SAMPLES])
        try:
            report = npu_bench.run(
                dims, constants, args.plan, mel, repeats=args.repeats, windows=args.windows
            )
        except NpustreamError as exc:
            report = npu_bench.not_ready_report(findings, str(exc))
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    if not report["ran"]:
        print(f"npustream: the NPU benchmark cannot run here: {report['reason']}", file=sys.stderr)
        return 1
    return 0
