"""Plain result types shared by the decoder, the file transcriber, the streaming daemon and the
wire protocol: words and segments with their times, and the caption events the daemon publishes."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

# Punctuation Whisper attaches to the word before it. A final caption's text may start with one:
# a sentence's mark, held back until the speech after the word told it (stream/captioner.py).
MARKS = ".,?!;:。，？！、"
SENTENCE_END = (".", "?", "!", "。", "？", "！")  # the marks that end a sentence


def space_before(text: str) -> str:
    """What goes between a caption text and the next one: a text that starts with a mark
    continues the word before it."""
    return "" if text and text[0] in MARKS else " "


def join_text(before: str, text: str) -> str:
    """Caption texts in order as one text."""
    if not before or not text:
        return before or text
    return before + space_before(text) + text


def join_texts(texts: Iterable[str]) -> str:
    """Caption texts in order (an utterance's finals, a stream's) as one text."""
    return functools.reduce(join_text, texts, "")


def closed_text(text: str) -> str:
    """Text that leads a decoder's prompt (hotwords, an initial prompt), closed with a full stop
    unless it ends a sentence already. Whisper reads prompt text as speech just before the window
    and skips audio that goes on from an open end: "Kubernetes, Grafana" before "deploy the
    service with Kubernetes and Grafana today" was read as " and Grafana today." (the daemon's
    hotwords on one machine, `transcribe --prompt` on another). A closed list is not continued."""
    text = " ".join(text.split())
    return text if not text or text.endswith(SENTENCE_END) else text + "."


def is_spoken(word: str) -> bool:
    """A word someone said (a mark alone is not: no latency, no count)."""
    return any(ch.isalnum() for ch in word)


@dataclass(frozen=True)
class Word:
    start: float  # seconds, absolute in the stream or file
    end: float
    word: str  # with its leading space, as the tokenizer spells it
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    temperature: float
    words: tuple[Word, ...] | None = None
    language: str | None = None  # the language it was decoded as


@dataclass(frozen=True)
class Coverage:
    """Where every second of a file went; the three add up to its duration."""

    decoded: float  # seconds the model turned into text (pauses inside those windows included)
    skipped: float  # seconds skipped as non-speech (silero VAD heard none, or the model found none)
    untranscribed: float  # seconds with speech the model gave no text for, or that could not be read


@dataclass(frozen=True)
class Transcript:
    language: str  # the language of most of the text (each segment has its own)
    duration: float
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    coverage: Coverage | None = None
    error: str | None = None  # the file could not be read to its end: the text stops where it broke

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


@dataclass(frozen=True)
class CaptionEvent:
    kind: str  # "final" or "partial"
    segment_id: int
    words: tuple[Word, ...]
    revision: int = 0  # partials: 1, 2, ... within the segment
    segment_end: bool = False  # finals: this one closes the utterance
    language: str | None = None  # the language of the decode the words come from (None: no decode yet)
    language_probability: float | None = None  # detected with this probability; 1.0 when it was set

    @property
    def text(self) -> str:
        return "".join(w.word for w in self.words).strip()
