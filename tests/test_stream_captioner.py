"""The captioner's schedule and commit policy on recorded hypotheses, no model: Whisper base's
word-timed hypotheses for every window the captioner asked for on jfk.flac (the `make run`
sample), recorded with the daemon's defaults while the audio arrived in BLOCK_SECONDS blocks and each
decode cost nothing (tests/data/jfk_stream_hypotheses.json). Replaying them with the same blocks
asks for the same windows; a window that was not recorded fails the test (the schedule changed:
record again with /work/research/h10/record.py or a tool like it)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from npustream.asr.audio import load_audio
from npustream.asr.decoder import WindowDecode
from npustream.asr.vad import VoiceActivity
from npustream.stream.captioner import (
    DOUBT_CONTEXT,
    DOUBTFUL,
    RIGHT_CONTEXT,
    STALLED,
    UNAGREED,
    UNREAD_TURN,
    Captioner,
)
from npustream.stream.commit import norm
from npustream.stream.config import StreamConfig
from npustream.stream.latency import FinalLatency
from npustream.types import Segment, Word, is_spoken, join_text, join_texts
from tools.record_hypotheses import DECODE_SECONDS
from tools.stream_replay import BLOCK_SECONDS, FixedCost, replay

RECORDED = Path(__file__).parent / "data" / "jfk_stream_hypotheses.json"
# `npustream transcribe` of jfk.flac at the defaults
OFFLINE_JFK = (
    "And so my fellow Americans, ask not what your country can do for you,"
    " ask what you can do for your country."
)


class ReplayRecognizer:
    """Answers each window with the hypothesis Whisper base gave for exactly that window."""

    def __init__(self, path: Path = RECORDED):
        recorded = json.loads(path.read_text())
        assert recorded["block_seconds"] == BLOCK_SECONDS  # the windows asked for depend on it
        self.hypotheses = recorded["hypotheses"]
        self.asked: list[str] = []

    def decode_window(
        self, audio, *, offset=0.0, prompt=None, full_context_retry=True, language=None, prompt_language=None
    ):
        key = f"{offset:.2f}-{offset + len(audio) / 16000:.2f}"
        self.asked.append(key)
        if key not in self.hypotheses:
            raise AssertionError(f"window {key} was not recorded: the schedule changed")
        h = self.hypotheses[key]
        segments = tuple(
            Segment(ws[0][0], ws[-1][1], "".join(w[2] for w in ws), (), 0.01, -0.2, 1.0, 0.0,
                    tuple(Word(*w) for w in ws))
            for ws in h["segments"] if ws
        )  # fmt: skip
        frames = len(audio) // 160
        return WindowDecode(h["language"], 1.0, segments, 0.01, -0.2, 0.0, h["silence"], frames, (),
                            frames / 100, h["unreliable"])  # fmt: skip


@pytest.fixture(scope="module")
def jfk(audio_dir) -> np.ndarray:
    return load_audio(audio_dir / "jfk.flac")


@pytest.fixture(scope="module")
def jfk_run(jfk):
    return replay(jfk, Captioner(ReplayRecognizer(), StreamConfig(source="sample")))


def finals(events) -> list:
    return [e for _, e in events if e.kind == "final"]


def spoken(events) -> list[Word]:
    """The final words, in order (a mark published on its own is no word)."""
    return [w for e in finals(events) for w in e.words if is_spoken(w.word)]


def text_of(events) -> str:
    """The finals as a reader sees them (the captions' join rule)."""
    return join_texts(e.text for e in finals(events))


def test_a_pause_inside_a_sentence_does_not_end_it(jfk_run):
    """JFK pauses about a second after "Americans," and after "ask not": offline transcription
    reads on ("ask not what your country"); so must the finals: no full stop, no capital, no
    new utterance at either pause, and "ask" as said (Whisper base says "asked not" of the
    audio up to the pause as often as "ask not": the words wait for the speech after it). The
    pause after "for you" neither: Whisper reads "for you." before the speech after it, then
    "for you. ask what" (the full stop was held for those readings: none)."""
    words = [w.word.strip() for w in spoken(jfk_run)]
    assert [norm(w) for w in words[:9]] == [
        "and",
        "so",
        "my",
        "fellow",
        "americans",
        "ask",
        "not",
        "what",
        "your",
    ]
    assert not words[4].endswith(".") and not words[6].endswith(".") and words[7] == "what"
    text = text_of(jfk_run)
    assert [norm(w) for w in text.split()] == [norm(w) for w in OFFLINE_JFK.split()]
    assert text.endswith("country.") and "." not in text[:-1]
    first_utterance = [norm(w.word) for e in finals(jfk_run) if e.segment_id == 0 for w in e.words]
    assert (
        first_utterance[:14] == "and so my fellow americans ask not what your country can do for you".split()
    )
    assert [e.segment_end for e in finals(jfk_run)][-1] is True


def test_a_word_cut_off_at_the_window_edge_is_not_final(jfk_run):
    """Two hypotheses in a row end in "America" while "Americans" is still being said: both
    agree, but the word ends at the window's edge; only the whole word becomes final."""
    published = [w.word.strip(" ,") for e in finals(jfk_run) for w in e.words]
    assert "America" not in published and "Americans" in published


def test_no_word_published_twice_none_lost(jfk_run, transcripts):
    words = spoken(jfk_run)
    assert len(words) == len(transcripts["jfk.flac"]["text"].split())  # 22
    assert all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:]))


