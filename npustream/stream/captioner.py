"""Audio in, caption events out: the rolling window, voice activity, the recognizer and the
commit policy, with no threads, sockets or clocks of its own (the daemon supplies those).

Each update decodes the window (from the last trim point to now, at most 30 s) when there is
speech in it that is not final yet, and then:
  - each pause of endpoint_ms inside the pending audio (several when the engine was busy
    through them) ends an utterance: its words are final, the next words get a new segment id;
  - the utterance ended (the audio ends in such a pause): every pending word is final and
    the window is cut in the pause;
  - the window is about to overflow: the words before the last segment boundary (or all but
    the last few seconds) are final and the window is cut there;
  - otherwise LocalAgreement-2 decides, and a window longer than trim_seconds is cut at the
    end of its newest final segment (a shorter window decodes faster and drifts less).
Words only become final when the hypothesis accounts for the speech the VAD heard before them
(guards.py). The window is cut in pauses (silence to the VAD), at final segment boundaries
(never into a word that is not final yet), or, on overflow, where it must.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from npustream import log
from npustream.audio import SAMPLE_RATE
from npustream.stream.commit import Commit, CommitPolicy
from npustream.stream.config import StreamConfig
from npustream.stream.guards import HypothesisGuard
from npustream.vad import VoiceActivity
from npustream.stream.windows import AudioWindow
from npustream.types import Word

logger = log.get(__name__)

OVERFLOW_KEEP = 5.0  # s: on overflow without a segment boundary, this much stays pending
TRIM_MARGIN = 0.25  # s of audio kept before the first word that is not final yet
PAUSE_RUN_ON = 0.4  # s a last word's aligned end may run on into the pause after it
REUSE_MARGIN = 0.1  # s a decoded window must reach past the last speech for its words to be complete


@dataclass(frozen=True)
class CaptionEvent:
    kind: str  # "final" or "partial"
    segment_id: int
    words: tuple[Word, ...]
    revision: int = 0  # partials: 1, 2, ... within the segment
    segment_end: bool = False  # finals: this one closes the utterance

    @property
    def text(self) -> str:
        return "".join(w.word for w in self.words).strip()


@dataclass
class UpdateStats:
    updates: int = 0  # updates run (with or without engine work)
    decodes: int = 0  # windows sent to the engine
    skipped: int = 0  # hops that passed while the engine was busy (latest wins: never queued)
    decode_seconds: float = 0.0
    last_decode_seconds: float = 0.0
    reused: int = 0  # utterance ends made final from the previous decode (it had heard them out)
    unreliable: int = 0  # hypotheses set aside unseen (a short-context decode that looped or fell short)


class Captioner:
    def __init__(self, recognizer, cfg: StreamConfig):
        self.recognizer = recognizer
        self.cfg = cfg
        self.window = AudioWindow(cfg.max_window)
        self.vad = VoiceActivity(cfg.vad_threshold)
        self.policy = CommitPolicy()
        self.guard = HypothesisGuard(self.vad, self.policy)
        self.stats = UpdateStats()
        self.segment_id = 0
        self.revision = 0
        self.partial: tuple[Word, ...] = ()  # the last published partial's words
        self._segment_has_finals = False
        self._handled_until = 0.0  # speech before this needs no more decoding
        self._last_segments = None  # the last decode's result, while it may still be reused
        self._decoded_until = 0.0  # stream time the last decode's window reached
        self._last_update_end = 0.0
        self._hop = cfg.hop
        self._endpoint = cfg.endpoint_ms / 1000
        self._preroll = min(0.5, self._endpoint)

    # -- input ------------------------------------------------------------------------------
    def room(self) -> int:
        return self.window.room()

    def push(self, samples: np.ndarray) -> None:
        self.window.append(samples)
        self.vad.push(samples)

    def gap(self, seconds: float) -> list[CaptionEvent]:
        """Audio was lost (capture overflow, device gone): close the utterance, skip the gap."""
        events = self.finish(decode=False)
        self._last_segments = None
        self.window.jump(seconds)
        self.vad.reset(self.window.end)
        self._handled_until = self._last_update_end = self.window.end
        return events

    # -- scheduling -------------------------------------------------------------------------
    def _pending_start(self) -> float:
        """Stream time from which the window's speech is neither final nor handled."""
        return max(self.window.start, self.policy.last_final_end, self._handled_until)

    def _pending_speech(self) -> float:
        return self.vad.speech_in(self._pending_start(), self.window.end)

    def _endpoint_reached(self) -> bool:
        """A pause of endpoint_ms after speech that is not final yet, or in an open utterance."""
        open_utterance = bool(self.partial) or self._segment_has_finals
        return self.vad.trailing_silence() >= self._endpoint and (
            open_utterance or self._pending_speech() * 1000 >= self.cfg.min_speech_ms)

    def _overflowing(self) -> bool:
        return self.window.room() < 2 * self._hop * SAMPLE_RATE

    def due(self) -> bool:
        """A hop of audio since the last update, an utterance just ended, or the window is full."""
        return (self.window.end - self._last_update_end >= self._hop - 1e-9
                or self._endpoint_reached() or self._overflowing())

    # -- the update -------------------------------------------------------------------------
    def update(self) -> list[CaptionEvent]:
        w = self.window
        self.stats.updates += 1
        self.stats.skipped += max(0, int((w.end - self._last_update_end) / self._hop + 1e-9) - 1)
        self._last_update_end = w.end
        ended = self._endpoint_reached()
        if self._pending_speech() * 1000 < self.cfg.min_speech_ms and not self.partial:
            # Nothing new to decode (no engine work); close the utterance if it just ended
            # and keep only a lead-in of this quiet audio.
            events = self._final([], segment_end=True) if ended else []
            w.trim_to(w.end - self._preroll)
            return events
        overflow = self._overflowing()
        # Pauses inside the pending audio ended utterances too (they pass unseen by the
        # trailing-silence check when the engine was busy through them).
        since = self._pending_start()
        found = self.vad.pauses(since, w.end, self._endpoint)
        # An utterance that ended while the engine worked on audio already past its last word:
        # that hypothesis has every word, so its end is final now, without another decode.
        last_speech = self.vad.last_speech_end()
        if (ended and self._last_segments is not None and last_speech is not None
                and self._decoded_until >= last_speech + REUSE_MARGIN):
            segments = self._last_segments
            self.stats.reused += 1
        else:
            # Only an utterance's end (now, or a pause inside the pending audio) or an overflow
            # commits from this one decode alone; any other update may set aside an unreliable
            # short-context hypothesis (the next hop decodes this audio again, with more of it)
            # instead of waiting for a full-context decode.
            segments = self._decode(full_context_retry=ended or overflow or bool(found))
            if segments is None:
                return []
        words = [wd for seg in segments for wd in seg.words]
        events: list[CaptionEvent] = []
        # Close each pause's utterance.
        pauses, held = [], False
        for i, pause in enumerate(found):
            next_start = found[i + 1].start if i + 1 < len(found) else w.end
            if not self.guard.trust_pause(words, since, pause, next_start):
                held = True  # keep that audio and commit nothing after it: the next decode retries
                break
            since = (pause.start + pause.end) / 2
            # Words ending by shortly after the pause began belong before it. A word aligned
            # to end deep in the pause is more likely the next utterance's first, pulled back.
            cut = min(pause.end, pause.start + PAUSE_RUN_ON)
            events += self._final(self.policy.commit_before(words, cut).final, segment_end=True)
            pauses.append(pause)
        if ended and not held:
            held = not self.guard.trust(words, since, last_speech or w.end)
        elif not (ended or held or overflow):
            agreed = self.policy.agreed(words)
            held = bool(agreed) and not self.guard.trust(words, since, agreed[-1].end)
        ended = ended and not held
        if ended:
            commit = self.policy.commit_all(words)
        elif overflow:
            commit = self.policy.commit_before(words, self._overflow_cut(segments))
        elif held:
            commit = Commit([], self.policy.pending(words))
        else:
            commit = self.policy.agree(words)
        self.policy.remember(words)
        self._last_segments = None if (held or ended) else segments
        events += self._final(commit.final, segment_end=ended)
        events += self._partial(() if ended else tuple(commit.tail))
        logger.debug("update", window=[round(w.start, 2), round(w.end, 2)], heard="".join(x.word for x in words),
                     pauses=[[round(p.start, 2), round(p.end, 2)] for p in pauses], ended=ended, overflow=overflow,
                     final=[e.text for e in events if e.kind == "final"], partial="".join(x.word for x in self.partial))
        if ended:
            self._handled_until = w.end
            w.trim_to(w.end - self._preroll)
        elif pauses:  # cut in the pause: silence to the VAD, whatever the words' timestamps say
            self._handled_until = (pauses[-1].start + pauses[-1].end) / 2
            w.trim_to(max(self._handled_until, pauses[-1].end - self._preroll))
        elif overflow:  # forced: the window must shrink even if that cuts into a pending word
            w.trim_to(self._overflow_cut(segments))
            self._handled_until = max(self._handled_until, w.start)
        elif w.duration > self.cfg.trim_seconds:
            cut = self._final_segment_boundary(segments)
            if cut is not None:
                self._trim_before_tail(cut, commit.tail)
        return events

    def _trim_before_tail(self, t: float, tail) -> None:
        """Cut the window at t, but never into a word that is not final yet."""
        if tail:
            t = min(t, tail[0].start - TRIM_MARGIN)
        self.window.trim_to(t)

    def finish(self, decode: bool = True) -> list[CaptionEvent]:
        """End of stream: decode what is left (decode=True) or make the pending partial final."""
        if decode and self._pending_speech() * 1000 >= self.cfg.min_speech_ms:
            words = [wd for seg in self._decode() for wd in seg.words]
            since = self._pending_start()
            if not self.guard.trust(words, since, self.vad.last_speech_end() or self.window.end):
                retry = [wd for seg in self._decode() for wd in seg.words]  # without the prompt
                if len(self.policy.pending(retry)) > len(self.policy.pending(words)):
                    words = retry
            commit = self.policy.commit_all(words)
            logger.debug("finish", window=[round(self.window.start, 2), round(self.window.end, 2)],
                         heard="".join(x.word for x in words), final=[x.word for x in commit.final])
        else:
            commit = self.policy.commit_all(list(self.partial))
        self._handled_until = self.window.end
        return self._final(commit.final, segment_end=True)

    def _decode(self, full_context_retry: bool = True):
        """The window's hypothesis as segments of heard words; None when it is unreliable and
        may be set aside (full_context_retry=False)."""
        w = self.window
        t0 = time.perf_counter()
        # A retry after a hypothesis left heard speech out goes without the prompt (guards.py).
        prompt = None if self.guard.retry_unprompted else self.policy.prompt(w.start)
        self.guard.retry_unprompted = False
        result = self.recognizer.decode_window(w.audio(), offset=w.start, prompt=prompt,
                                               full_context_retry=full_context_retry)
        elapsed = time.perf_counter() - t0
        self.stats.decodes += 1
        self.stats.decode_seconds += elapsed
        self.stats.last_decode_seconds = elapsed
        unreliable = result.unreliable
        logger.debug("decode", window=[round(w.start, 2), round(w.end, 2)], seconds=round(elapsed, 3),
                     temperature=result.temperature, unreliable=unreliable)
        if unreliable and not full_context_retry:
            self.stats.unreliable += 1
            return None
        self._decoded_until = w.end  # (the reuse test: how far the remembered hypothesis heard)
        if result.skipped_as_silence:
            return ()
        return tuple(_Seg(self.guard.heard(seg.words, w.start, w.end)) for seg in result.segments if seg.words)

    def _overflow_cut(self, segments) -> float:
        """Where an overflowing window is made final and cut: its last segment boundary, or
        OVERFLOW_KEEP before its end when there is none (or none that frees enough)."""
        w = self.window
        boundaries = [seg.words[-1].end for seg in segments[:-1] if seg.words]
        if boundaries and boundaries[-1] - w.start >= OVERFLOW_KEEP:
            return boundaries[-1]
        return w.end - OVERFLOW_KEEP

    def _final_segment_boundary(self, segments) -> float | None:
        ends = [seg.words[-1].end for seg in segments
                if seg.words and seg.words[-1].end <= self.policy.last_final_end + 0.01]
        return ends[-1] if ends else None

    def _final(self, words: list[Word], segment_end: bool) -> list[CaptionEvent]:
        """A final caption for newly final words; segment_end closes the utterance (and its
        partial), so the next words start a new segment id."""
        events = []
        if words or (segment_end and self._segment_has_finals):
            events.append(CaptionEvent("final", self.segment_id, tuple(words), segment_end=segment_end))
            self._segment_has_finals = True
        elif segment_end and self.partial:  # an utterance that ended with no final words
            self.revision += 1
            events.append(CaptionEvent("partial", self.segment_id, (), revision=self.revision))
        if segment_end:
            if self._segment_has_finals:
                self.segment_id += 1
            self.revision = 0
            self.partial = ()
            self._segment_has_finals = False
        return events

    def _partial(self, tail: tuple[Word, ...]) -> list[CaptionEvent]:
        """A partial when the not-yet-final tail changed (a client shows finals + this tail)."""
        changed = [x.word for x in tail] != [x.word for x in self.partial]
        self.partial = tail
        if not changed:
            return []
        self.revision += 1
        return [CaptionEvent("partial", self.segment_id, tail, revision=self.revision)]


@dataclass(frozen=True)
class _Seg:
    words: tuple[Word, ...]
