"""Event simulation of a plan over one window and over a stream of windows. PREDICTED: the task
durations come from the timing model (npu/plan/cost.py), nothing here is measured.

pipeline: column k starts window w when (1) it has finished window w-1, (2) column k-1 has put
  window w in the buffer between them, and (3) that buffer's other slot is free, i.e. column
  k+1 has finished window w-2 (depth-2 ping-pong: at most two windows wait in a buffer).
  A column's work for a window is one XRT run: its dispatch, its carry (if any), then its tasks
  back to back.
split: all columns run op i of window w together and wait for the slowest (a barrier), then
  op i+1; window w+1 starts when window w is done (its input was staged in the other half of
  the input ping-pong buffer meanwhile, which costs the array nothing).

Issue. A column's command processor executes its run's instruction stream (npu/program/column.py) in
order, taking params.issue_op_s per operation (0 by default: phoenix.md has no figure). A DMA
task cannot start before its push, and a push waits behind an await while its channel already
holds 4 tasks, so issue overlaps the data movement only a few tasks ahead. The timing model has
no duration per DMA task, only per op share, so the bound is per plan task (an op share, whose
phases each drain before the next: the issue of one share cannot run ahead into the next). With
c = issue_op_s and, for the task, W its work (busy_s), N its operations, P its pushes and H the
operations up to its first push (lock resets, core descriptors and releases, the push; of a
share with several phases, the first one's):

    task time = dispatch + max(W + H c,  N c + W / P)

Nothing moves before those H operations, and the stream cannot end before all N are executed,
after which at least the last pushed task's share of the work remains (W / P: the work spread
evenly over the tasks). Each term is the time in its own regime (work-bound: the queues stay
full and issue hides behind the DMAs; issue-bound: the queues run dry), as far as the work is
even over the tasks; near the crossover the true time is somewhat longer (the max bounds it
from below). With c = 0 the max is W: the published figures are unchanged.
Not counted: the pipeline's carry runs (a few operations each). The pipeline's cut is chosen on
the work alone (npu/plan/plans.py), so a break-even is for the published cut.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from npustream.npu.plan.cost import array_compute_bound_s
from npustream.npu.plan.plans import Plan, Task, make_plan
from npustream.npu.program.runs import IssueCount, issue_counts


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


def task_time_s(
    task: Task, count: IssueCount | None, issue_op_s: float, double_buffered: bool = True
) -> float:
    """A task's predicted time with its instruction stream's issue (module docstring); without
    a count, its work and dispatch alone."""
    if count is None:
        return task.cost.time_s(double_buffered)
    work = task.cost.busy_s(double_buffered)
    c = issue_op_s
    return task.cost.dispatch_s + max(work + count.head * c, count.ops * c + work / max(count.pushes, 1))


Durations = list[list[float]]  # per column, per task: predicted seconds
Counts = tuple[tuple[IssueCount, ...], ...]  # per column, per task (plan.issue_counts)


def _pipeline(
    plan: Plan, times: Durations, windows: int, arrivals: list[float]
) -> tuple[list[Event], list[float], list[float]]:
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
            for task, dt in zip(plan.columns[col], times[col]):
                events.append(Event(col, w, task.op.name, task.op.kind, t, t + dt, task.cost.compute_s))
                t += dt
            end[col][w] = t
    return events, starts, end[-1]


def _split(
    plan: Plan, times: Durations, windows: int, arrivals: list[float]
) -> tuple[list[Event], list[float], list[float]]:
    events: list[Event] = []
    starts, ends = [], []
    t = 0.0
    for w in range(windows):
        t = max(t, arrivals[w])
        starts.append(t)
        for i in range(len(plan.ops)):
            op_end = t
            for col, tasks in enumerate(plan.columns):
                task, dt = tasks[i], times[col][i]
                events.append(Event(col, w, task.op.name, task.op.kind, t, t + dt, task.cost.compute_s))
                op_end = max(op_end, t + dt)
            t = op_end
        ends.append(t)
    return events, starts, ends


def task_times(plan: Plan, counts: Counts | None = None) -> Durations:
    """Every task's predicted time. `counts` are counted (plan.issue_counts) when not given and
    the plan's params give issue a cost; with none, issue is free."""
    c = plan.params.issue_op_s
    if counts is None and c:
        counts = issue_counts(plan)
    return [
        [
            task_time_s(task, counts[col][i] if counts else None, c, plan.double_buffered)
            for i, task in enumerate(tasks)
        ]
        for col, tasks in enumerate(plan.columns)
    ]


