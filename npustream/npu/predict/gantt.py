"""Gantt chart (PNG) of a plan's predicted schedule: one window above, a stream below.

Bars are the timing model's predicted task times per column, coloured by op kind; the hatched
share of a bar is its transfer time not hidden behind compute. Titles say "predicted".
"""

from __future__ import annotations

from pathlib import Path

from npustream.npu.predict.simulate import Simulation

KIND_COLOURS = {
    "conv": "#8c564b",
    "matmul": "#1f77b4",
    "attention": "#d62728",
    "layernorm": "#2ca02c",
    "carry": "#7f7f7f",
    "dispatch": "#bcbd22",
}


def _draw(ax, sim: Simulation, title: str) -> None:
    columns = len(sim.plan.columns)
    for event in sim.events:
        start_ms, width_ms = event.start_s * 1e3, (event.end_s - event.start_s) * 1e3
        y = columns - 1 - event.column
        shade = 0.55 + 0.45 * ((event.window + 1) % 2)  # alternate windows light/dark
        ax.barh(
            y,
            width_ms,
            left=start_ms,
            height=0.8,
            color=KIND_COLOURS.get(event.kind, "#bcbd22"),
            alpha=shade,
            edgecolor="white",
            linewidth=0.3,
        )
        stall_ms = max(0.0, width_ms - event.compute_s * 1e3)
        if stall_ms > 0.02 * width_ms:  # DMA and dispatch time the cores do not compute
            ax.barh(
                y,
                stall_ms,
                left=start_ms + width_ms - stall_ms,
                height=0.8,
                fill=False,
                hatch="///",
                edgecolor="black",
                linewidth=0,
            )
    ax.set_yticks(range(columns), [f"column {columns - 1 - c}" for c in range(columns)])
    ax.set_xlabel("time (ms, predicted)")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, sim.window_end_s[-1] * 1e3 * 1.01)


def write_gantt(path: str | Path, one: Simulation, stream: Simulation, preset: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    plan = one.plan
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), constrained_layout=True)
    _draw(top, one, f"{plan.kind} plan, one window: latency {one.latency_s * 1e3:.1f} ms (predicted)")
    _draw(
        bottom,
        stream,
        f"{plan.kind} plan, stream of {stream.windows} windows: one every "
        f"{stream.period_s * 1e3:.1f} ms (predicted)",
    )
    handles = [Patch(color=c, label=k) for k, c in KIND_COLOURS.items()]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="not computing"))
    top.legend(handles=handles, loc="upper right", fontsize=8, ncols=3)
    fig.suptitle(
        f"npustream NPU schedule on {preset}: PREDICTED by the timing model, not measured", fontsize=11
    )
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
