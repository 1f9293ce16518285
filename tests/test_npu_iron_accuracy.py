"""The IRON design's emulator (`--engine npu-emu`, design iron) on the shipped Whisper base and the
shared audio: per-frame cosine against CTranslate2's float32 encoder on VAD speech frames, and
transcripts against the cpu engine's. Thresholds sit just under what was measured (docs/npu-iron.md:
min 0.9962, p1 0.9975, median 0.9994 over all windows of all shared files) so a numerics change
that costs accuracy fails here."""

from __future__ import annotations

import numpy as np
import pytest

from tools import accuracy
from tools.wer import normalize, wer

pytestmark = pytest.mark.slow
SHORT_CLIPS = ("jfk.flac", "libri_1.flac", "fr_en_switch.flac")


@pytest.fixture(scope="module")
def recognizers(base_model_dir):
    from npustream.asr.recognizer import Recognizer, RecognizerConfig

    cpu = Recognizer(RecognizerConfig(model_dir=base_model_dir, engine="cpu", compute_type="float32"))
    emu = Recognizer(
        RecognizerConfig(
            model_dir=base_model_dir, engine="npu-emu", npu_design="iron", compute_type="float32"
        )
    )
    assert emu.engine_name == "npu-emu" and emu.fallback_reason is None
    return cpu, emu


def test_speech_frames_match_ctranslate2_float32(recognizers, audio_dir):
    import ctranslate2

    from npustream.asr.audio import N_SAMPLES, load_audio
    from npustream.asr.features import window_features

    cpu, emu = recognizers
    speech = []
    for name in ("jfk.flac", "libri_1.flac"):
        audio = load_audio(audio_dir / name)[:N_SAMPLES]
        mel = window_features(audio)[None]
        want = np.asarray(cpu.ct2.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))[0]
        got = emu.engine.encode(mel)[0]
        speech.append(accuracy.frame_cosines(got, want)[accuracy.speech_frames(audio)])
    dist = accuracy.distribution(np.concatenate(speech))
    assert dist["frames"] > 500
    assert dist["min"] >= 0.996 and dist["p1"] >= 0.9975 and dist["median"] >= 0.9993, dist
    assert dist["median"] < 0.99999, dist  # bf16, LUT exp and floor roundings really are there


@pytest.mark.parametrize("name", SHORT_CLIPS)
def test_short_clips_transcribe_as_the_cpu_engine_does(recognizers, audio_dir, name):
    from npustream.transcribe.transcriber import transcribe_file

    cpu, emu = recognizers
    want = transcribe_file(cpu, audio_dir / name).text
    got = transcribe_file(emu, audio_dir / name).text
    assert normalize(got) == normalize(want), (want, got)


def test_long_files_stay_within_a_point_of_the_cpu_engine(recognizers, audio_dir):
    from npustream.transcribe.transcriber import transcribe_file

    cpu, emu = recognizers
    # lj_stream_a (128 s, 0.52 % WER against the cpu engine when measured) is left to the bench:
    # about two minutes of emulated encoder here.
    for name in ("osr_0034_8k.wav",):
        want = transcribe_file(cpu, audio_dir / name).text
        got = transcribe_file(emu, audio_dir / name).text
        assert wer(want, got) <= 0.01, (name, want, got)
