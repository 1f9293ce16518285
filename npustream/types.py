"""Plain result types shared by the decoder, the file transcriber and the streaming daemon."""

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
