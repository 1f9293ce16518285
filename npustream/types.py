"""Plain result types shared by the decoder, the file transcriber, the streaming daemon and the
wire protocol: words and segments with their times, and the caption events the daemon publishes."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Transcript:
    language: str
    duration: float
    segments: tuple[Segment, ...] = field(default_factory=tuple)

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
