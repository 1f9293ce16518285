"""End to end on the long shared recording (lj_stream_a.flac: 128 s, 16 read sentences with
pauses of 0.35-2.5 s): the daemon's captioner and the real model at the daemon's defaults, on a
virtual clock where decodes cost nothing (tests/tools/stream_replay.py), so the result does not
depend on the machine's load. Nothing published twice, nothing lost, WER against the reference.
Plus the decoder's token budget with a long prompt (the prompt does not eat the new tokens)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from npustream.asr.audio import load_audio
from npustream.stream.captioner import Captioner
from npustream.stream.commit import norm
from npustream.stream.config import StreamConfig
from tools.stream_replay import FixedCost, replay
from tools.wer import differences, normalize, wer


@pytest.fixture(scope="module")
def recognizer():
    from npustream.asr.recognizer import Recognizer

    rec = Recognizer(StreamConfig().recognizer_config())  # the daemon's, at its defaults
    yield rec
    rec.close()


@pytest.mark.slow
def test_a_long_reading_is_captioned_whole_and_once(recognizer, audio_dir, transcripts):
    audio = load_audio(audio_dir / "lj_stream_a.flac")
    # Updates every 1 s of audio instead of the default 0.2: the same commit policy and guards
    # with 5x fewer decodes, so the suite stays within its time (latency is bench_stream's job).
    captioner = Captioner(recognizer, StreamConfig(source="file:lj_stream_a.flac", hop=1.0))
    events = replay(audio, captioner)
    words = [w for _, e in events if e.kind == "final" for w in e.words]
    reference = transcripts["lj_stream_a.flac"]["text"]
    text = "".join(w.word for w in words)
    assert wer(reference, text) <= 0.05, text
    # Published once: final times never overlap, and no run of four words is said more often
    # than the reading says it (an echo of the prompt or a word decoded twice would be).
    assert all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:]))
    said, heard = normalize(reference).split(), [norm(w.word) for w in words]
    grams = lambda ws: Counter(tuple(ws[i : i + 4]) for i in range(len(ws) - 3))  # noqa: E731
    assert not grams(heard) - grams(said) or all(n == 1 for n in (grams(heard) - grams(said)).values())
    assert_nothing_lost(captioner, audio, words)
    assert abs(len(words) - len(said)) <= 0.03 * len(said)


def assert_nothing_lost(captioner, audio, words) -> None:
    """Every stretch of speech the VAD heard has a final word in it."""
    for region in captioner.vad.regions(0.0, len(audio) / 16000):
        if region.end - region.start >= 0.3:
            assert any(w.start < region.end and w.end > region.start for w in words), region


class Windows(FixedCost):
    """FixedCost that records each window's length in s."""

    def __init__(self, recognizer, seconds: float):
        super().__init__(recognizer, seconds)
        self.lengths: list[float] = []

    def decode_window(self, audio, **kwargs):
        self.lengths.append(len(audio) / 16000)
        return super().decode_window(audio, **kwargs)


@pytest.mark.slow
def test_a_slow_engine_loses_no_speech_where_whisper_stops_early(recognizer, audio_dir, transcripts):
    """Decodes that cost 12 s of audio each (an engine far behind, as on a busy machine): the
    windows fill up to 30 s, and Whisper reading a long one stops early now and then. On
    lj_stream_a then JFK (the 5-minute soak's first clips, its pause between them) a window
    read "... and it was natural therefore..." and nothing of JFK's 8 s after it: the window
    was cut 5 s before its end, and the end of the stream made it all final (JFK lost, WER
    9.9 %). Every stretch of speech has final words, and none is counted unread."""
    names, pauses = ("lj_stream_a.flac", "jfk.flac"), (1.5, 3.0)
    audio = np.concatenate(
        [
            np.concatenate([load_audio(audio_dir / n), np.zeros(int(p * 16000), np.float32)])
            for n, p in zip(names, pauses)
        ]
    )
    clock = Windows(recognizer, 12.0)
    captioner = Captioner(clock, StreamConfig(source="file:lj_then_jfk"))
    events = replay(audio, captioner, clock=clock)
    assert max(clock.lengths) >= 29.0  # the premise: windows overflowed
    words = [w for _, e in events if e.kind == "final" for w in e.words]
    text = "".join(w.word for w in words)
    reference = " ".join(transcripts[n]["text"] for n in names)
    assert wer(reference, text) <= 0.05, "; ".join(differences(reference, text))
    assert_nothing_lost(captioner, audio, words)
    assert captioner.guard.speech_unread <= 0.5


def test_a_long_prompt_leaves_the_window_its_tokens(recognizer, audio_dir, transcripts):
    """ctranslate2 counts the prompt in max_length: a 200-token prompt must not starve the
    decode of the window's own text."""
    audio = load_audio(audio_dir / "jfk.flac")
    prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 20)
    tokens = recognizer.tokenizer.encode(" " + prompt)
    assert len(tokens) >= 200
    result = recognizer.decode_window(audio, prompt_tokens=tokens)
    assert wer(transcripts["jfk.flac"]["text"], result.text) <= 0.1, result.text
