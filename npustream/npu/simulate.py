"""Event simulation of a plan over one window and over a stream of windows. PREDICTED: the task
durations come from the timing model (timing.py), nothing here is measured.

pipeline: column k starts window w when (1) it has finished window w-1, (2) column k-1 has put
  window w in the buffer between them, and (3) that buffer's other slot is free, i.e. column
  k+1 has finished window w-2 (depth-2 ping-pong: at most two windows wait in a buffer).
  A column's work for a window is one XRT run: its dispatch, its carry (if any), then its tasks
  back to back.
split: all columns run op i of window w together and wait for the slowest (a barrier), then
  op i+1; window w+1 starts when window w is done (its input was staged in the other half of
  the input ping-pong buffer meanwhile, which costs the array nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.npu.plan import Plan
from npustream.npu.timing import array_compute_bound_s


@dataclass(frozen=True)
class Event:
    column: int
    window: int
    name: str  # op name, "dispatch" or "carry"
    kind: str  # op kind, "dispatch" or "carry"
    start_s: float
    end_s: float
    compute_s: float


@dataclass(frozen=True)
class Simulation:
    plan: Plan
    windows: int
    events: tuple[Event, ...]
    window_start_s: tuple[float, ...]
    window_end_s: tuple[float, ...]

    @property
    def makespan_s(self) -> float:
        return self.window_end_s[-1] - self.window_start_s[0]

    @property
    def latency_s(self) -> float:
        """The first window's time through the array (no queueing ahead of it)."""
        return self.window_end_s[0] - self.window_start_s[0]

    @property
    def period_s(self) -> float:
        """Time between successive windows leaving the array, once the stream is flowing."""
        if self.windows < 2:
            return self.latency_s
        return (self.window_end_s[-1] - self.window_end_s[0]) / (self.windows - 1)


def _pipeline(plan: Plan, windows: int, arrivals: list[float]) -> tuple[list[Event], list[float], list[float]]:
    k = len(plan.columns)
    end = [[0.0] * windows for _ in range(k)]
    events: list[Event] = []
    starts = []
    for w in range(windows):
        for col, stage in enumerate(plan.stages):
            ready = arrivals[w] if col == 0 else end[col - 1][w]
            t = max(ready, end[col][w - 1] if w else 0.0)
            if w >= 2 and col + 1 < k:
                t = max(t, end[col + 1][w - 2])  # the output buffer's slot must be free
            if col == 0:
                starts.append(t)
            if stage.dispatch_s:
                events.append(Event(col, w, "dispatch", "dispatch", t, t + stage.dispatch_s, 0.0))
                t += stage.dispatch_s
            if stage.carried:
                events.append(Event(col, w, "carry", "carry", t, t + stage.carry_s, 0.0))
                t += stage.carry_s
            for task in plan.columns[col]:
                dt = task.cost.time_s(plan.double_buffered)
                events.append(Event(col, w, task.op.name, task.op.kind, t, t + dt, task.cost.compute_s))
                t += dt
            end[col][w] = t
    return events, starts, end[-1]


def _split(plan: Plan, windows: int, arrivals: list[float]) -> tuple[list[Event], list[float], list[float]]:
    events: list[Event] = []
    starts, ends = [], []
    t = 0.0
    for w in range(windows):
        t = max(t, arrivals[w])
        starts.append(t)
        for i in range(len(plan.ops)):
            op_end = t
            for col, tasks in enumerate(plan.columns):
                task = tasks[i]
                dt = task.cost.time_s(plan.double_buffered)
                events.append(Event(col, w, task.op.name, task.op.kind, t, t + dt, task.cost.compute_s))
                op_end = max(op_end, t + dt)
            t = op_end
        ends.append(t)
    return events, starts, ends


def simulate(plan: Plan, windows: int = 1, *, interval_s: float = 0.0) -> Simulation:
    """Run `windows` windows arriving every `interval_s` seconds (0: all waiting at the start)."""
    if windows < 1:
        raise ValueError("simulate at least one window")
    arrivals = [w * interval_s for w in range(windows)]
    run = _pipeline if plan.kind == "pipeline" else _split
    events, starts, ends = run(plan, windows, arrivals)
    return Simulation(plan, windows, tuple(events), tuple(starts), tuple(ends))


@dataclass(frozen=True)
class Prediction:
    """The figures `npustream plan` and the benchmark print; all predicted by the timing model."""

    latency_s: float
    period_s: float
    compute_bound_s: float
    hidden_transfer_share: float
    transfer_s: float
    exposed_transfer_s: float
    utilisation: tuple[float, ...]  # per column: share of the period it is busy
    compute_utilisation: tuple[float, ...]  # per column: share of the period its tiles compute
    startup_s: float

    @property
    def throughput_per_s(self) -> float:
        return 1.0 / self.period_s

    @property
    def compute_bound_throughput_per_s(self) -> float:
        return 1.0 / self.compute_bound_s


def predict(plan: Plan, stream_windows: int = 8) -> tuple[Prediction, Simulation, Simulation]:
    """Simulate one window and a stream; return the figures and both simulations."""
    one = simulate(plan, 1)
    stream = simulate(plan, stream_windows)
    period = stream.period_s
    busy = [0.0] * len(plan.columns)
    computing = [0.0] * len(plan.columns)
    for event in one.events:
        busy[event.column] += event.end_s - event.start_s
        computing[event.column] += event.compute_s
    db = plan.double_buffered
    tasks = [task for column in plan.columns for task in column]
    carry = sum(stage.carry_s for stage in plan.stages if stage.carried)
    transfer = sum(task.cost.transfer_s for task in tasks) + carry
    exposed = sum(task.cost.exposed_transfer_s(db) for task in tasks) + carry
    prediction = Prediction(
        latency_s=one.latency_s,
        period_s=period,
        compute_bound_s=array_compute_bound_s(list(plan.ops), plan.params),
        hidden_transfer_share=(transfer - exposed) / transfer if transfer else 1.0,
        transfer_s=transfer,
        exposed_transfer_s=exposed,
        utilisation=tuple(b / period for b in busy),
        compute_utilisation=tuple(c / period for c in computing),
        startup_s=plan.params.startup_s,
    )
    return prediction, one, stream
