"""The `npu-emu` engine on the shared audio: wall time per 30 s window against ctranslate2's
own float32 CPU encoder measured in the same run, and encoder accuracy against that encoder.

Per window: seconds of both and their ratio; cosine similarity per encoder frame, on speech
frames (silero VAD) and on the rest; and per file whether the transcript through npu-emu equals
the one through the cpu engine, both with float32, after normalisation.

    PYTHONPATH=tests python bench/bench_npu_emu.py [--threads 2] [--repeats 2] [--gelu erf|tanh]
                                                   [--no-transcripts]

--gelu tanh runs the emulator with the tanh GELU instead of the contract's erf GELU (the
comparison behind the choice in docs/npu-numerics.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO.parent / "shared" / "audio"
FILES = ("jfk.flac", "libri_1.flac", "osr_0034_8k.wav")


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
    parser.add_argument("--gelu", choices=("erf", "tanh"), default="erf")
    parser.add_argument("--no-transcripts", action="store_true")
    args = parser.parse_args()

    import ctranslate2

    from npustream import log
    from npustream.asr.audio import N_SAMPLES, load_audio
    from npustream.asr.features import window_features
    from npustream.engines.npu_emu import NpuEmuEngine
    from npustream.model.store import ensure_packaged_model
    from npustream.npu.ops import numerics
    from tools import accuracy, wer

    log.configure()
    if args.gelu == "tanh":
        numerics.gelu = numerics.gelu_tanh  # matmul_tile looks the GELU up at call time
    model_dir = ensure_packaged_model()
    ct2 = ctranslate2.models.Whisper(
        str(model_dir), device="cpu", compute_type="float32", intra_threads=args.threads
    )
    emu = NpuEmuEngine(model_dir)
    print(f"model {model_dir}  gelu {args.gelu}  tiles {emu.weights.tiles}")

    speech, silence, emu_times, ct2_times, emu_cpu, ct2_cpu = [], [], [], [], [], []
    for name in FILES:
        audio = load_audio(AUDIO / name)
        for start in range(0, len(audio), N_SAMPLES):
            chunk = audio[start : start + N_SAMPLES]
            mel = window_features(chunk)[None]
            features = ctranslate2.StorageView.from_array(mel)
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
            speech.append(cos[is_speech])
            silence.append(cos[~is_speech])
            print(
                f"{name}@{start // 16000:>3d}s  npu-emu {t_emu:6.2f} s  ctranslate2 f32 {t_ct2:6.2f} s  "
                f"ratio {t_emu / t_ct2:5.2f}x   (cpu-seconds {c_emu:5.2f} vs {c_ct2:5.2f})"
            )
            print(f"    speech   {fmt(accuracy.distribution(cos[is_speech]))}")
            print(f"    other    {fmt(accuracy.distribution(cos[~is_speech]))}")

    print(
        f"\nper window (measured, best of {args.repeats}): npu-emu median {np.median(emu_times):.2f} s, "
        f"ctranslate2 float32 encoder median {np.median(ct2_times):.2f} s, "
        f"ratio {np.median(emu_times) / np.median(ct2_times):.2f}x; cpu-seconds per window "
        f"{np.median(emu_cpu):.2f} vs {np.median(ct2_cpu):.2f}, "
        f"ratio {np.median(emu_cpu) / np.median(ct2_cpu):.2f}x"
    )
    print(f"all speech frames   {fmt(accuracy.distribution(np.concatenate(speech)))}")
    print(f"all other frames    {fmt(accuracy.distribution(np.concatenate(silence)))}")

    if not args.no_transcripts:
        from npustream.asr.recognizer import Recognizer, RecognizerConfig
        from npustream.transcribe.transcriber import transcribe_file

        cpu = Recognizer(RecognizerConfig(model_dir=model_dir, engine="cpu", compute_type="float32"))
        npu = Recognizer(RecognizerConfig(model_dir=model_dir, engine="npu-emu", compute_type="float32"))
        if npu.engine_name != "npu-emu":
            print(f"npu-emu engine not used: {npu.fallback_reason}", file=sys.stderr)
            return 1
        for name in FILES:
            a = transcribe_file(cpu, AUDIO / name).text
            b = transcribe_file(npu, AUDIO / name).text
            same = wer.normalize(a) == wer.normalize(b)
            print(f"transcript {name}: {'identical' if same else 'DIFFERENT'} after normalisation")
            if not same:
                print(f"    cpu:     {a}\n    npu-emu: {b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
