"""Where the IRON graph's steps run: plans by column width, and their predicted cost.

An IRON operator design is a partition 1, 2 or 4 columns wide; the driver places a hardware
context's partition, the caller picks only the width. So a plan is a width and a number of
streams, each stream one hardware context on the chained xclbin running whole windows:

  latency     1 stream of 4-column designs: each window as fast as the array allows
  throughput  2 streams of 2-column designs: two windows in flight on disjoint columns, so a
              stream of windows finishes sooner when one window's steps leave the array idle

Both fit Phoenix's 6 hardware contexts (1 and 2). Without a chained xclbin every design needs
its own context (17 per stream for Whisper base): more than 6, so the build must chain.

Predictions come from the calibrated timing model's per-step function (`StepPredictor`: seconds
one dispatched step of a design takes in a stream); this module only adds the steps up. When no
calibrated model is available the plan says so instead of printing a number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.iron.graph import Graph, Operator, encoder_graph

MAX_CONTEXTS = 6  # Phoenix (mlir-aie hostruntime; shared/phoenix.md)
StepPredictor = Callable[[Operator], float]


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
    plan: Plan
    steps: int
    designs: int
    window_s: float  # one window, dispatch to result, alone on its stream
    windows_per_s: float  # a continuous stream of windows over all streams
    by_class: dict[str, float]  # seconds per window per operator class


def graph_for(dims: WhisperDims, plan: Plan) -> Graph:
    return encoder_graph(dims, plan.width)


def predict(dims: WhisperDims, plan: Plan, step_s: StepPredictor) -> Prediction:
    """Sum the predicted steps of one window; streams overlap whole windows (an assumption the
    published IRON data cannot confirm: IRON never runs two contexts at once)."""
    if plan.contexts > MAX_CONTEXTS:
        raise ValueError(
            f"plan {plan.kind} needs {plan.contexts} hardware contexts; Phoenix has {MAX_CONTEXTS}"
        )
    graph = graph_for(dims, plan)
    by_class: dict[str, float] = {}
    for step in graph.npu_steps:
        by_class[step.op.cls] = by_class.get(step.op.cls, 0.0) + step_s(step.op)
    window = sum(by_class.values())
    return Prediction(
        plan,
        len(graph.npu_steps),
        len(graph.operators),
        window,
        plan.streams / window if window > 0 else 0.0,
        by_class,
    )


def choose(predictions: list[Prediction], objective: str) -> Prediction:
    if objective == "latency":
        return min(predictions, key=lambda p: p.window_s)
    return max(predictions, key=lambda p: p.windows_per_s)


def calibrated_predictor() -> StepPredictor | None:
    """The calibrated timing model's per-step function, when this checkout has one.

    Looked up by name so this module does not depend on whether the calibration has been merged:
    npustream.npu.predict.iron_steps.predict_step(cls, params) -> seconds."""
    try:
        from npustream.npu.predict import iron_steps  # type: ignore[attr-defined]
    except ImportError:
        return None
    return lambda op: float(iron_steps.predict_step(op.cls, op.kwargs))
