"""The hypothesis guards on real audio: silero VAD over the Harvard sentences, with word
timings as Whisper base aligned them for this file (see test values), some words removed or
moved into silence to make the failures the guards exist for."""

from __future__ import annotations

import numpy as np
import pytest

from npustream.asr.audio import load_audio
from npustream.asr.vad import VoiceActivity
from npustream.stream.commit import CommitPolicy
from npustream.stream.guards import HypothesisGuard
from npustream.types import Word

# Whisper base's word alignment of the first two sentences (0-7 s) of osr_0034_8k.wav.
SENTENCES = [
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
    ("home", 5.32, 5.68),
    ("took", 5.68, 6.0),
    ("a", 6.0, 6.34),
    ("year.", 6.34, 6.7),
]


def hyp(skip: tuple[str, ...] = ()) -> list[Word]:
    return [Word(a, b, " " + w, 0.9) for w, a, b in SENTENCES if w not in skip]


@pytest.fixture(scope="module")
def vad(audio_dir) -> VoiceActivity:
    v = VoiceActivity()
    v.push(load_audio(audio_dir / "osr_0034_8k.wav")[: 16000 * 8])
    return v


def test_vad_finds_the_pause_between_the_sentences(vad):
    pauses = vad.pauses(0.0, 8.0, 0.5)
    assert len(pauses) >= 1
    first = pauses[0]
    assert 3.6 < first.start < 4.0 and 4.6 < first.end < 4.9  # "...any girl. | The long..."
    assert vad.speech_in(0, 8) > 4.0


def test_silence_and_noise_are_not_speech():
    rng = np.random.default_rng(3)
    v = VoiceActivity()
    v.push(np.zeros(16000 * 3, np.float32))
    v.push(rng.normal(0, 0.1, 16000 * 3).astype(np.float32))
    assert v.speech_in(0, 6) == 0.0 and v.regions(0, 6) == []


def test_words_in_silence_are_dropped(vad):
    guard = HypothesisGuard(vad, CommitPolicy())
    invented = [Word(4.0, 4.5, " Thank", 0.5), Word(7.2, 7.6, " you.", 0.5)]  # both in pauses
    kept = guard.heard(tuple(hyp()[:8] + invented[:1] + hyp()[8:] + invented[1:]), 0.0, 8.0)
    assert [w.word for w in kept] == [w.word for w in hyp()]
    assert guard.dropped_words == 2


def test_a_complete_hypothesis_is_trusted(vad):
    guard = HypothesisGuard(vad, CommitPolicy())
    pause = vad.pauses(0.0, 8.0, 0.5)[0]
    assert guard.trust_pause(hyp(), 0.0, pause, 8.0)
    assert guard.trust(hyp(), 0.0, 6.7)
    assert guard.retries == 0


def test_a_hypothesis_that_left_words_out_is_held_once(vad):
    guard = HypothesisGuard(vad, CommitPolicy())
    holed = hyp(skip=("please", "most", "any"))  # a hole of about a second of speech
    assert guard.unexplained(holed, 0.0, 3.7) > 0.35
    assert not guard.trust(holed, 0.0, 3.7)
    assert guard.retry_unprompted and guard.retries == 1
    assert guard.trust(holed, 0.0, 3.7)  # the same doubt twice: let go (a cough, say)


def test_a_hypothesis_that_stopped_at_the_pause_is_not_trusted_to_close_it(vad):
    guard = HypothesisGuard(vad, CommitPolicy())
    pause = vad.pauses(0.0, 8.0, 0.5)[0]
    stopped = hyp()[:8]  # nothing after "girl." though the second sentence was heard
    assert not guard.trust_pause(stopped, 0.0, pause, 8.0)
    # With under a second of speech after the pause, no words there yet is normal.
    fresh = HypothesisGuard(vad, CommitPolicy())
    assert fresh.trust_pause(stopped, 0.0, pause, pause.end + 0.5)
    assert fresh.retries == 0


def test_a_word_stretched_over_speech_left_out_does_not_explain_it(vad):
    """Whisper's alignment stretches the words around speech its reading left out over that
    speech ("will" over "will please most any"; on a real call "I heard" over 2.1 s of "I need
    the design. Okay, I thought, you know, I heard"): a word stands for at most a word's worth
    of it, at its span's end. So the hole is held like any other, and counted if it is passed."""
    stretched = [
        Word(1.84, 3.3, " will", 0.9) if w.word == " will" else w for w in hyp(("please", "most", "any"))
    ]
    guard = HypothesisGuard(vad, CommitPolicy())
    assert guard.unexplained(stretched, 0.0, 3.7) > 0.35
    assert not guard.trust(stretched, 0.0, 3.7)
    guard.count_unread(stretched, 0.0, 3.7)
    assert guard.speech_unread > 0.35
    # A long word or a number said in full is no stretch: "journey" 0.24 s, "1455" 1.2 s.
    fresh = HypothesisGuard(vad, CommitPolicy())
    slow = [Word(1.84, 2.84, " willingly", 0.9) if w.word == " will" else w for w in hyp(("please", "most"))]
    assert fresh.unexplained(slow, 0.0, 3.7) < 0.35
    number = [
        Word(1.84, 3.04, " 1455", 0.9) if w.word == " will" else w for w in hyp(("please", "most", "any"))
    ]
    assert fresh.unexplained(number, 0.0, 3.7) < 0.35
