"""The `npu-emu` engine on the shared audio: wall time per 30 s window against ctranslate2's
own float32 CPU encoder measured in the same run, and encoder accuracy against that encoder.

Per window: seconds of both and their ratio; cosine similarity per encoder frame, on speech
frames (silero VAD) and on the rest; the accuracy contract (cosine >= 0.999) on the speech frames
the recording determines (tools/accuracy.py: ctranslate2 float32 stays within 1e-4 of itself under
sub-step input noise), with the frames it does not determine listed (npu-emu's cosine beside
ctranslate2's own under that noise); and per file whether the transcript through npu-emu equals
the one through the cpu engine, both with float32, after normalisation.

    PYTHONPATH=tests python bench/bench_npu_emu.py [--threads 2] [--repeats 2] [--trials 6]
                                                   [--no-transcripts] [FILE ...]

FILE: names in the shared audio folder (default: every .flac and .wav there).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO.parent / "shared" / "audio"


def best_of(repeats: int, fn):
    """Minimum wall time and minimum process CPU time (all threads) over repeats, and the last
    result. CPU time is the steadier figure when other jobs share the machine."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return (min(walls), min(cpus)), result


def fmt(dist: dict) -> str:
    return (
        f"{dist['frames']:5d} frames  min {dist['min']:.5f}  p1 {dist['p1']:.5f}  median {dist['median']:.6f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="ctranslate2 intra-op threads")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("files", nargs="*", help="shared audio file names (default: all)")
    parser.add_argument("--no-transcripts", action="store_true")
    parser.add_argument("--trials", type=int, default=6, help="noise draws per window for the floor")
    args = parser.parse_args()

    import ctranslate2

    from npustream import log
    from npustream.asr.audio import N_SAMPLES, load_audio
    from npustream.asr.features import window_features
    from npustream.engines.npu_emu import NpuEmuEngine
    from npustream.model.store import ensure_packaged_model
    from tools import accuracy, wer

    log.configure()
    model_dir = ensure_packaged_model()
    ct2 = ctranslate2.models.Whisper(
        str(model_dir), device="cpu", compute_type="float32", intra_threads=args.threads
    )
    emu = NpuEmuEngine(model_dir)
    print(f"model {model_dir}  tiles {emu.weights.tiles}")

    determined, speech, silence, emu_times, ct2_times, emu_cpu, ct2_cpu = [], [], [], [], [], [], []

    def ct2_features(audio: np.ndarray):
        return ctranslate2.StorageView.from_array(window_features(audio)[None])

    files = args.files or sorted(p.name for p in AUDIO.iterdir() if p.suffix in (".flac", ".wav"))
    for name in files:
        audio = load_audio(AUDIO / name)
        for start in range(0, len(audio), N_SAMPLES):
            chunk = audio[start : start + N_SAMPLES]
            mel = window_features(chunk)[None]
            features = ct2_features(chunk)
            (t_ct2, c_ct2), want = best_of(
                args.repeats, lambda f=features: np.asarray(ct2.encode(f, to_cpu=True))[0]
            )
            (t_emu, c_emu), got = best_of(args.repeats, lambda m=mel: emu.encode(m)[0])
            emu_times.append(t_emu)
            ct2_times.append(t_ct2)
            emu_cpu.append(c_emu)
            ct2_cpu.append(c_ct2)
            cos = accuracy.frame_cosines(got, want)
            is_speech = accuracy.speech_frames(chunk)
            floor = accuracy.input_noise_floor(
                lambda a: np.asarray(ct2.encode(ct2_features(a), to_cpu=True))[0], chunk, args.trials, start
            )
            fixed = is_speech & (floor >= accuracy.DETERMINED)
            speech.append(cos[is_speech])
            determined.append(cos[fixed])
            silence.append(cos[~is_speech])
            print(
                f"{name}@{start // 16000:>3d}s  npu-emu {t_emu:6.2f} s  ctranslate2 f32 {t_ct2:6.2f} s  "
                f"ratio {t_emu / t_ct2:5.2f}x   (cpu-seconds {c_emu:5.2f} vs {c_ct2:5.2f})"
            )
            print(f"    speech   {fmt(accuracy.distribution(cos[is_speech]))}")
            print(f"    determined speech {fmt(accuracy.distribution(cos[fixed]))}")
            loose = np.flatnonzero(is_speech & ~fixed)
            if loose.size:
                print(
                    "    speech frames the recording does not determine (frame: npu-emu, ctranslate2 "
                    "under noise): " + ", ".join(f"{i}: {cos[i]:.4f}, {floor[i]:.4f}" for i in loose)
                )
            print(f"    other    {fmt(accuracy.distribution(cos[~is_speech]))}")

    print(
        f"\nper window (measured, best of {args.repeats}): npu-emu median {np.median(emu_times):.2f} s, "
        f"ctranslate2 float32 encoder median {np.median(ct2_times):.2f} s, "
        f"ratio {np.median(emu_times) / np.median(ct2_times):.2f}x; cpu-seconds per window "
        f"{np.median(emu_cpu):.2f} vs {np.median(ct2_cpu):.2f}, "
        f"ratio {np.median(emu_cpu) / np.median(ct2_cpu):.2f}x"
    )
    print(f"all speech frames   {fmt(accuracy.distribution(np.concatenate(speech)))}")
    kept = np.concatenate(determined)
    print(
        f"determined speech   {fmt(accuracy.distribution(kept))}: contract (min >= 0.999) "
        f"{'met' if kept.min() >= 0.999 else 'NOT met'}"
    )
    print(f"all other frames    {fmt(accuracy.distribution(np.concatenate(silence)))}")

    if not args.no_transcripts:
        from npustream.asr.recognizer import Recognizer, RecognizerConfig
        from npustream.transcribe.transcriber import transcribe_file

        cpu = Recognizer(RecognizerConfig(model_dir=model_dir, engine="cpu", compute_type="float32"))
        npu = Recognizer(
            RecognizerConfig(
                model_dir=model_dir, engine="npu-emu", npu_design="custom", compute_type="float32"
            )
        )
        if npu.engine_name != "npu-emu":
            print(f"npu-emu engine not used: {npu.fallback_reason}", file=sys.stderr)
            return 1
        for name in files:
            a = transcribe_file(cpu, AUDIO / name).text
            b = transcribe_file(npu, AUDIO / name).text
            same = wer.normalize(a) == wer.normalize(b)
            print(f"transcript {name}: {'identical' if same else 'DIFFERENT'} after normalisation")
            if not same:
                print(f"    cpu:     {a}\n    npu-emu: {b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