def test_none_published_twice_none_lost_when_each_decode_takes_its_time(jfk):
    """The windows a real-time daemon on one core asks for (each decode 0.45 s, recorded):
    every word of the sample final once, in order, never before its audio ended, and one
    sentence."""
    clock = FixedCost(ReplayRecognizer(), DECODE_SECONDS)
    events = replay(jfk, Captioner(clock, StreamConfig(source="sample")), clock=clock)
    timed = [(t, w) for t, e in events if e.kind == "final" for w in e.words if is_spoken(w.word)]
    words = [w for _, w in timed]
    assert len(words) == 22 and all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:]))
    assert all(t >= w.end for t, w in timed)
    assert [norm(w.word) for w in words[-8:]] == "ask what you can do for your country".split()
    # Whisper base reads "for you. ask what" and "for you. Ask what" here: the sentence goes on.
    text = text_of(events)
    assert "." not in text[:-1] and "Ask" not in text, text


def test_finals_come_soon_after_the_words_end_when_decodes_cost_nothing(jfk_run):
    """The schedule's own share of the latency (the peer-style lower bound): with free decodes
    half the words are final within 0.6 s of their end; the words before JFK's one-second
    pauses wait for 0.3 s of the speech after them, none longer than 2.5 s."""
    latencies = sorted(
        t - w.end for t, e in jfk_run if e.kind == "final" for w in e.words if is_spoken(w.word)
    )
    assert latencies[len(latencies) // 2] <= 0.6 and latencies[-1] <= 2.5


def test_words_before_a_pause_wait_for_a_word_of_what_follows(jfk):
    """In a pause, only words the decoder is sure of and that ended before it may become final
    (two readings agree, one of them heard the silence after the word). The rest wait until a
    hypothesis heard RIGHT_CONTEXT of the speech after the pause (with the first syllable of
    "what" alone, Whisper base still reads "asked not"; before: "asked not" was final 0.16 s
    into "what"), and so does a held mark ("you" is final in the pause, its full stop held
    and dropped: the readings with "ask what" have the sentence go on)."""
    captioner = Captioner(ReplayRecognizer(), StreamConfig(source="sample"))
    events = replay(jfk, captioner)
    pauses = captioner.vad.pauses(0.0, len(jfk) / 16000, captioner.cfg.endpoint_ms / 1000)
    assert len(pauses) >= 3  # after "Americans," after "ask not" and after "for you"
    for pause in pauses:
        early = [w for t, e in events if e.kind == "final" and pause.start < t < pause.end + RIGHT_CONTEXT
                 for w in e.words]  # fmt: skip
        assert all(is_spoken(w.word) and w.probability >= DOUBTFUL and w.end <= pause.start for w in early), (
            early
        )
    published: dict[str, float] = {}  # each word's first publication
    for t, e in events:
        for w in e.words if e.kind == "final" else ():
            published.setdefault(w.word, t)
    assert published[" ask"] >= pauses[0].end + RIGHT_CONTEXT  # doubted: "asked" without "what"
    assert published[" you"] < pauses[2].end and published["."] > published[" country"]


def test_no_decode_while_a_pause_waits_for_the_speech_after_it(jfk):
    """Until RIGHT_CONTEXT of speech follows a pause, a decode could not close it: none is
    asked for (before: one 0.1 s into the speech, holding the engine when the pause could
    close). The update comes the moment the pause can close, off the hop grid."""
    recognizer = ReplayRecognizer()
    captioner = Captioner(recognizer, StreamConfig(source="sample"))
    replay(jfk, captioner)
    vad = captioner.vad
    ends = [float(key.split("-")[1]) for key in recognizer.asked]
    pauses = vad.pauses(0.0, len(jfk) / 16000, captioner.cfg.endpoint_ms / 1000)
    assert len(pauses) >= 2
    for pause in pauses:
        early = [e for e in ends if pause.end < e and vad.speech_in(pause.end, e) < RIGHT_CONTEXT - 0.01]
        assert not early, (pause, early)
        can_close = next(
            t / 100
            for t in range(int(pause.end * 100), len(jfk) // 160)
            if vad.speech_in(pause.end, t / 100) >= RIGHT_CONTEXT
        )
        assert any(can_close <= e <= can_close + 2 * BLOCK_SECONDS for e in ends), (pause, can_close, ends)


class Doubtful:
    """osr_0034_8k.wav's first sentence (Whisper base's word times), every reading the same, one
    word ("gold") with the probability given."""

    WORDS = [("A", 1.28, 1.32), ("gold", 1.32, 1.54), ("ring", 1.54, 1.86), ("will", 1.86, 2.08),
             ("please", 2.08, 2.44), ("most", 2.44, 2.84), ("any", 2.84, 3.28),
             ("girl.", 3.28, 3.64)]  # fmt: skip

    def __init__(self, gold: float):
        self.gold = gold
        self.ends: list[float] = []  # each window's end, in the order asked

    def decode_window(
        self, audio, *, offset=0.0, prompt=None, full_context_retry=True, language=None, prompt_language=None
    ):
        end = offset + len(audio) / 16000
        self.ends.append(end)
        words = tuple(
            Word(a, b, " " + w, self.gold if w == "gold" else 0.95)
            for w, a, b in self.WORDS
            if offset <= a and b <= end
        )
        segments = (
            (
                Segment(
                    words[0].start,
                    words[-1].end,
                    "".join(w.word for w in words),
                    (),
                    0.01,
                    -0.2,
                    1.0,
                    0.0,
                    words,
                ),
            )
            if words
            else ()
        )
        frames = len(audio) // 160
        return WindowDecode("en", 1.0, segments, 0.01, -0.2, 0.0, False, frames, (), frames / 100)


def test_a_word_the_decoder_doubts_waits_for_more_speech_after_it(audio_dir):
    """Two readings agree on "gold" either way; at probability 0.3 it (and the words after it)
    becomes final only once both readings heard DOUBT_CONTEXT of speech after it; at 0.95, by
    agreement as soon as it is clear of the window's edge."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 5 * 16000]

    def gold(probability: float) -> tuple[float, Captioner, list[float]]:
        recognizer = Doubtful(probability)
        captioner = Captioner(recognizer, StreamConfig(source="sample"))
        events = replay(audio, captioner)
        t = next(t for t, e in events if e.kind == "final" for w in e.words if w.word == " gold")
        return t, captioner, recognizer.ends

    sure, _, _ = gold(0.95)
    doubted, captioner, ends = gold(0.3)
    assert captioner.vad.speech_in(1.54, sure) < DOUBT_CONTEXT
    agreed_with = [end for end in ends if end < doubted - 1e-6][-1]  # (decodes cost nothing)
    assert captioner.vad.speech_in(1.54, agreed_with) >= DOUBT_CONTEXT


def test_an_update_is_due_once_a_hop_of_audio_arrived(jfk):
    captioner = Captioner(ReplayRecognizer(), StreamConfig(source="sample"))
    hop = int(captioner.cfg.hop * 16000)
    captioner.push(jfk[: hop - 160])
    assert not captioner.due()
    captioner.push(jfk[hop - 160 : hop])
    assert captioner.due()


def test_a_sentence_end_waits_for_the_silence_to_end_the_utterance(jfk):
    """After the last word, nothing follows: "country" is final as soon as two readings agree,
    its full stop held while the silence is shorter than utterance_end_ms, then published
    without another decode, and the utterance closes."""
    recognizer = ReplayRecognizer()
    cfg = StreamConfig(source="sample")
    padded = np.concatenate([jfk, np.zeros(16000 * 2, np.float32)])  # as recorded
    events = replay(padded, Captioner(recognizer, cfg))
    word, last = finals(events)[-2:]
    t_word = next(t for t, e in events if e is word)
    t_final = next(t for t, e in events if e is last)
    assert word.text == "country" and t_word < 11.0  # the audio ends at 11.0 s
    assert last.segment_end and last.text == "."
    assert t_final - 11.0 >= cfg.utterance_end_ms / 1000 - 0.5  # held through the silence
    assert max(float(key.split("-")[1]) for key in recognizer.asked) < 11.5  # no decode of the silence


def test_final_latency_counts_from_each_samples_arrival():
    latency = FinalLatency(speed=1.0)
    latency.arrived(1.0, at=100.0)
    latency.arrived(3.0, at=102.5)  # a 2 s block read late: its first sample came at 100.5
    latency.published([Word(0.5, 0.9, " a", 1.0), Word(2.0, 2.5, " b", 1.0)], at=103.0)
    summary = latency.summary()
    assert summary["final_latency_words"] == 2
    # "a" ended at 0.9 s (came at 99.9, 0.1 s before the block's end): 3.1 s; "b" at 2.5 s: 1.0 s
    assert summary["final_latency_median"] == pytest.approx(2.05)
    assert summary["final_latency_p90"] == pytest.approx(3.1)


class TwoLanguages:
    """The first two sentences of osr_0034_8k.wav (Whisper base's word times) as if the first
    were French and the second English: detection (language=None) answers by the newest speech
    in the window, sure of it (0.97); a given language is decoded as given."""

    FIRST = [("A", 0.64, 1.32), ("gold", 1.32, 1.54), ("ring", 1.54, 1.86), ("will", 1.86, 2.08),
             ("please", 2.08, 2.44), ("most", 2.44, 2.84), ("any", 2.84, 3.28),
             ("girl.", 3.28, 3.64)]  # fmt: skip
    SECOND = [("The", 4.62, 4.84), ("long", 4.84, 5.08), ("journey", 5.08, 5.32), ("home", 5.32, 5.66),
              ("took", 5.66, 6.0), ("a", 6.0, 6.34), ("year.", 6.34, 6.7)]  # fmt: skip

    def __init__(self):
        self.asked: list[str | None] = []

    def decode_window(
        self, audio, *, offset=0.0, prompt=None, full_context_retry=True, language=None, prompt_language=None
    ):
        self.asked.append(language)
        end = offset + len(audio) / 16000
        words = tuple(
            Word(a, b, " " + w, 0.9) for w, a, b in self.FIRST + self.SECOND if offset <= a and b <= end
        )
        detected = "en" if words and words[-1].start >= 4.0 else "fr"
        text = "".join(w.word for w in words)
        segments = (
            (Segment(words[0].start, words[-1].end, text, (), 0.01, -0.2, 1.0, 0.0, words),) if words else ()
        )
        frames = len(audio) // 160
        return WindowDecode(language or detected, 1.0 if language else 0.97, segments, 0.01, -0.2, 0.0, False,
                            frames, (), frames / 100)  # fmt: skip


class SentenceGoesOn(TwoLanguages):
    """The same two sentences, in English, the second read with its first word in lower case
    (Whisper's reading when it hears the sentence go on after the pause)."""

    SECOND = [("the", *TwoLanguages.SECOND[0][1:]), *TwoLanguages.SECOND[1:]]


@pytest.mark.parametrize("fake, utterances", [(TwoLanguages, 2), (SentenceGoesOn, 1)])
def test_a_sentence_end_waits_for_the_words_after_the_pause(audio_dir, fake, utterances):
    """ "girl." is final without its full stop before the pause after it ends (two readings
    agree, one heard the silence after it): the stop comes with the next words, as the
    decode that makes them final reads it. A capital after it: the sentence and the
    utterance ended in the pause; a word in lower case: the sentence goes on, no full stop."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]  # ("A" is in the VAD's pre-roll)
    captioner = Captioner(fake(), StreamConfig(source="sample", language="en"))
    events = replay(audio, captioner)
    pause = captioner.vad.pauses(3.0, 5.0, captioner.cfg.endpoint_ms / 1000)[0]
    assert next(t for t, e in events if e.kind == "final" for w in e.words if w.word == " girl") < pause.end
    by_utterance: dict[int, str] = {}
    for e in finals(events):
        by_utterance[e.segment_id] = join_text(by_utterance.get(e.segment_id, ""), e.text)
    if utterances == 2:
        assert list(by_utterance.values()) == [
            "gold ring will please most any girl.",
            "The long journey home took a year.",
        ]
    else:
        assert list(by_utterance.values()) == [
            "gold ring will please most any girl the long journey home took a year."
        ]


class NextSentenceAlone(SentenceGoesOn):
    """The second sentence read in lower case by decodes that no longer hear the first (the
    window was cut after the pause, as in lj_stream_a's "productions. whatever they were")."""

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        if offset + len(audio) / 16000 < self.SECOND[0][1] + 0.4:
            return super().decode_window(audio, offset=offset, **kwargs)
        first, self.FIRST = self.FIRST, []
        try:
            return super().decode_window(audio, offset=offset, **kwargs)
        finally:
            self.FIRST = first


def test_a_sentence_goes_on_when_the_decode_after_the_pause_reads_on_without_the_word_before(audio_dir):
    """The held full stop after "girl" goes when the next words, read in lower case, come from
    decodes that do not hear "girl" again: one sentence, one utterance."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    events = replay(audio, Captioner(NextSentenceAlone(), StreamConfig(source="sample", language="en")))
    assert text_of(events) == "gold ring will please most any girl the long journey home took a year."
    assert len({e.segment_id for e in finals(events)}) == 1


class StopInsideASentence(TwoLanguages):
    """Whisper's "1455. has never been surpassed": a full stop read before a word in lower case."""

    FIRST = [*TwoLanguages.FIRST[:4], ("please.", 2.08, 2.44), *TwoLanguages.FIRST[5:]]


class UtteranceEndThenLowerCase(TwoLanguages):
    """1.5 s more of the pause after "girl." (an utterance's end), and the next sentence read in
    lower case: the full stop was published with the utterance's end."""

    SECOND = [("the", 6.12, 6.34), *[(w, a + 1.5, b + 1.5) for w, a, b in TwoLanguages.SECOND[1:]]]


def test_finals_read_as_sentences_whatever_the_readings_case(audio_dir):
    """A full stop read before a word in lower case is none; a word in lower case after a
    sentence end already published starts the next sentence with a capital."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")
    config = StreamConfig(source="sample", language="en")
    for seconds in (0.45, 0.6, 0.8, 1.0):  # "please." final before "most" (as a real-time daemon reads it)
        clock = FixedCost(StopInsideASentence(), seconds)
        events = replay(audio[: 8 * 16000], Captioner(clock, config), clock=clock)
        assert text_of(events).startswith("gold ring will please most any girl."), seconds
    longer = np.concatenate(
        [audio[: 4 * 16000], np.zeros(int(1.5 * 16000), np.float32), audio[4 * 16000 : 8 * 16000]]
    )
    events = replay(longer, Captioner(UtteranceEndThenLowerCase(), config))
    by_utterance: dict[int, str] = {}
    for e in finals(events):
        by_utterance[e.segment_id] = join_text(by_utterance.get(e.segment_id, ""), e.text)
    assert list(by_utterance.values()) == [
        "gold ring will please most any girl.",
        "The long journey home took a year.",
    ]


class ReadTwiceThenRight(TwoLanguages):
    """ "please" read "pleased" by the two decodes that hear 0.3-0.7 s after it (0.2 s apart,
    nearly the same audio), "please" by every other: a flip a fast engine reads twice in a row."""

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        heard_after = offset + len(audio) / 16000 - 2.44
        first = self.FIRST
        if 0.3 <= heard_after < 0.7:
            self.FIRST = [(w + "d" if w == "please" else w, a, b) for w, a, b in first]
        try:
            return super().decode_window(audio, offset=offset, **kwargs)
        finally:
            self.FIRST = first


def test_readings_of_nearly_the_same_audio_are_not_evidence_enough(audio_dir):
    """Two readings 0.2 s apart agree on "pleased"; the reading AGREEMENT_SPAN before the newest
    and every reading since must agree before a word is final: "please" is."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    recognizer = ReadTwiceThenRight()
    events = replay(audio, Captioner(recognizer, StreamConfig(source="sample", language="en")))
    assert [w.word.strip() for w in spoken(events)][:5] == ["gold", "ring", "will", "please", "most"]


def test_a_sure_language_holds_for_a_second_of_the_utterance(audio_dir):
    """Detection runs at an utterance's first decode and again once a second of new audio
    arrived; in between, the utterance's later decodes are given its language (no detection
    pass). A new utterance detects again: the switch after the first sentence is followed."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    recognizer = TwoLanguages()
    events = replay(audio, Captioner(recognizer, StreamConfig(source="sample")))
    by_language: dict[str, str] = {}
    for _, e in events:
        if e.kind == "final" and e.text:
            by_language[e.language] = join_text(by_language.get(e.language, ""), e.text)
    # (A caption carries the language of the decode that made it final: the full stop after
    # "girl" came with "The" from a decode labelled English.)
    assert "ring will please most any girl" in by_language["fr"]
    assert by_language["en"].endswith("long journey home took a year.")
    detections = recognizer.asked.count(None)
    given = len(recognizer.asked) - detections
    assert given >= 2 * detections, recognizer.asked  # most decodes skip detection
    assert set(recognizer.asked) == {None, "fr", "en"}


class PromptsKept(TwoLanguages):
    """TwoLanguages, keeping the language each decode was told its prompt's text was read in."""

    def __init__(self):
        super().__init__()
        self.prompt_languages: list[str | None] = []

    def decode_window(
        self, audio, *, offset=0.0, prompt=None, full_context_retry=True, language=None, prompt_language=None
    ):
        self.prompt_languages.append(prompt_language)
        return super().decode_window(audio, offset=offset, prompt=prompt, language=language)


def test_each_decode_is_told_the_language_of_the_final_text(audio_dir):
    """The prompt's final text is in the language its utterance was captioned in; a decode in
    another language leaves it out (the recognizer's side: test_prompt_language.py)."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    recognizer = PromptsKept()
    replay(audio, Captioner(recognizer, StreamConfig(source="sample")))
    told = recognizer.prompt_languages
    assert told[0] is None  # nothing final yet
    first_en = told.index("en")
    assert "fr" in told[:first_en] and set(told[first_en:]) == {"en"}, told


class RetriesKept(TwoLanguages):
    """TwoLanguages, keeping the full-context retry each window was asked for."""

    def __init__(self):
        super().__init__()
        self.retries: list[tuple[float, bool]] = []  # (window end, full_context_retry)

    def decode_window(
        self, audio, *, offset=0.0, prompt=None, full_context_retry=True, language=None, prompt_language=None
    ):
        self.retries.append((offset + len(audio) / 16000, full_context_retry))
        return super().decode_window(audio, offset=offset, prompt=prompt, language=language)


def test_a_sentence_end_is_final_in_the_pause_after_it(audio_dir):
    """A pause of endpoint_ms only stops the speech: agreement goes on in it. With decodes of
    0.4 s, "girl." is first read by the decode that hears the speech out; one more decode of
    the silence confirms it, so it is final before the pause can close. No decode in the
    pause is retried on the full context: before utterance_end_ms of silence nothing is
    committed from one decode alone."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    recognizer = RetriesKept()
    captioner = Captioner(FixedCost(recognizer, 0.4), StreamConfig(source="sample", language="en"))
    events = replay(audio, captioner, clock=captioner.recognizer)
    pause = captioner.vad.pauses(3.0, 5.0, captioner.cfg.endpoint_ms / 1000)[0]
    assert pause.end - pause.start < captioner.cfg.utterance_end_ms / 1000
    t_girl = next(t for t, e in events if e.kind == "final" for w in e.words if w.word == " girl")
    assert t_girl < pause.end + RIGHT_CONTEXT
    assert not any(retry for end, retry in recognizer.retries if end < 7.0)
    assert text_of(events) == "gold ring will please most any girl. The long journey home took a year."


class DoubtsTheSentenceEnd(TwoLanguages):
    """The two sentences, English, "girl." read with probability 0.3 (as "asked not." before
    JFK's pause)."""

    def decode_window(
        self, audio, *, offset=0.0, prompt=None, full_context_retry=True, language=None, prompt_language=None
    ):
        result = super().decode_window(audio, offset=offset, prompt=prompt, language="en")
        doubt = [
            replace(s, words=tuple(replace(w, probability=0.3) if w.word == " girl." else w for w in s.words))
            for s in result.segments
        ]
        return replace(result, segments=tuple(doubt))


def test_a_pause_closes_over_a_doubted_word_only_once_it_heard_enough_after_it(audio_dir):
    """A pause closes once a decode heard RIGHT_CONTEXT of the speech after it, but a word the
    decoder doubts before it waits for DOUBT_CONTEXT of speech after it here too: with 0.34 s of
    "what", Whisper base read "asked not what you are" (fr_en_switch.flac, real time)."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    captioner = Captioner(DoubtsTheSentenceEnd(), StreamConfig(source="sample", language="en"))
    events = replay(audio, captioner)
    t_girl = next(t for t, e in events if e.kind == "final" for w in e.words if w.word == " girl")
    assert captioner.vad.speech_in(3.64, t_girl) >= DOUBT_CONTEXT
    assert text_of(events) == "gold ring will please most any girl. The long journey home took a year."


class ReadsOverVad:
    """A word for every 0.4 s of the VAD's speech in a recording (named by where it starts):
    a window is read whole, except a full one (FULL s or more: the window overflows), which
    is read only up to `short` s before its end, as Whisper reading a full window stops early
    now and then. `short` None: every window is read as no words at all."""

    FULL = 25.0  # s

    def __init__(self, audio: np.ndarray, short: float | None):
        vad = VoiceActivity(StreamConfig().vad_threshold, keep_seconds=len(audio) / 16000 + 1)
        vad.push(audio)
        self.vad, self.short, self.windows = vad, short, []
        self.words = [
            Word(a, min(a + 0.4, r.end), f" w{round(a * 100)}", 0.9)
            for r in vad.regions(0.0, len(audio) / 16000)
            for a in np.arange(r.start, r.end - 0.1, 0.4)
        ]

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        end = offset + len(audio) / 16000
        self.windows.append((offset, end))
        until = end - self.short if self.short is not None and end - offset >= self.FULL else end
        words = (
            () if self.short is None else tuple(w for w in self.words if offset <= w.start and w.end <= until)
        )
        text = "".join(w.word for w in words)
        segments = (
            (Segment(words[0].start, words[-1].end, text, (), 0.01, -0.2, 1.0, 0.0, words),) if words else ()
        )
        frames = len(audio) // 160
        return WindowDecode("en", 1.0, segments, 0.01, -0.2, 0.0, False, frames, (), frames / 100)


@pytest.fixture(scope="module")
def lj_stream(audio_dir) -> np.ndarray:
    return load_audio(audio_dir / "lj_stream_a.flac")[: 90 * 16000]


@pytest.mark.parametrize("short", [12.0, 0.0])
def test_a_full_window_read_short_keeps_the_speech_after_its_words(lj_stream, short):
    """Decodes that cost 20 s of audio each: windows overflow (30 s), and each full one is read
    only up to 12 s before its end (or whole), also the last at the end of the stream. The
    words before that are final, and the speech after them is decoded again (the window was
    cut 5 s before its end, and at the end of the stream all was final: 7 s of speech lost each
    time): every word is published, once, in order, and no speech was left unread."""
    recognizer = ReadsOverVad(lj_stream, short=short)
    clock = FixedCost(recognizer, 20.0)
    captioner = Captioner(clock, StreamConfig(source="sample", language="en"))
    events = replay(lj_stream, captioner, clock=clock)
    assert sum(b - a >= ReadsOverVad.FULL for a, b in recognizer.windows) >= 3  # the premise: overflows
    assert [w.word.strip() for w in spoken(events)] == [w.word.strip() for w in recognizer.words]
    assert captioner.guard.speech_unread == 0


def test_speech_an_overflowing_window_must_cut_unread_is_counted(lj_stream):
    """A recognizer that reads no words at all: a full window is cut OVERFLOW_KEEP s after its
    start to free room, over speech without words, and the end of the stream leaves the rest
    without words: all the heard speech is counted as unread."""
    recognizer = ReadsOverVad(lj_stream, short=None)
    clock = FixedCost(recognizer, 20.0)
    captioner = Captioner(clock, StreamConfig(source="sample", language="en"))
    events = replay(lj_stream, captioner, clock=clock)
    assert recognizer.windows[-1][0] > 30  # the premise: windows overflowed
    assert spoken(events) == []
    heard = recognizer.vad.speech_in(0.0, len(lj_stream) / 16000)
    assert captioner.guard.speech_unread == pytest.approx(heard, abs=0.5)


class TurnWithoutPause(TwoLanguages):
    """The two sentences with the pause between them cut out, as the next speaker's turn in a
    meeting follows the last with none; the first two words of the turn are read as one going on
    from the first voice ("Along" for "The long", as Whisper base read "Norris" for "Nor is"
    after "... come quickly.") while the window holds more than CONFUSING s of that voice."""

    GAP = (3.64, 4.5)  # s of osr_0034_8k.wav cut out
    CONFUSING = 1.0  # s

    def __init__(self, first_end: str = "girl."):
        super().__init__()
        shift = self.GAP[1] - self.GAP[0]
        self.FIRST = [*TwoLanguages.FIRST[:-1], (first_end, *TwoLanguages.FIRST[-1][1:])]
        self.SECOND = [(w, a - shift, b - shift) for w, a, b in TwoLanguages.SECOND]
        self.turn = self.SECOND[0][1]
        self.starts: list[float] = []

    def audio(self, audio_dir) -> np.ndarray:
        audio = load_audio(audio_dir / "osr_0034_8k.wav")
        return np.concatenate(
            [audio[: int(self.GAP[0] * 16000)], audio[int(self.GAP[1] * 16000) : 8 * 16000]]
        )

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        self.starts.append(offset)
        result = super().decode_window(audio, offset=offset, language="en")
        if self.turn - offset <= self.CONFUSING or not result.segments:
            return result
        words = list(result.segments[0].words)
        i = next((k for k, w in enumerate(words) if w.word == " The"), None)
        if i is not None and i + 1 < len(words):
            words[i : i + 2] = [Word(words[i].start, words[i + 1].end, " Along", 0.9)]
        return replace(result, segments=(replace(result.segments[0], words=tuple(words)),))


def test_a_turn_straight_after_a_sentence_is_read_without_the_voice_before_it(audio_dir):
    """No pause between two sentences: once a reading ends the first at its last word and
    starts the next with a capital, the window keeps only that word before the next sentence,
    whose first words are then read right (with the whole first sentence in the window they were
    read as one). After an abbreviation ("Dr. The" is no sentence end) the window keeps its
    LEFT_CONTEXT, and the misreading stays."""
    fake = TurnWithoutPause()
    audio = fake.audio(audio_dir)
    config = StreamConfig(source="sample", language="en")
    vad = VoiceActivity(config.vad_threshold)
    vad.push(audio)
    assert not vad.pauses(3.0, fake.turn + 0.5, config.endpoint_ms / 1000)  # none at the turn
    events = replay(audio, Captioner(fake, config))
    assert text_of(events) == "gold ring will please most any girl. The long journey home took a year."

    title = TurnWithoutPause(first_end="Dr.")
    events = replay(audio, Captioner(title, config))
    assert text_of(events).startswith("gold ring will please most any Dr. Along journey")


class ApostropheMoves(TwoLanguages):
    """ "ring" spelled "ring's" and "rings'" by turns, decode after decode (as Whisper base spelled
    "Quilter's", "Quilters'" and "Quilters" on the meeting-like build)."""

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        spelling = ("ring's", "rings'")[len(self.asked) % 2]
        first = self.FIRST
        self.FIRST = [(spelling if w == "ring" else w, a, b) for w, a, b in first]
        try:
            return super().decode_window(audio, offset=offset, **kwargs)
        finally:
            self.FIRST = first


def test_readings_that_spell_a_word_with_its_apostrophe_moved_agree_on_it(audio_dir):
    """Agreement does not wait for two readings to put the apostrophe in the same place: the
    word is final as soon after it as any other, spelled as the newest reading spells it."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    events = replay(audio, Captioner(ApostropheMoves(), StreamConfig(source="sample", language="en")))
    t_ring, ring = next(
        (t, w.word) for t, e in events if e.kind == "final" for w in e.words if "ring" in w.word
    )
    t_will = next(t for t, e in events if e.kind == "final" for w in e.words if w.word == " will")
    assert ring in (" ring's", " rings'")
    assert t_ring <= t_will < 3.0  # (the pause after "girl." ends at 4.6 s)


class StopsAtTheSentenceEnd(TurnWithoutPause):
    """The turn without a pause, read as nothing at all while the window holds more than
    CONFUSING s of the first voice: the reading stops at "girl." (Whisper base stopped at "his
    matter." with JFK's first words over its end, reading after reading)."""

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        second = self.SECOND
        if self.turn - offset > self.CONFUSING:
            self.SECOND = []
        try:
            return super().decode_window(audio, offset=offset, **kwargs)
        finally:
            self.SECOND = second


def test_a_reading_that_stops_at_a_sentence_end_with_speech_after_it_is_cut_there(audio_dir):
    """The reading ends at "girl." while UNREAD_TURN s of speech after it have no words: the
    window keeps only "girl" before that speech, and the next readings read it."""
    fake = StopsAtTheSentenceEnd()
    audio = fake.audio(audio_dir)
    events = replay(audio, Captioner(fake, StreamConfig(source="sample", language="en")))
    assert text_of(events) == "gold ring will please most any girl. The long journey home took a year."
    t_the = next(t for t, e in events if e.kind == "final" for w in e.words if w.word == " The")
    assert t_the - fake.SECOND[0][2] < UNREAD_TURN + 1.5


class SaidTwice(TwoLanguages):
    """A word said twice ("A ring, ring will please ..."; a call's "Hello? Hello?"): each reading
    has both, the second where the first was final a moment before."""

    FIRST = [TwoLanguages.FIRST[0], ("ring,", 1.32, 1.54), *TwoLanguages.FIRST[2:]]


def test_a_word_said_again_right_after_it_was_final_is_published_again(audio_dir):
    """The reading that follows a final word with the same word read it in place too: the
    repeat is new speech, not the final word heard again (a conversation on this machine lost
    its second "Hello?" so, 0.5 s counted unread)."""
    audio = load_audio(audio_dir / "osr_0034_8k.wav")[: 8 * 16000]
    captioner = Captioner(SaidTwice(), StreamConfig(source="sample", language="en"))
    events = replay(audio, captioner)
    assert text_of(events) == "ring, ring will please most any girl. The long journey home took a year."
    assert captioner.guard.speech_unread == 0


class FillerComesAndGoes(ReadsOverVad):
    """ReadsOverVad's words, spelled with two letters (so none stands for more than 0.43 s of
    speech: guards._longest), and only one decode in `every` reads the word at FILLER s: the
    others leave it out and stretch the word after it back over most of its speech, as Whisper's
    alignment does (a real call, read in turns as "at least, you know, they all" and "at least
    they[24.32-25.32] all"). Speech goes on for 4 s after it, with no pause."""

    FILLER = 5.2  # s

    def __init__(self, audio: np.ndarray, every: int, phase: int):
        super().__init__(audio, short=0.0)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.words = [
            replace(w, word=" " + letters[i // 26] + letters[i % 26]) for i, w in enumerate(self.words)
        ]
        self.filler = next(i for i, w in enumerate(self.words) if w.start <= self.FILLER < w.end)
        self.every, self.phase, self.decodes = every, phase, 0

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        self.decodes += 1
        words, i = self.words, self.filler
        if self.decodes % self.every != self.phase:
            self.words = [*words[:i], replace(words[i + 1], start=words[i].start + 0.2), *words[i + 2 :]]
        try:
            return super().decode_window(audio, offset=offset, **kwargs)
        finally:
            self.words = words


@pytest.mark.parametrize("every, phase", [(2, 0), (2, 1)])
def test_readings_that_flip_between_two_versions_agree_once_the_word_waited(lj_stream, every, phase):
    """Readings that leave a filler out and readings that have it never all agree: the words
    from it waited for the pause 4.5 s later, and were then read as the one reading that closed
    it had them, with or without the filler. Once the first of them waited STALLED, two readings
    agreeing do: the filler is published with the next two readings that have it, and every word
    once, in order. (Readings without it that agree are not taken while one has words for more of
    the speech, as the one before them did: measured on the call, tests/test_stream_call.py.)"""
    cost = 0.3  # s a decode
    audio = lj_stream[: 14 * 16000]
    recognizer = FillerComesAndGoes(audio, every, phase)
    clock = FixedCost(recognizer, cost)
    captioner = Captioner(clock, StreamConfig(source="sample", language="en"))
    events = replay(audio, captioner, clock=clock)
    assert [w.word for w in spoken(events)] == [w.word.rstrip(".") for w in recognizer.words]
    filler = recognizer.words[recognizer.filler]
    published = next(t for t, e in events if e.kind == "final" for w in e.words if w.word == filler.word)
    assert published - filler.end < STALLED + (every + 1) * cost
    assert captioner.vad.pauses(filler.end, published + 1.0, captioner._endpoint) == []  # the premise


class SpelledAnew(FillerComesAndGoes):
    """FillerComesAndGoes' words, every decode reading each of them, but each decode spelling the
    word at FILLER s its own way: no two readings agree on it (a second voice's turn over the
    first's last words on a real call: "Neither design. Okay." / "Need the design. Okay." / "I
    need the design. Okay. I think." / "Needs a design. Okay, I thought.")."""

    def decode_window(self, audio, *, offset=0.0, **kwargs):
        self.decodes += 1
        words, i = self.words, self.filler
        self.words = [*words[:i], replace(words[i], word=f"{words[i].word}{self.decodes}"), *words[i + 1 :]]
        try:
            return ReadsOverVad.decode_window(self, audio, offset=offset, **kwargs)
        finally:
            self.words = words


def test_words_no_two_readings_agree_on_are_final_once_they_waited(lj_stream):
    """The words from one no two readings agree on waited for the pause 4.5 s later. Once they
    waited UNAGREED, they are final as the newest reading has them (no reading has words for more
    of the speech), each once, in order."""
    cost = 0.3  # s a decode
    audio = lj_stream[: 14 * 16000]
    recognizer = SpelledAnew(audio, 1, 0)
    clock = FixedCost(recognizer, cost)
    captioner = Captioner(clock, StreamConfig(source="sample", language="en"))
    events = replay(audio, captioner, clock=clock)
    i = recognizer.filler
    heard = [w.word for w in spoken(events)]
    assert heard[i].startswith(recognizer.words[i].word)
    assert heard[:i] + heard[i + 1 :] == [
        w.word.rstrip(".") for w in recognizer.words[:i] + recognizer.words[i + 1 :]
    ]
    spelled = recognizer.words[i]
    published = next(t for t, e in events if e.kind == "final" for w in e.words if w.word == heard[i])
    assert published - spelled.end < UNAGREED + 2 * cost
    assert captioner.vad.pauses(spelled.end, published + 1.0, captioner._endpoint) == []  # the premise
