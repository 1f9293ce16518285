"""File transcription speed of the `cpu` engine against faster-whisper, measured in the same run.

Same model directory (the packaged Whisper base), same compute type, same threads, same beam,
the language detected (per window / per segment).
Prints, per shared audio file, the real-time factor (wall time / audio duration) of both and
their ratio, and the encoder milliseconds per 30 s window of both.

    PYTHONPATH=tests python bench/bench_transcribe.py [--threads 2] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO.parent / "shared" / "audio"
# Every shared file, the long and the mixed-language ones included.
FILES = tuple(sorted(json.loads((AUDIO / "transcripts.json").read_text())))


def best_of(repeats: int, fn) -> tuple[float, object]:
    """Minimum wall time over repeats (the least disturbed run) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    try:
        from faster_whisper import WhisperModel
    except ImportError:
        print("faster-whisper is the peer of this benchmark: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    from npustream import log
    from npustream.asr.audio import N_SAMPLES, load_audio, pad_or_trim
    from npustream.asr.features import window_features
    from npustream.asr.recognizer import Recognizer, RecognizerConfig
    from npustream.transcribe.transcriber import transcribe_file
    from tools.wer import wer

    log.configure("warning")
    # The language detected, as `npustream transcribe` does by default; faster-whisper's
    # `multilingual` detects it per segment too (the mixed file switches language).
    ours = Recognizer(RecognizerConfig(compute_type=args.compute_type, threads=args.threads))
    peer = WhisperModel(
        str(ours.model_dir), device="cpu", compute_type=args.compute_type, cpu_threads=args.threads
    )
    transcripts = json.loads((AUDIO / "transcripts.json").read_text())

    rows = []
    for name in FILES:
        path = AUDIO / name
        duration = len(load_audio(path)) / 16000
        t_ours, result = best_of(args.repeats, lambda path=path: transcribe_file(ours, path))

        def peer_run(path=path):
            segments, _ = peer.transcribe(str(path), beam_size=5, multilingual=True)
            return "".join(s.text for s in segments)

        t_peer, peer_text = best_of(args.repeats, peer_run)
        rows.append(
            {
                "file": name,
                "audio_s": round(duration, 2),
                "rtf_npustream": round(t_ours / duration, 4),
                "rtf_faster_whisper": round(t_peer / duration, 4),
                "speed_ratio_vs_faster_whisper": round(t_peer / t_ours, 3),
                "wer_npustream": round(wer(transcripts[name]["text"], result.text), 4),
                "wer_faster_whisper": round(wer(transcripts[name]["text"], peer_text), 4),
            }
        )

    # Encoder alone: one full 30 s window of real speech, median of repeats after a warm-up.
    mel = window_features(pad_or_trim(load_audio(AUDIO / "osr_0034_8k.wav"))[:N_SAMPLES])[None]
    ours.engine.encode(mel)
    enc_ours = statistics.median(best_of(1, lambda: ours.engine.encode(mel))[0] for _ in range(args.repeats))
    peer.encode(mel)
    enc_peer = statistics.median(best_of(1, lambda: peer.encode(mel))[0] for _ in range(args.repeats))

    print(
        f"measured on this machine: {args.threads} threads, compute type {args.compute_type}, "
        f"best of {args.repeats}"
    )
    print(
        f"{'file':<18}{'audio s':>8}{'RTF ours':>10}{'RTF f-w':>10}{'f-w/ours':>10}"
        f"{'WER ours':>10}{'WER f-w':>9}"
    )
    for r in rows:
        print(
            f"{r['file']:<18}{r['audio_s']:>8.1f}{r['rtf_npustream']:>10.3f}{r['rtf_faster_whisper']:>10.3f}"
            f"{r['speed_ratio_vs_faster_whisper']:>10.2f}{r['wer_npustream']:>10.3f}"
            f"{r['wer_faster_whisper']:>9.3f}"
        )
    print(
        f"encoder per 30 s window: npustream cpu {enc_ours * 1e3:.0f} ms, "
        f"faster-whisper {enc_peer * 1e3:.0f} ms, "
        f"ratio {enc_peer / enc_ours:.2f}"
    )
    report = {
        "threads": args.threads,
        "compute_type": args.compute_type,
        "files": rows,
        "encoder_ms_per_window": {
            "npustream_cpu": round(enc_ours * 1e3, 1),
            "faster_whisper": round(enc_peer * 1e3, 1),
        },
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ours.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
