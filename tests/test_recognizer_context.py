"""The "fit" encoder context: the window's audio plus 3 s (at least 15 s) instead of Whisper's
30 s, with the full context as the fallback when a short-context decode falls short or repeats
a phrase. Real model, real speech."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from npustream.asr.audio import N_FRAMES, load_audio
from npustream.asr.decoder import repeats_a_phrase
from npustream.asr.recognizer import Recognizer, RecognizerConfig, fitted_frames
from npustream.types import join_texts
from tools.wer import wer


class RecordingEngine:
    """Wraps the recognizer's real engine and records the mel shapes it is given."""

    def __init__(self, engine, any_length: bool):
        self.inner, self.any_length, self.name = engine, any_length, engine.name
        self.frames: list[int] = []

    def encode(self, mel: np.ndarray) -> np.ndarray:
        self.frames.append(mel.shape[-1])
        return self.inner.encode(mel)


@pytest.fixture(scope="module")
def recognizer():
    rec = Recognizer(RecognizerConfig(language="en", word_timestamps=True, context="fit"))
    yield rec
    rec.close()


@pytest.fixture
def recording(recognizer):
    real = recognizer.engine
    recognizer.engine = RecordingEngine(real, any_length=True)
    yield recognizer.engine
    recognizer.engine = real


def test_fitted_frames_cover_the_audio_plus_padding_in_whole_seconds_at_least_12_s():
    assert fitted_frames(1) == 1200
    assert fitted_frames(900) == 1200
    assert fitted_frames(901) == 1300
    assert fitted_frames(1201) == 1600
    assert fitted_frames(2000) == 2300
    assert fitted_frames(2700) == N_FRAMES
    assert fitted_frames(N_FRAMES) == N_FRAMES
    assert all(
        fitted_frames(n) % 2 == 0 and fitted_frames(n) >= min(N_FRAMES, n + 300) for n in range(1, 3001)
    )


def test_unknown_context_is_refused():
    with pytest.raises(ValueError, match="full, fit"):
        Recognizer(RecognizerConfig(context="half"))