def simulate(
    plan: Plan, windows: int = 1, *, interval_s: float = 0.0, counts: Counts | None = None
) -> Simulation:
    """Run `windows` windows arriving every `interval_s` seconds (0: all waiting at the start);
    `counts` as for task_times."""
    if windows < 1:
        raise ValueError("simulate at least one window")
    arrivals = [w * interval_s for w in range(windows)]
    run = _pipeline if plan.kind.staged else _split
    events, starts, ends = run(plan, task_times(plan, counts), windows, arrivals)
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
    exposed_issue_s: float  # one window: what issue adds to the tasks' times, summed over tasks
    utilisation: tuple[float, ...]  # per column: share of the period it is busy
    compute_utilisation: tuple[float, ...]  # per column: share of the period its tiles compute
    startup_s: float

    @property
    def throughput_per_s(self) -> float:
        return 1.0 / self.period_s

    @property
    def compute_bound_throughput_per_s(self) -> float:
        return 1.0 / self.compute_bound_s


def predict(
    plan: Plan, stream_windows: int = 8, *, counts: Counts | None = None
) -> tuple[Prediction, Simulation, Simulation]:
    """Simulate one window and a stream; return the figures and both simulations. `counts` as
    for task_times."""
    if counts is None and plan.params.issue_op_s:
        counts = issue_counts(plan)
    one = simulate(plan, 1, counts=counts)
    stream = simulate(plan, stream_windows, counts=counts)
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
        compute_bound_s=array_compute_bound_s(list(plan.ops), plan.params, plan.dims, plan.tiles),
        hidden_transfer_share=(transfer - exposed) / transfer if transfer else 1.0,
        transfer_s=transfer,
        exposed_transfer_s=exposed,
        exposed_issue_s=sum(
            dt - task.cost.time_s(db)
            for column, times in zip(plan.columns, task_times(plan, counts))
            for task, dt in zip(column, times)
        ),
        utilisation=tuple(b / period for b in busy),
        compute_utilisation=tuple(c / period for c in computing),
        startup_s=plan.params.startup_s,
    )
    return prediction, one, stream


# --- issue targets and break-even ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: a plan's predicted figure as a ratio to the compute bound."""

    name: str
    plan: str  # the plan kind it is about
    what: str
    at_most: bool  # the ratio must stay <= limit (else >= limit)
    limit: float

    def ratio(self, p: Prediction) -> float:
        if self.at_most:  # latency
            return p.latency_s / p.compute_bound_s
        return p.throughput_per_s / p.compute_bound_throughput_per_s

    def holds(self, p: Prediction) -> bool:
        r = self.ratio(p)
        return r <= self.limit if self.at_most else r >= self.limit

    def break_even_text(self, break_even_s: float | None) -> str:
        held = (
            "missed even with free issue"
            if break_even_s is None
            else f"holds up to {break_even_s * 1e6:.2f} us per operation"
        )
        return f"predicted break-even, {self.what} {'<=' if self.at_most else '>='} {self.limit}: {held}"


TARGETS = (
    Target("split_latency", "split", "split latency / compute bound", True, 1.15),
    Target("pipeline_throughput", "pipeline", "pipeline throughput / compute-bound throughput", False, 0.85),
)


def with_issue(plan: Plan, issue_op_s: float) -> Plan:
    """The plan with another issue time: its tasks and cut do not depend on it (npu/plan/plans.py)."""
    return dataclasses.replace(plan, params=plan.params.replace(issue_op_s=issue_op_s))


def issue_break_even_s(
    plan: Plan, target: Target, *, stream_windows: int = 8, resolution_s: float = 1e-10
) -> float | None:
    """PREDICTED: the largest issue_op_s at which `target` still holds for `plan`, by bisection
    (the task times only grow with it); None when the target fails even with free issue."""
    counts = issue_counts(plan)

    def holds(c: float) -> bool:
        return target.holds(predict(with_issue(plan, c), stream_windows, counts=counts)[0])

    if not holds(0.0):
        return None
    lo, hi = 0.0, 1e-7
    while holds(hi):
        lo, hi = hi, 2 * hi
        if hi > 1.0:
            raise ValueError(
                f"{target.name} holds with a second per operation: the issue bound is not applied"
            )
    while hi - lo > resolution_s:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return lo


def issue_break_evens(plan: Plan, stream_windows: int = 8) -> dict[str, float | None]:
    """PREDICTED break-even issue_op_s per target, each on its plan kind made with `plan`'s
    dims, tiles and params."""
    plans = {plan.kind: plan}
    out = {}
    for target in TARGETS:
        if target.plan not in plans:
            plans[target.plan] = make_plan(
                target.plan, plan.dims, plan.tiles, plan.params, double_buffered=plan.double_buffered
            )
        out[target.name] = issue_break_even_s(plans[target.plan], target, stream_windows=stream_windows)
    return out
