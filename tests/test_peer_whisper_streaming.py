"""The bench's streaming peer (whisper_streaming's LocalAgreement-2) on recorded word lists: no model.

The scripted decoder reads the stream time from the audio itself (each sample holds its own time in
seconds), so it sees exactly the buffer the processor hands it, trimmed or not.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.peer_whisper_streaming import (
    SAMPLE_RATE,
    Hypothesis,
    HypothesisBuffer,
    OnlineProcessor,
    Word,
    simulate,
)


def words(*spec: tuple[float, float, str]) -> list[Word]:
    return [Word(a, b, t) for a, b, t in spec]


def timeline(seconds: float) -> np.ndarray:
    """Audio whose every sample is its own stream time (s)."""
    return (np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE).astype(np.float64)


class ScriptedDecoder:
    """Hears every spoken word that has ended inside the buffer; segments end where the script says."""

    def __init__(self, spoken: list[Word], segment_ends: list[float]) -> None:
        self.spoken, self.segment_ends = spoken, segment_ends
        self.prompts: list[str] = []

    def transcribe(self, audio: np.ndarray, prompt: str) -> Hypothesis:
        self.prompts.append(prompt)
        start, end = float(audio[0]), float(audio[0]) + len(audio) / SAMPLE_RATE
        heard = [
            Word(w.start - start, w.end - start, w.text)
            for w in self.spoken
            if start <= w.start and w.end <= end
        ]
        ends = [e - start for e in self.segment_ends if start < e <= end]
        if heard and (not ends or ends[-1] < heard[-1].end):
            ends.append(heard[-1].end)  # the last, open segment ends at its last word
        return Hypothesis(heard, ends)


def test_a_word_is_committed_when_two_hypotheses_agree_on_it():
    buffer = HypothesisBuffer()
    buffer.insert(words((0.0, 0.5, " And"), (0.5, 0.8, " so")), offset=0.0)
    assert buffer.flush() == []  # one hypothesis agrees with nothing yet
    buffer.insert(words((0.0, 0.5, " And"), (0.5, 0.8, " so"), (0.8, 1.2, " my")), offset=0.0)
    assert [w.text for w in buffer.flush()] == [" And", " so"]
    assert [w.text for w in buffer.complete()] == [" my"]
    assert buffer.last_committed_end == 0.8


def test_disagreement_commits_nothing_until_the_next_hypothesis_confirms_the_revision():
    buffer = HypothesisBuffer()
    buffer.insert(words((0.0, 0.3, " As"), (0.3, 0.6, " not")), offset=0.0)
    buffer.flush()
    buffer.insert(words((0.0, 0.3, " Ask"), (0.3, 0.6, " not")), offset=0.0)
    assert buffer.flush() == []  # the first word differs, so the common prefix is empty
    buffer.insert(words((0.0, 0.3, " Ask"), (0.3, 0.6, " not"), (0.7, 0.9, " what")), offset=0.0)
    assert [w.text for w in buffer.flush()] == [" Ask", " not"]


def test_a_new_hypothesis_drops_committed_words_and_a_repeat_of_their_tail():
    buffer = HypothesisBuffer()
    for _ in range(2):
        buffer.insert(words((1.0, 1.2, " can"), (1.2, 1.4, " do")), offset=0.0)
        buffer.flush()
    assert buffer.last_committed_end == 1.4
    # After a cut at 1.0 the decoder times " can" before the committed end (dropped by time) and hears
    # " do" again just after it (dropped as a repeat of the committed tail): " for" is what is new.
    buffer.insert(words((0.0, 0.2, " can"), (0.35, 0.5, " do"), (0.5, 0.7, " for")), offset=1.0)
    assert [w.text for w in buffer.incoming] == [" for"]


def test_computation_unaware_run_emits_each_word_at_the_end_of_the_chunk_that_committed_it():
    spoken = words((0.2, 0.5, " a"), (0.6, 0.9, " b"), (1.2, 1.6, " c"), (2.1, 2.4, " d"))
    run = simulate(timeline(3.0), ScriptedDecoder(spoken, []), computation_aware=False, min_chunk=1.0)
    # chunk 1 (to 1 s) hears a b; chunk 2 (to 2 s) hears a b c and agrees on a b; chunk 3 agrees on c;
    # d is flushed at the end of the audio.
    assert [(at, w.text) for at, w in run.emitted] == [(2.0, " a"), (2.0, " b"), (3.0, " c"), (3.0, " d")]
    assert run.latencies() == pytest.approx([1.5, 1.1, 1.4, 0.6])
    assert run.text() == "a b c d" and len(run.decode_seconds) == 3


def test_a_long_buffer_is_cut_at_a_committed_segment_end_and_its_text_becomes_the_prompt():
    spoken = [Word(t + 0.1, t + 0.6, f" w{int(t)}") for t in np.arange(0.0, 20.0)]
    decoder = ScriptedDecoder(spoken, segment_ends=[5.0, 10.0, 15.0])
    online, committed = OnlineProcessor(decoder, trim_seconds=15.0), []
    audio = timeline(20.0)
    for second in range(20):
        online.insert_audio(audio[second * SAMPLE_RATE : (second + 1) * SAMPLE_RATE])
        committed += online.process()
    committed += online.finish()
    assert [w.text for w in committed] == [w.text for w in spoken]  # each word once, in order
    # At 16 s the buffer passed 15 s with words committed to 14.6 s: the latest segment end before
    # that is 10 s (15 s is not yet committed), so the buffer restarts there.
    assert online.offset == 10.0 and len(online.audio) == 10 * SAMPLE_RATE
    assert decoder.prompts[15] == ""  # the cut came after this decode
    assert decoder.prompts[16] == "".join(f" w{t}" for t in range(10))  # committed text before 10 s
