"""Where the IRON graph's steps run: plans by column width, and their predicted cost.

An IRON operator design is a partition 1, 2 or 4 columns wide; the driver places a hardware
context's partition, the caller picks only the width. So a plan is a width and a number of
streams, each stream one hardware context on the chained xclbin running whole windows:

  latency     1 stream of 4-column designs: each window as fast as the array allows
  throughput  2 streams of 2-column designs: two windows in flight on disjoint columns, so a
              stream of windows finishes sooner when one window's steps leave the array idle

Both fit Phoenix's 6 hardware contexts (1 and 2). Without a chained xclbin every design needs
its own context (17 per stream for Whisper base): more than 6, so the build must chain.

Predictions come from the calibrated timing model (npu/predict/stock.py: the step, design
switch, DDR rate and MAC efficiency fitted to AMD's published Phoenix measurements; docs/
npu-calibration.md): this module hands it the graph's steps in order, as `StockOp`s, so the
prediction costs exactly the designs the build compiles (tiles, widths, padding included).
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.iron.graph import Graph, Operator, encoder_graph
from npustream.npu.ops import params as npu_params
from npustream.npu.ops.params import NpuParams
from npustream.npu.predict import stock
from npustream.npu.predict.stock import StockOp

MAX_CONTEXTS = 6  # Phoenix (mlir-aie hostruntime; shared/phoenix.md)
STOCK_NAMES = {
    "GEMM": "gemm",
    "ElementwiseAdd": "add",
    "GELU": "gelu",
    "LayerNorm": "layer_norm",
    "Softmax": "softmax",
    "Transpose": "transpose",
}


@dataclass(frozen=True)
class Plan:
    kind: str  # "latency" | "throughput"
    width: int  # columns per design
    streams: int  # hardware contexts, each running whole windows

    @property
    def contexts(self) -> int:
        return self.streams  # one chained xclbin per stream


PLANS = {"latency": Plan("latency", 4, 1), "throughput": Plan("throughput", 2, 2)}


@dataclass(frozen=True)
class Prediction:
    """PREDICTED by the calibrated timing model, not measured."""

    plan: Plan
    steps: int  # NPU steps per window
    designs: int  # distinct operator designs (compiled once, chained into one xclbin)
    switches: int  # consecutive steps with different designs, per window
    window_s: float  # one window through one stream, steps back to back
    windows_per_s: float  # all streams busy with consecutive windows
    fixed_s: float  # of window_s: step costs and design switches
    by_class: dict[str, float]  # of window_s: seconds per operator class (switches not included)


def graph_for(dims: WhisperDims, plan: Plan) -> Graph:
    return encoder_graph(dims, plan.width)


def stock_op(step_name: str, op: Operator) -> StockOp:
    """The calibrated model's description of one step of an operator design."""
    kw = op.kwargs
    kind = STOCK_NAMES[op.cls]
    if kind == "gemm":
        return StockOp(
            step_name,
            kind,
            (kw["M"], kw["K"], kw["N"]),
            op.columns,
            (kw["tile_m"], kw["tile_k"], kw["tile_n"]),
        )
    if kind == "softmax":
        return StockOp(
            step_name, kind, (kw["rows"] * kw["cols"],), op.columns, (kw["cols"],), kw["num_channels"]
        )
    if kind == "transpose":
        return StockOp(
            step_name, kind, (kw["M"] * kw["N"],), op.columns, (kw["m"] * kw["n"],), kw["num_channels"]
        )
    return StockOp(step_name, kind, (kw["size"],), op.columns, (kw["tile_size"],), kw.get("num_channels", 1))


def predict(dims: WhisperDims, plan: Plan, params: NpuParams | None = None) -> Prediction:
    """The plan's window through the calibrated model. Streams are assumed to overlap whole
    windows on disjoint columns: IRON never runs two contexts at once, so `npu bench` must say."""
    if plan.contexts > MAX_CONTEXTS:
        raise ValueError(
            f"plan {plan.kind} needs {plan.contexts} hardware contexts; Phoenix has {MAX_CONTEXTS}"
        )
    params = params or npu_params.preset("phoenix", calibrated=True)
    graph = graph_for(dims, plan)
    ops = [stock_op(step.name, step.op) for step in graph.npu_steps]
    run = stock.run_cost(ops, params)
    by_class: dict[str, float] = {}
    for step, cost in zip(graph.npu_steps, run.steps, strict=True):
        by_class[step.op.cls] = by_class.get(step.op.cls, 0.0) + cost.time_s
    return Prediction(
        plan,
        run.dispatches,
        len(graph.operators),
        run.switches,
        run.time_s,
        plan.streams / run.time_s,
        run.fixed_s,
        by_class,
    )


def step_prediction_s(op: Operator, params: NpuParams | None = None) -> float:
    """One step of a design alone (no design switch): what `npu bench` measures per design."""
    params = params or npu_params.preset("phoenix", calibrated=True)
    return stock.step_cost(stock_op(op.key, op), params).time_s


def choose(predictions: list[Prediction], objective: str) -> Prediction:
    if objective == "latency":
        return min(predictions, key=lambda p: p.window_s)
    return max(predictions, key=lambda p: p.windows_per_s)
