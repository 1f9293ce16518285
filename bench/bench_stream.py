"""The streaming daemon in real time on the shared audio, against offline transcription of
the same files with the same model measured in the same run.

Each file is fed to `npustream run --source file:PATH` at real-time pace (or --speed N); a
subscriber records every caption. Per file and overall it prints:
  final latency   publication time of a final word minus the time its audio ended
                  (stream_start + word end / speed): median, p90, max
  partial every   median interval between partial captions
  WER             of the concatenated finals, and of offline `transcribe_file` (the peer)
  decode          mean seconds per decoded window (the engine's share of the latency)
  RTF             engine seconds per audio second (from the daemon's status)
  CPU             daemon CPU seconds per wall second while streaming (1.0 = one core)
  peak RSS        the daemon's high-water resident memory (VmHWM)
Targets on a 2-core machine, base model, cpu engine: median final latency <= 1.5 s,
p90 <= 2.5 s, WER within 2 points of offline.

    PYTHONPATH=tests python bench/bench_stream.py [--beam-size 5] [--hop 1.0 0.5] [--context fit|full]
                                                  [--speed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO.parent / "shared" / "audio"
FILES = ("jfk.flac", "libri_1.flac", "osr_0034_8k.wav")
TARGET_MEDIAN, TARGET_P90, TARGET_WER_POINTS = 1.5, 2.5, 2.0


def proc_sample(pid: int) -> tuple[float, float] | None:
    """(CPU seconds so far, peak RSS MiB) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm = next(
            line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM")
        )
        return cpu, int(hwm.split()[1]) / 1024
    except (OSError, StopIteration, IndexError):
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def stream_file(path: Path, args, hop: float) -> dict:
    from npustream.client import Caption, Subscriber
    from npustream.protocol import control

    runtime = Path(tempfile.mkdtemp(prefix="npustream-bench-"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "NPUSTREAM_LOG": "warning"}
    cmd = [
        sys.executable,
        "-m",
        "npustream",
        "run",
        "--source",
        f"file:{path}",
        "--speed",
        str(args.speed),
        "--language",
        "en",
        "--beam-size",
        str(args.beam_size),
        "--hop",
        str(hop),
        "--context",
        args.context,
        "--threads",
        str(args.threads),
    ]
    daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctl, pub = f"ipc://{runtime}/npustream/control.sock", f"ipc://{runtime}/npustream/captions.sock"
    while True:
        if daemon.poll() is not None:
            raise SystemExit(f"daemon failed: {daemon.stderr.read().decode()}")
        try:
            control.request(ctl, "status", timeout=0.5)
            break
        except control.DaemonUnreachable:
            time.sleep(0.1)
    start_cpu = proc_sample(daemon.pid)
    started = time.monotonic()
    samples, last_status = [start_cpu], {}

    def watch() -> None:
        while daemon.poll() is None:
            sample = proc_sample(daemon.pid)
            if sample:
                samples.append(sample)
            try:
                last_status.update(control.request(ctl, "status", timeout=0.5))
            except Exception:  # noqa: BLE001 - the daemon is on its way out
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    captions = [e for e in Subscriber(pub, ctl, connect_timeout=30) if isinstance(e, Caption)]
    wall = time.monotonic() - started
    daemon.wait(60)
    watcher.join(5)
    finals = [c for c in captions if c.final]
    latencies = [
        c.time - (c.stream_start + w.end / args.speed) for c in finals if not c.from_snapshot for w in c.words
    ]
    partial_times = [c.time for c in captions if not c.final and not c.from_snapshot]
    return {
        "text": " ".join(c.text for c in finals if c.text),
        "latencies": latencies,
        "partial_intervals": [b - a for a, b in zip(partial_times, partial_times[1:])],
        "rtf": last_status.get("rtf"),
        "skipped": last_status.get("windows_skipped"),
        "decodes": last_status.get("decodes"),
        "context_retries": last_status.get("context_retries"),
        "decode_mean": (last_status["decode_seconds"] / last_status["decodes"])
        if last_status.get("decodes")
        else None,
        "cpu_share": (samples[-1][0] - start_cpu[0]) / wall if start_cpu and samples[-1] else None,
        "peak_rss_mib": max(s[1] for s in samples if s),
        "wall": wall,
    }


def report(hop: float, args, transcripts: dict, offline_texts: dict) -> dict:
    """Stream every file at this hop and print the table; returns the rows for --json."""
    from tools.wer import wer

    rows, all_latencies, all_intervals = [], [], []
    refs, hyps, offline_hyps = [], [], []
    for name in FILES:
        reference, offline_text = transcripts[name]["text"], offline_texts[name]
        result = stream_file(AUDIO / name, args, hop)
        lat = result["latencies"]
        rows.append((name, lat, result, wer(reference, result["text"]), wer(reference, offline_text)))
        all_latencies += lat
        all_intervals += result["partial_intervals"]
        refs.append(reference), hyps.append(result["text"]), offline_hyps.append(offline_text)

    print(
        f"\nstreaming at {args.speed:g}x real time, beam {args.beam_size}, hop {hop:g} s, "
        f"{args.context} encoder context, cpu engine "
        f"(measured); peer: offline transcribe_file, same model and beam, this run"
    )
    header = (
        f"{'file':18s} {'final latency s (median/p90/max)':>33s} {'partial every':>13s} "
        f"{'WER':>6s} {'offline':>7s} {'decode':>7s} {'RTF':>5s} {'skipped':>7s} {'CPU':>5s} {'peak RSS':>9s}"
    )
    print(header)
    for name, lat, r, w, w_off in rows:
        lat_text = (
            f"{statistics.median(lat):.2f} / {percentile(lat, 0.9):.2f} / {max(lat):.2f}"
            if lat
            else "no finals"
        )
        every = f"{statistics.median(r['partial_intervals']):.2f} s" if r["partial_intervals"] else "-"
        print(
            f"{name:18s} {lat_text:>33s} {every:>13s} {w:6.1%} {w_off:7.1%} {r['decode_mean'] or 0:5.2f} s "
            f"{r['rtf'] or 0:5.2f} "
            f"{r['skipped'] or 0:7d} {r['cpu_share'] or 0:5.2f} {r['peak_rss_mib']:6.0f} MiB"
            + (
                f"  ({r['context_retries']} of {r['decodes']} decodes redone on the full context)"
                if args.context == "fit" and r["decodes"]
                else ""
            )
        )
    overall_w = wer(" ".join(refs), " ".join(hyps))
    overall_off = wer(" ".join(refs), " ".join(offline_hyps))
    median, p90 = statistics.median(all_latencies), percentile(all_latencies, 0.9)
    print(
        f"{'overall':18s} {median:.2f} / {p90:.2f} / {max(all_latencies):.2f}".ljust(52)
        + f"{statistics.median(all_intervals) if all_intervals else 0:10.2f} s "
        + f"{overall_w:6.1%} {overall_off:7.1%}"
    )
    decodes = [r["decode_mean"] for _, _, r, _, _ in rows if r["decode_mean"]]
    if decodes:
        d = statistics.mean(decodes)
        print(
            f"median final latency = {median / d:.1f} x the mean decode time "
            f"({d:.2f} s per window, measured); "
            f"LocalAgreement-2 needs two decodes after a word's end, an utterance end one"
        )
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(
        f"targets: median final latency {median:.2f} s <= {TARGET_MEDIAN} s: "
        f"{verdict(median <= TARGET_MEDIAN)}; "
        f"p90 {p90:.2f} s <= {TARGET_P90} s: {verdict(p90 <= TARGET_P90)}; "
        f"WER {100 * (overall_w - overall_off):+.1f} points vs offline (<= {TARGET_WER_POINTS:+.1f}): "
        f"{verdict(100 * (overall_w - overall_off) <= TARGET_WER_POINTS)}"
    )
    return {"hop": hop, "rows": [{"file": n, "wer": w, "offline_wer": wo, **r} for n, _, r, w, wo in rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument(
        "--hop",
        type=float,
        nargs="+",
        default=[1.0, 0.5],
        help="one table per hop (default: the daemon's default 1 s, and 0.5 s)",
    )
    parser.add_argument(
        "--context", choices=("fit", "full"), default="fit", help="the daemon's encoder context"
    )
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from npustream import log
    from npustream.asr.recognizer import Recognizer, RecognizerConfig
    from npustream.transcribe.transcriber import transcribe_file

    log.configure("warning")
    transcripts = json.loads((AUDIO / "transcripts.json").read_text())
    offline = Recognizer(RecognizerConfig(language="en", beam_size=args.beam_size, threads=args.threads))
    offline_texts = {name: transcribe_file(offline, AUDIO / name).text for name in FILES}
    offline.close()
    runs = [report(hop, args, transcripts, offline_texts) for hop in args.hop]
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "runs": runs}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