@pytest.mark.parametrize("name", ("jfk.flac", "libri_1.flac"))
def test_fit_context_transcribes_real_speech(recognizer, recording, audio_dir, transcripts, name):
    audio = load_audio(audio_dir / name)
    result = recognizer.decode_window(audio)
    assert wer(transcripts[name]["text"], result.text) <= 0.05, result.text
    assert recording.frames[0] == fitted_frames(len(audio) // 160) < N_FRAMES
    words = [w for s in result.segments for w in s.words]
    assert words and words[-1].end <= len(audio) / 16000 + 0.01


def test_a_fit_decode_that_falls_short_is_done_again_on_the_full_context(recognizer, recording, audio_dir):
    audio = load_audio(audio_dir / "jfk.flac")
    strict = replace(recognizer.options, log_prob_threshold=0.0, temperatures=(0.0,))  # nothing passes
    retries = recognizer.context_retries
    result = recognizer.decode_window(audio, options=strict)
    assert recognizer.context_retries == retries + 1
    assert recording.frames == [fitted_frames(len(audio) // 160), N_FRAMES]
    fit_config, recognizer.config = recognizer.config, replace(recognizer.config, context="full")
    try:
        full_text = recognizer.decode_window(audio, options=strict).text
    finally:
        recognizer.config = fit_config
    assert result.text == full_text


def test_engines_built_for_30_s_always_get_the_full_context(recognizer, audio_dir):
    real = recognizer.engine
    recognizer.engine = RecordingEngine(real, any_length=False)
    try:
        recognizer.decode_window(load_audio(audio_dir / "libri_1.flac"))
        assert recognizer.engine.frames == [N_FRAMES]
    finally:
        recognizer.engine = real


def test_warming_up_encodes_both_contexts_the_stream_will_use(recognizer, recording):
    # The daemon's start-up: a fitted decode of 1 s of noise, then the full context that overflow,
    # closing and retry decodes use, so its buffers are in place before the stream's threads run.
    recognizer.warm_up()
    assert recording.frames[0] == fitted_frames(100) and recording.frames[-1] == N_FRAMES


def test_an_engine_built_for_30_s_warms_up_once_on_it(recognizer):
    real = recognizer.engine
    recognizer.engine = RecordingEngine(real, any_length=False)
    try:
        recognizer.warm_up()
        assert recognizer.engine.frames == [N_FRAMES]
    finally:
        recognizer.engine = real


def test_phrases_said_twice_are_recognised():
    assert repeats_a_phrase("Come quickly. Come quickly.")
    assert repeats_a_phrase("A severe storm tore down the barn. A severe storm tore down the barn.")
    assert not repeats_a_phrase(
        "Ask not what your country can do for you, ask what you can do for your country."
    )
    assert not repeats_a_phrase("no, no, no")  # one word: people do say that
    assert not repeats_a_phrase("")


def test_a_fit_decode_that_repeats_a_phrase_is_done_again_on_the_full_context(
    recognizer, recording, audio_dir, transcripts
):
    real_decode = recognizer.decoder.decode
    calls = []

    def first_one_loops(*args, **kwargs):
        result = real_decode(*args, **kwargs)
        calls.append(result)
        if len(calls) == 1:  # what a short context sometimes gives
            looped = replace(result.segments[0], text=" Come quickly. Come quickly.")
            result = replace(result, segments=(looped,))
        return result

    recognizer.decoder.decode = first_one_loops
    try:
        audio = load_audio(audio_dir / "libri_1.flac")
        result = recognizer.decode_window(audio)
    finally:
        recognizer.decoder.decode = real_decode
    assert recording.frames == [fitted_frames(len(audio) // 160), N_FRAMES]
    assert result is calls[1] and not repeats_a_phrase(result.text)
    assert wer(transcripts["libri_1.flac"]["text"], result.text) <= 0.05


def test_without_the_retry_an_unreliable_fit_decode_comes_back_as_it_is(recognizer, recording, audio_dir):
    audio = load_audio(audio_dir / "jfk.flac")
    strict = replace(recognizer.options, log_prob_threshold=0.0, temperatures=(0.0,))  # nothing passes
    retries = recognizer.context_retries
    result = recognizer.decode_window(audio, options=strict, full_context_retry=False)
    assert result.unreliable and recognizer.context_retries == retries
    assert recording.frames == [fitted_frames(len(audio) // 160)]


class ScriptedRecognizer:
    """Gives the captioner prepared hypotheses of the first sentences of osr_0034_8k.wav
    (Whisper base's word times) and records how it was asked."""

    WORDS = [
        ("A", 0.74, 1.32),
        ("gold", 1.32, 1.54),
        ("ring", 1.54, 1.84),
        ("will", 1.84, 2.08),
        ("please", 2.08, 2.44),
        ("most", 2.44, 2.84),
        ("any", 2.84, 3.3),
        ("girl.", 3.3, 3.64),
        ("The", 4.62, 4.84),
        ("long", 4.84, 5.08),
        ("journey", 5.08, 5.32),
        ("home", 5.32, 5.66),
    ]

    def __init__(self, loops: bool):
        self.loops, self.asked = loops, []

    def decode_window(
        self, audio, *, offset, prompt, full_context_retry, language=None, prompt_language=None
    ):
        from npustream.asr.decoder import WindowDecode
        from npustream.types import Segment, Word

        self.asked.append(full_context_retry)
        words = tuple(Word(a, b, " " + w, 0.9) for w, a, b in self.WORDS if b <= offset + len(audio) / 16000)
        text = "".join(w.word for w in words) * (2 if self.loops and not full_context_retry else 1)
        segment = Segment(words[0].start, words[-1].end, text, (), 0.01, -0.2, 1.0, 0.0, words)
        return WindowDecode(
            "en", 1.0, (segment,), 0.01, -0.2, 0.0, False, len(audio) // 160, (), len(audio) / 16000
        )


@pytest.mark.parametrize("loops", (True, False))
def test_the_daemon_sets_an_unreliable_hypothesis_aside_until_the_utterance_ends(audio_dir, loops):
    from npustream.stream.captioner import Captioner
    from npustream.stream.config import StreamConfig

    # The first sentence (it ends at 3.64 s), then silence: the utterance ends at 5.14 s.
    audio = np.concatenate(
        [load_audio(audio_dir / "osr_0034_8k.wav")[: 4 * 16000], np.zeros(3 * 16000, np.float32)]
    )
    scripted = ScriptedRecognizer(loops)
    captioner = Captioner(scripted, StreamConfig(source="sample", hop=1.0))
    events = []
    for second in range(7):
        captioner.push(audio[second * 16000 : (second + 1) * 16000])
        if captioner.due():
            events += captioner.update()
    finals = join_texts(e.text for e in events if e.kind == "final" and e.text)
    assert finals == "A gold ring will please most any girl."
    assert captioner.stats.unreliable == (scripted.asked.count(False) if loops else 0)
    assert not any(e.kind == "partial" and repeats_a_phrase(e.text) for e in events)  # no looped text shown
    # Looping, the words wait for the utterance's end: it is decoded with the retry allowed.
    assert scripted.asked[-1] is loops
