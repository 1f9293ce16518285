"""The caption stream's segment state: which utterance words belong to (segment ids), the
revision of its partial, and the partial last published. Turns newly final words and the
not-yet-final tail into caption events; knows nothing of audio or decoding.

Contract: a final carries only newly final words; `segment_end` closes the utterance and its
partial, and the next words start a new segment id (only when the closed one had finals, so ids
count utterances that said something). A partial is published only when its words changed.
Every event carries the language of the newest decode that heard speech (`language`)."""

from __future__ import annotations

from npustream.types import CaptionEvent, Word


class Segments:
    def __init__(self) -> None:
        self.segment_id = 0
        self.revision = 0  # of the open segment's partial: 1, 2, ...
        self.partial: tuple[Word, ...] = ()  # the last published partial's words
        self.has_finals = False  # the open segment has published finals
        self.language: str | None = None  # of the newest decode that heard speech
        self.language_probability: float | None = None

    def _event(self, kind: str, words: tuple[Word, ...], **fields) -> CaptionEvent:
        return CaptionEvent(
            kind,
            self.segment_id,
            words,
            language=self.language,
            language_probability=self.language_probability,
            **fields,
        )

    @property
    def open(self) -> bool:
        """An utterance is under way: it has finals or a partial on screen."""
        return bool(self.partial) or self.has_finals

    def final(self, words: list[Word], segment_end: bool) -> list[CaptionEvent]:
        """A final caption for newly final words; segment_end closes the utterance."""
        events = []
        if words or (segment_end and self.has_finals):
            events.append(self._event("final", tuple(words), segment_end=segment_end))
            self.has_finals = True
        elif segment_end and self.partial:  # an utterance that ended with no final words
            self.revision += 1
            events.append(self._event("partial", (), revision=self.revision))
        if segment_end:
            if self.has_finals:
                self.segment_id += 1
            self.revision = 0
            self.partial = ()
            self.has_finals = False
        return events

    def tail(self, words: tuple[Word, ...]) -> list[CaptionEvent]:
        """A partial when the not-yet-final tail changed (a client shows finals + this tail)."""
        changed = [x.word for x in words] != [x.word for x in self.partial]
        self.partial = words
        if not changed:
            return []
        self.revision += 1
        return [self._event("partial", words, revision=self.revision)]
