"""Choose a plan: by configuration, or by objective (latency of one window, or throughput of a
stream) from the timing model's predictions, and say why.

Live captioning re-encodes one rolling window at a time as audio arrives, so the default
objective is latency: a caption appears as soon as its window is encoded. Throughput matters
when windows queue up (several streams, or catching up after a stall).

The engine, the build and `npustream plan` pass the calibrated parameters (params.preset): the
plan chosen and built is the one the model fitted to published Phoenix measurements predicts best.
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.errors import ConfigError
from npustream.model.dims import WhisperDims
from npustream.npu.ops.params import NpuParams
from npustream.npu.ops.tiles import Tiles
from npustream.npu.plan.plans import PLAN_KINDS, Plan, make_plan
from npustream.npu.predict.simulate import Prediction, predict

OBJECTIVES = ("latency", "throughput")


@dataclass(frozen=True)
class Choice:
    plan: Plan
    prediction: Prediction
    reason: str


def _score(prediction: Prediction, objective: str) -> float:
    return prediction.latency_s if objective == "latency" else prediction.period_s


def choose(
    dims: WhisperDims,
    tiles: Tiles,
    params: NpuParams,
    *,
    objective: str = "latency",
    plan: str | None = None,
) -> Choice:
    """The configured plan, or the plan the timing model predicts best for `objective`."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown plan objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if plan is not None:
        if plan not in PLAN_KINDS:
            raise ConfigError(f"unknown NPU plan {plan!r}; choose one of {', '.join(PLAN_KINDS)}")
        chosen = make_plan(plan, dims, tiles, params)
        return Choice(chosen, predict(chosen)[0], f"{plan}: set by configuration")
    candidates = {kind: make_plan(kind, dims, tiles, params) for kind in PLAN_KINDS}
    predictions = {kind: predict(p)[0] for kind, p in candidates.items()}
    best = min(PLAN_KINDS, key=lambda kind: _score(predictions[kind], objective))
    figures = ", ".join(f"{kind} {_score(predictions[kind], objective) * 1e3:.1f} ms" for kind in PLAN_KINDS)
    what = "latency per window" if objective == "latency" else "period per window in a stream"
    reason = f"{best}: lowest predicted {what} ({figures}; predicted by the timing model, not measured)"
    return Choice(candidates[best], predictions[best], reason)
