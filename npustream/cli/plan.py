"""`npustream plan`: the NPU plan, its resource check and the timing model's predicted figures.

Every figure printed is PREDICTED by the timing model (npustream/npu/plan/cost.py), not measured.
"""

from __future__ import annotations

import argparse
import json
import sys

from npustream.model.dims import PUBLISHED_SHAPES

# --shape plans a published model size without its file; --model reads the dimensions from a
# model's weights instead.
SHAPES = PUBLISHED_SHAPES
LABEL = "predicted by the timing model, not measured"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="show the NPU plan, resource check and predicted timing",
        description=__doc__.splitlines()[0],
    )
    p.add_argument(
        "--plan",
        choices=("pipeline", "split"),
        default=None,
        help="plan to show (default: the scheduler's choice for --objective)",
    )
    p.add_argument("--objective", choices=("latency", "throughput"), default="latency")
    p.add_argument("--preset", choices=("phoenix", "hawkpoint"), default="phoenix")
    p.add_argument("--shape", choices=tuple(SHAPES), default="base", help="Whisper model size")
    p.add_argument("--model", default=None, help="model directory: read the dimensions from it")
    p.add_argument("--windows", type=int, default=8, help="windows in the simulated stream")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--gantt", metavar="FILE", default=None, help="write a Gantt chart (PNG)")
    p.set_defaults(handler=run)


def _dims(args: argparse.Namespace):
    from npustream.model.dims import WhisperDims

    if args.model:
        from npustream.model import ct2_reader

        return ct2_reader.load(args.model).dims
    d, h, n = SHAPES[args.shape]
    return WhisperDims(80, 1500, d, h, n, 51865, 448, d, h, n)


def _work(task) -> dict:
    share = task.share
    return {
        "op": task.op.name,
        "rows": [share.row0, share.row1],
        "heads": [share.head0, share.head1],
        "predicted_ms": round(task.cost.time_s() * 1e3, 4),
    }


def _figures(prediction) -> dict:
    """The summary figures of one prediction (every one PREDICTED)."""
    return {
        "predicted_latency_ms": round(prediction.latency_s * 1e3, 3),
        "compute_bound_ms": round(prediction.compute_bound_s * 1e3, 3),
        "predicted_throughput_windows_per_s": round(prediction.throughput_per_s, 3),
        "compute_bound_throughput_windows_per_s": round(prediction.compute_bound_throughput_per_s, 3),
        "predicted_period_ms": round(prediction.period_s * 1e3, 3),
        "hidden_transfer_share": round(prediction.hidden_transfer_share, 4),
        "predicted_transfer_ms": round(prediction.transfer_s * 1e3, 3),
        "predicted_exposed_transfer_ms": round(prediction.exposed_transfer_s * 1e3, 3),
    }


def _stock(dims, params) -> dict:
    from npustream.npu.predict.stock import stock_plans

    return {
        p.name: {
            "columns_per_context": p.columns,
            "contexts": p.contexts,
            "dispatches_per_window": p.dispatches,
            "design_switches_per_window": p.switches,
            "predicted_latency_ms": round(p.latency_s * 1e3, 3),
            "predicted_period_ms": round(p.period_s * 1e3, 3),
            "predicted_throughput_windows_per_s": round(p.throughput_per_s, 3),
            "predicted_step_and_switch_ms": round(p.fixed_s * 1e3, 3),
        }
        for p in stock_plans(dims, params)
    }


