"""The accelerated soak: at least 60 minutes of speech through `npustream run`, as fast as the
engine keeps up (tests/tools/soak.py: the shared English clips with pauses, on stdin at
--speed times real time; the stdin reader holds the pipe when the engine falls behind, so
nothing is dropped and the run just takes longer).

Prints the daemon's resident memory (VmRSS) at start (READY), after 10 % of the audio
(warmed up), at the middle and at the end, and its peak in each quarter after 10 %: the second
half's peak against the first half's is the growth (target < 5 %; single samples swing by tens
of MiB as the allocator returns and retakes memory, a leak raises the peaks);
finals; messages the healthy subscriber missed (seq gaps, target 0); WER of the finals against
the concatenated transcripts; audio fed and wall time.

    PYTHONPATH=tests python bench/bench_soak.py [--minutes 60] [--speed 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the soak runner and WER are checking tools in tests/tools

from tools import soak  # noqa: E402
from tools.wer import wer  # noqa: E402

AUDIO = REPO.parent / "shared" / "audio"
TARGET_GROWTH = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=6.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    plan = soak.plan(AUDIO, args.minutes * 60)
    print(
        f"soak: {plan.seconds / 60:.1f} min of audio ({len(plan.names)} clips with pauses), fed at "
        f"{args.speed:g}x real time; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    run = soak.Soak(AUDIO, plan, args.speed)
    try:
        run.start()
        result = run.finish(timeout=plan.seconds * 10)
    finally:
        run.kill()
    if result.rc != 0:
        print(result.stderr, file=sys.stderr)
        return 1
    ready, start, middle, end = result.rss[0][1], result.rss_at(0.1), result.rss_at(0.5), result.rss_at(1.0)
    quarters = [result.peak_rss(a, b) for a, b in ((0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))]
    # Single samples swing by tens of MiB (the allocator returns and retakes memory as window
    # sizes change); a leak raises the peaks: the second half's peak against the first's.
    growth = max(quarters[2:]) / max(quarters[:2]) - 1
    error = wer(soak.references(soak.load_transcripts(AUDIO), plan), result.text)
    figures = {
        "audio_minutes": round(result.fed / 60, 2),
        "wall_minutes": round(result.wall / 60, 2),
        "rss_mib": {
            "ready": round(ready, 1),
            "start_10pct": round(start, 1),
            "middle": round(middle, 1),
            "end": round(end, 1),
            "peak_per_quarter_after_10pct": [round(q, 1) for q in quarters],
        },
        "peak_growth_second_half": round(growth, 4),
        "finals": len(result.finals),
        "seq_gaps": result.gaps,
        "seq_holes": result.seq_holes(),
        "wer": round(error, 4),
        "load_average_end": round(os.getloadavg()[0], 1),
    }
    print(f"audio {figures['audio_minutes']:.1f} min in {figures['wall_minutes']:.1f} min wall (measured)")
    print(
        f"resident memory MiB: ready {ready:.0f}, at 10 % {start:.0f}, middle {middle:.0f}, end {end:.0f}; "
        f"peaks per quarter after 10 %: {' / '.join(f'{q:.0f}' for q in quarters)}; second half's peak "
        f"{growth:+.1%} against the first's (target < {TARGET_GROWTH:.0%}: "
        f"{'met' if growth < TARGET_GROWTH else 'NOT met'})"
    )
    print(
        f"finals {len(result.finals)}, seq gaps {result.gaps} (holes {result.seq_holes()}), "
        f"WER {error:.1%} against the concatenated transcripts"
    )
    print(f"load average at the end {figures['load_average_end']} (other work on the machine slows the run)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if growth < TARGET_GROWTH and result.gaps == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