def report(
    choice, stream_windows: int, preset: str, objective: str = "latency"
) -> tuple[dict, object, object]:
    """The JSON object `plan --json` prints (also used by the benchmark). The plan is the one the
    engine builds (chosen and built with the calibrated parameters); each figure is predicted with
    them, beside the old, uncalibrated model's figure for the same plan ("uncalibrated")."""
    from npustream.npu.ops.kernel_costs import per_call_table
    from npustream.npu.ops.params import FITTED
    from npustream.npu.ops.params import preset as npu_preset
    from npustream.npu.plan.plans import recost
    from npustream.npu.predict import calibration
    from npustream.npu.predict.resources import check_plan, core_program_memory
    from npustream.npu.predict.scheduler import choose
    from npustream.npu.predict.simulate import issue_break_evens, predict
    from npustream.npu.program.runs import issue_counts

    plan = choice.plan
    calibrated = npu_preset(preset)
    uncalibrated = npu_preset(preset, calibrated=False)
    old_plan = recost(plan, uncalibrated)
    counts = issue_counts(plan)
    prediction, one, stream = predict(plan, stream_windows, counts=counts)
    old = predict(old_plan, stream_windows, counts=counts)[0]
    break_evens = issue_break_evens(plan, stream_windows)
    old_choice = choose(plan.dims, plan.tiles, uncalibrated, objective=objective)
    resources = check_plan(plan)
    columns = []
    for c, tasks in enumerate(plan.columns):
        columns.append(
            {
                "column": c,
                "utilisation": round(prediction.utilisation[c], 4),
                "compute_utilisation": round(prediction.compute_utilisation[c], 4),
                "ops": [t.op.name for t in tasks],
                "work": [_work(t) for t in tasks],
                **({"carried": list(plan.stages[c].carried)} if plan.stages else {}),
            }
        )
    obj = {
        "plan": plan.kind,
        "preset": preset,
        "note": f"all figures are {LABEL}, with the calibrated parameters (fitted to published Phoenix "
        "measurements, see calibration), which choose and build the plan; 'uncalibrated' gives the old "
        "model's figures for the same plan; "
        "the per-column task and operation counts are counted from the column programs",
        "reason": choice.reason,  # the calibrated model's choice: the plan the engine builds
        "uncalibrated_choice": old_choice.reason,
        **_figures(prediction),
        "uncalibrated": _figures(old),
        "predicted_startup_ms": round(prediction.startup_s * 1e3, 3),
        # the instruction streams per window, counted from the column programs (not predicted)
        "dma_tasks_per_column": [sum(c.pushes for c in column) for column in counts],
        "instruction_ops_per_column": [sum(c.ops for c in column) for column in counts],
        "issue_op_us": plan.params.issue_op_s * 1e6,  # assumed, unmeasured: phoenix.md has no figure
        "predicted_exposed_issue_ms": round(prediction.exposed_issue_s * 1e3, 3),
        "predicted_issue_op_break_even_us": {
            name: None if v is None else round(v * 1e6, 3) for name, v in break_evens.items()
        },
        "calibration": {
            "note": "FITTED to published Phoenix measurements of amd/IRON operators (not measured here); "
            "docs/npu-calibration.md",
            "fitted": {
                "dispatch_us": round(FITTED["dispatch_s"] * 1e6, 3),
                "design_switch_us": round(FITTED["design_switch_s"] * 1e6, 3),
                "column_ddr_gb_per_s": round(FITTED["column_ddr_bytes_per_s"] / 1e9, 3),
                "matmul_efficiency": FITTED["matmul_efficiency"],
            },
            "sources": [f"{s.repo}:{s.path}@{s.commit}" for s in calibration.sources().values()],
            "rows": [
                {
                    "source": r.source,
                    "row": r.key,
                    "published_us": r.published_us,
                    "predicted_us": round(calibration.predicted_us(r, calibrated), 1),
                    "ratio": round(calibration.ratio(r, calibrated), 3),
                    "asserted": r.asserted,
                }
                for r in calibration.load()
            ],
        },
        "stock_operators": {
            "note": f"issue 15's encoder from amd/IRON operators, {LABEL}",
            "calibrated": _stock(plan.dims, calibrated),
            "uncalibrated": _stock(plan.dims, uncalibrated),
        },
        "columns": columns,
        "resource_check": resources.as_dict(),
        # the kernels' compute and program size, counted from kernels/ (npu/ops/kernel_costs.py):
        # predictions of the code as written, not measurements
        "kernel_cycles_per_call": per_call_table(plan.tiles, plan.dims),
        "program_memory_per_core": {**core_program_memory(), "limit": plan.params.program_bytes},
    }
    return obj, one, stream


def _print_text(obj: dict, out=sys.stdout) -> None:
    from npustream.npu.predict.simulate import TARGETS

    print(
        f"NPU plan: {obj['plan']} on {obj['preset']} ({obj['reason']}; plans are chosen and built with the "
        "calibrated parameters)",
        file=out,
    )
    print(f"All figures below are {LABEL}.", file=out)
    for col in obj["columns"]:
        ops = col["ops"]
        span = f"{ops[0]} .. {ops[-1]} ({len(ops)} ops)" if ops else "idle"
        if obj["plan"] == "split":
            span = f"a share of every op ({len(ops)} ops)"
        carried = f", carries {', '.join(col['carried'])}" if col.get("carried") else ""
        print(
            f"  column {col['column']}: {span}{carried}; predicted busy {col['utilisation']:.0%}, "
            f"computing {col['compute_utilisation']:.0%}",
            file=out,
        )
    old = obj["uncalibrated"]
    print(
        f"  predicted latency per window:   {obj['predicted_latency_ms']:.1f} ms "
        f"(array compute bound {obj['compute_bound_ms']:.1f} ms; old model predicted "
        f"{old['predicted_latency_ms']:.1f} ms, bound {old['compute_bound_ms']:.1f} ms)",
        file=out,
    )
    print(
        f"  predicted throughput:           {obj['predicted_throughput_windows_per_s']:.2f} windows/s "
        f"(compute bound {obj['compute_bound_throughput_windows_per_s']:.2f}; old model predicted "
        f"{old['predicted_throughput_windows_per_s']:.2f})",
        file=out,
    )
    print(
        f"  predicted transfer hidden:      {obj['hidden_transfer_share']:.1%} of "
        f"{obj['predicted_transfer_ms']:.1f} ms (old model predicted {old['hidden_transfer_share']:.1%} of "
        f"{old['predicted_transfer_ms']:.1f} ms)",
        file=out,
    )
    fitted = obj["calibration"]["fitted"]
    print(
        f"  calibrated (FITTED to published Phoenix measurements, predicted figures): dispatch "
        f"{fitted['dispatch_us']:.0f} us, design switch {fitted['design_switch_us']:.0f} us, DDR "
        f"{fitted['column_ddr_gb_per_s']:.2f} GB/s per column, "
        f"MAC efficiency {fitted['matmul_efficiency']:.2f}",
        file=out,
    )
    print(f"  old (uncalibrated) model's choice (predicted): {obj['uncalibrated_choice']}", file=out)
    for model in ("calibrated", "uncalibrated"):
        for name, p in obj["stock_operators"][model].items():
            print(
                f"  {name} ({model}, amd/IRON operators, "
                f"{p['contexts']} x {p['columns_per_context']}-column): "
                f"predicted latency {p['predicted_latency_ms']:.1f} ms, throughput "
                f"{p['predicted_throughput_windows_per_s']:.2f} windows/s, {p['dispatches_per_window']} "
                f"dispatches, {p['design_switches_per_window']} switches",
                file=out,
            )
    print(f"  predicted start-up (once):      {obj['predicted_startup_ms']:.0f} ms", file=out)
    print(
        f"  instruction stream per window (counted): DMA tasks per column {obj['dma_tasks_per_column']}, "
        f"operations {obj['instruction_ops_per_column']}",
        file=out,
    )
    print(
        f"  command processor per operation: {obj['issue_op_us']:g} us assumed (unmeasured; phoenix.md has "
        f"no figure); predicted exposed issue {obj['predicted_exposed_issue_ms']:.1f} ms",
        file=out,
    )
    for target in TARGETS:
        us = obj["predicted_issue_op_break_even_us"][target.name]
        print(f"  {target.break_even_text(None if us is None else us * 1e-6)}", file=out)
    calls = ", ".join(f"{row} {cycles}" for row, cycles in obj["kernel_cycles_per_call"].items())
    print(f"  kernel cycles per call (counted from kernels/): {calls}", file=out)
    program = obj["program_memory_per_core"]
    print(
        f"  program memory per core (estimated from kernels/): {program['total']} of "
        f"{program['limit']} bytes",
        file=out,
    )
    check = obj["resource_check"]
    print("  resource check: " + ("ok" if check["ok"] else "FAILED"), file=out)
    for v in check["violations"]:
        print(f"    {v['message']}", file=out)


def run(args: argparse.Namespace) -> int:
    from npustream.errors import ConfigError
    from npustream.npu.ops.params import preset
    from npustream.npu.ops.tiles import DEFAULT_TILES
    from npustream.npu.predict.scheduler import choose

    if args.windows < 2:
        raise ConfigError("--windows must be at least 2 to predict a stream's throughput")
    choice = choose(_dims(args), DEFAULT_TILES, preset(args.preset), objective=args.objective, plan=args.plan)
    obj, one, stream = report(choice, args.windows, args.preset, args.objective)
    if args.gantt:
        from npustream.npu.predict.gantt import write_gantt

        obj["gantt"] = str(write_gantt(args.gantt, one, stream, args.preset))
    if args.json:
        print(json.dumps(obj, indent=1))
    else:
        _print_text(obj)
        if args.gantt:
            print(f"  Gantt chart (predicted): {obj['gantt']}")
    return 0 if obj["resource_check"]["ok"] else 1
