"""Audio in, caption events out: the rolling window, voice activity, the recognizer and the
commit policy, with no threads, sockets or clocks of its own (the daemon supplies those).

Each update decodes the window (from the last trim point to now, at most 30 s) when there is
speech in it that is not final yet (but not while a pause in it waits for the speech after
it: a decode could not close it yet), and then:
  - each pause of endpoint_ms inside the pending audio (several when the engine was busy
    through them), once the window holds RIGHT_CONTEXT of speech after it (and DOUBT_CONTEXT
    after any word before it the decoder doubts), closes: the words before it are final, read
    with what follows; a pause of utterance_end_ms ends the utterance (the next words get a
    new segment id);
  - the utterance ended (the audio ends in utterance_end_ms of silence): every pending word
    is final and the window is cut in the silence;
  - the window is about to overflow: the words before the last segment boundary (or all but
    the last few seconds) are final and the window is cut there, but not past speech the
    hypothesis has no words for (Whisper stops early in a full window now and then): that
    speech stays for the next decode;
  - otherwise (also in a pause shorter than that: it only stops the speech) local agreement
    decides between readings of different audio (AGREEMENT_SPAN apart, and all those between;
    a word the decoder doubts waits for more speech after it; words that waited STALLED take any
    two readings that agree, and after UNAGREED one reading does), and a window longer than
    trim_seconds is cut at the end of its newest final segment (a shorter window decodes faster
    and drifts less).
The last word a hypothesis heard is final like any other, its mark (".", ",", "?", none) held:
only the speech after it tells whether the sentence ended there. The decode that makes the next
words final reads the mark; a sentence that ended in a pause ends the utterance there (_final).
Finals read as sentences: a full stop before a word Whisper reads in lower case is none, and a
word after a full stop already published (with an utterance's end) starts with a capital.
Words only become final when the hypothesis accounts for the speech the VAD heard before them
(guards.py). The window is cut in pauses (silence to the VAD), at final segment boundaries
(never into a word that is not final yet), before a sentence that follows the last one with no
pause (a speaker turn, as a rule: the new voice is then read without seconds of the old one), or,
on overflow, where it must. Heard speech that leaves the window without final words for it is
counted (HypothesisGuard.speech_unread).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from npustream import log
from npustream.asr.audio import SAMPLE_RATE
from npustream.asr.vad import VoiceActivity
from npustream.stream.commit import Commit, CommitPolicy, norm
from npustream.stream.config import StreamConfig
from npustream.stream.guards import HypothesisGuard
from npustream.stream.segments import Segments
from npustream.stream.windows import AudioWindow
from npustream.types import MARKS, SENTENCE_END, CaptionEvent, Word

logger = log.get(__name__)

OVERFLOW_KEEP = 5.0  # s: on overflow without a segment boundary, this much stays pending
TRIM_MARGIN = 0.25  # s of audio kept before the first word that is not final yet
PAUSE_RUN_ON = 0.4  # s a last word's aligned end may run on into the pause after it
REUSE_MARGIN = 0.1  # s a decoded window must reach past the last speech for its words to be complete
# s of audio kept before the first pending word when the window is cut: Whisper mishears a first
# word it hears without the words before it ("ask not" after "my fellow Americans," -> "As not").
LEFT_CONTEXT = 2.0
ABBREVIATION_LETTERS = 3  # a capitalised word this short before a full stop may be a title ("Mrs.")
UNREAD_TURN = 1.0  # s of speech after a sentence end that a reading stopping there leaves unread
EDGE_MARGIN = 0.3  # s: a word ending closer than this to the window's end may be cut off mid-word
OVERFLOW_MARGIN = 2.0  # s of room left when the window counts as about to overflow
# Readings agree as evidence only over different audio: a word is final when the reading that
# heard this much less than the newest (about a syllable more of the speech, or of the silence
# after the words: that also tells a word was not cut off) and every reading since read it the
# same. Measured in audio, not in decodes: a fast engine reads nearly the same audio again and
# again, and two such readings agreeing on one side of a flip ("made justly"/"may justly",
# "fine and form"/"fine in form") is chance (lj_stream_a at 0.2 s a decode: WER 4.6 %, offline
# 2.1 %). Whisper base's "asked not" for "ask not" before a pause is not settled by agreement:
# the decoder doubts it (DOUBTFUL).
AGREEMENT_SPAN = 0.3  # s
# Readings that flip between two versions ("at least, you know, they all" / "at least they all"
# on a real call: a filler read in every other decode) never all agree: once the first pending
# word has STALLED of audio after it, two readings agreeing will do (LocalAgreement-2); words
# that waited UNAGREED (a second voice's turn over the first's last words, read another way by
# each decode) are final as this reading has them. Either only when no recent reading has words
# for more of the heard speech (MORE_COMPLETE): the filler is read, not dropped. Issue 10's bound
# on a word's latency is 3.5 s; a streaming decode takes 0.22-0.25 s (median) on this 2-core VM.
STALLED = 2.0  # s
UNAGREED = 2.6  # s
MORE_COMPLETE = 0.05  # s of heard speech
SILENCE_EVIDENCE = 0.2  # s of silence after pending words one more decode hears (_heard_out)
LANGUAGE_KEEP = 0.9  # a detection this sure holds for the utterance's next decodes ...
LANGUAGE_RECHECK = 1.0  # ... until this many s of new audio arrived
RIGHT_CONTEXT = 0.3  # s of speech after a pause (about a word) a decode must hear to close the pause
# A word the decoder gives a low probability waits for this much speech after it before agreement
# can make it final: Whisper base reads "ask not" as "asked not" (p 0.24-0.56) until it hears
# "what your country", and two readings without it agree on "asked".
DOUBTFUL = 0.6  # word probability
DOUBT_CONTEXT = 0.6  # s of speech after the word (about two words)
READINGS = 8  # recent decodes kept for agreement
SAME_WORD = 0.5  # s: a word read again ends within this of where it ended before


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
        self.policy = CommitPolicy(cfg.prompt)
        self.guard = HypothesisGuard(self.vad, self.policy)
        self.stats = UpdateStats()
        self.segments = Segments()
        self._handled_until = 0.0  # speech before this needs no more decoding
        self._counted_until = 0.0  # heard speech without final words is counted up to here (_count_unread)
        self._last_segments = None  # the last decode's result, while it may still be reused
        # Recent decodes: agreement pairs a hypothesis with the newest one that heard different
        # audio (_previous_reading).
        self._readings: deque[_Reading] = deque(maxlen=READINGS)
        self._held_mark: _HeldMark | None = None
        self._sentence_ended = False  # the final text published last ends a sentence
        self._decoded_until = 0.0  # stream time the last decode's window reached
        self._last_update_end = 0.0
        self._language: tuple[str, int, float] | None = None  # sure detection: (language, segment, at)
        self._awaiting: float | None = None  # end of a pause that waits for RIGHT_CONTEXT after it
        self._detected: tuple[str, float] | None = None  # the newest detection, not yet on the captions
        self._hop = cfg.hop
        self._endpoint = cfg.endpoint_ms / 1000
        self._utterance_end = max(cfg.utterance_end_ms / 1000, self._endpoint)
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
        self._handled_until = self._last_update_end = self._counted_until = self.window.end
        self._awaiting = None
        return events

    # -- scheduling -------------------------------------------------------------------------
    def _pending_start(self) -> float:
        """Stream time from which the window's speech is neither final nor handled."""
        return max(self.window.start, self.policy.last_final_end, self._handled_until)

    def _pending_speech(self) -> float:
        return self.vad.speech_in(self._pending_start(), self.window.end)

    def _endpoint_reached(self) -> bool:
        """A pause of endpoint_ms after speech that is not final yet, or in an open utterance."""
        return self.vad.trailing_silence() >= self._endpoint and (
            self.segments.open or self._pending_speech() * 1000 >= self.cfg.min_speech_ms
        )

    def _overflowing(self) -> bool:
        return self.window.room() < OVERFLOW_MARGIN * SAMPLE_RATE

    def due(self) -> bool:
        """A hop of new audio since the last update, the speech after a waiting pause reached
        RIGHT_CONTEXT, or the window is about to overflow. The daemon asks between reads, so an
        update starts as soon as the engine is free and a hop (default 0.2 s) has arrived, or
        the moment a pause can close: no fixed grid for audio to wait on."""
        return (
            self.window.end - self._last_update_end >= self._hop - 1e-9
            or (self._awaiting is not None and self._heard_past(self._awaiting))
            or self._overflowing()
        )

    def _heard_out(self) -> bool:
        """The last decode's window reached past the last speech: another decode would hear
        nothing new. While words are pending, one that heard SILENCE_EVIDENCE more of the
        silence is still worth its decode: agreement with it makes them final in the pause."""
        last_speech = self.vad.last_speech_end()
        margin = REUSE_MARGIN + (SILENCE_EVIDENCE if self.segments.partial else 0.0)
        return (
            self._last_segments is not None
            and last_speech is not None
            and self._decoded_until >= last_speech + margin
        )

    # -- the update -------------------------------------------------------------------------
    def update(self) -> list[CaptionEvent]:
        """Decode the pending audio (or reuse a decode that heard it out), close the utterances
        its pauses end, decide which words are final, publish, and cut the window; count the
        heard speech it moved past without words for it."""
        events = self._update()
        self._count_unread()
        return events

    def _count_unread(self, upto: float | None = None) -> None:
        """Heard speech that left the window (up to `upto`: all of it at the end of the stream)
        with no final word for it: no later decode can read it."""
        upto = self.window.start if upto is None else upto
        if upto > self._counted_until:
            self.guard.count_unread(self.policy.finals, self._counted_until, upto)
            self._counted_until = upto

    def _update(self) -> list[CaptionEvent]:
        w = self.window
        self._count_hops()
        ended = self._endpoint_reached()
        if self._pending_speech() * 1000 < self.cfg.min_speech_ms and not self.segments.partial:
            return self._quiet(ended)
        overflow = self._overflowing()
        # Pauses inside the pending audio ended utterances too (they pass unseen by the
        # trailing-silence check when the engine was busy through them).
        since = self._pending_start()
        found = self.vad.pauses(since, w.end, self._endpoint)
        # Until RIGHT_CONTEXT of speech follows the first pause, a decode cannot close it (it would
        # only redraw the partial) and would hold the engine when that speech arrives: the words
        # before the pause would wait a whole decode longer. No decode; due() calls the moment
        # the pause can close.
        first = found[0].end if found and not (ended or overflow) else None
        self._awaiting = first if first is not None and not self._heard_past(first) else None
        if self._awaiting is not None:
            return []
        # The utterance closes after utterance_end_ms of silence: then every pending word is final,
        # from this decode alone. A shorter pause only stops the speech: agreement goes on.
        closing = ended and self.vad.trailing_silence() >= self._utterance_end
        segments = self._hypothesis(closing, overflow)
        if segments is None:
            return []
        words = [wd for seg in segments for wd in seg.words]
        previous = self._previous_reading()
        self._reread_mark(words)
        events, pauses, since, held = self._close_pauses(words, since, found, ended)
        self._label_language()  # the utterances closed above keep the language they were read in
        agreed = [] if held or closing or overflow else self._agreed(words, previous)
        held = self._hold(words, agreed, since, closing, held)
        ended = closing and not held
        overflow_cut = self._overflow_cut(words, segments, since) if overflow and not ended else None
        commit = self._commit(words, previous, agreed, ended, overflow_cut, held)
        self._readings.append(_Reading(w.end, words))
        self._last_segments = None if (held or ended) else segments
        events += self._final(
            commit.final,
            segment_end=ended,
            last_heard=not (held or overflow or commit.tail),
            following=commit.tail,
        )
        events += self.segments.tail(() if ended else tuple(commit.tail))
        logger.debug(
            "update",
            window=[round(w.start, 2), round(w.end, 2)],
            heard="".join(x.word for x in words),
            held=held,
            pauses=[[round(p.start, 2), round(p.end, 2)] for p in pauses],
            ended=ended,
            overflow=overflow,
            final=[e.text for e in events if e.kind == "final"],
            partial="".join(x.word for x in self.segments.partial),
        )
        self._cut(segments, commit, ended, pauses, overflow_cut, held)
        return events

    def _count_hops(self) -> None:
        """One update; the hops that passed while the engine was busy are counted as skipped."""
        w = self.window
        self.stats.updates += 1
        self.stats.skipped += max(0, int((w.end - self._last_update_end) / self._hop + 1e-9) - 1)
        self._last_update_end = w.end

    def _quiet(self, ended: bool) -> list[CaptionEvent]:
        """Nothing new to decode (no engine work). An utterance with finals stays open, its
        audio kept (the next words may continue its sentence), until utterance_end_ms of
        silence closes it; then only a lead-in of this quiet audio is kept."""
        if self.segments.has_finals and self.vad.trailing_silence() < self._utterance_end:
            return []
        events = self._final([], segment_end=True) if ended else []
        self.window.trim_to(self.window.end - self._preroll)
        return events

    def _hypothesis(self, closing: bool, overflow: bool):
        """The segments to commit from, or None for nothing to do now. When the last decode
        heard every word there is (_heard_out), a decode of the silence after them would change
        nothing: nothing to do, or at an utterance's end that decode is reused. Otherwise
        decode; only an update that must commit from this one decode alone (the utterance's end
        or an overflow) retries an unreliable short-context hypothesis on the full context
        (seconds of decoding, the words after it waiting): any other sets it aside (None), and
        the next hop decodes this audio again, with more of it."""
        if self._heard_out() and not overflow:
            if not closing:
                return None
            self.stats.reused += 1
            return self._last_segments
        return self._decode(full_context_retry=closing or overflow)

    def _close_pauses(self, words: list[Word], since: float, found, ended: bool):
        """Close each pause's utterance, in order, while the hypothesis accounts for the speech
        before it and the window holds RIGHT_CONTEXT of the speech after it; a pause it does not
        account for, or has not heard past, holds everything after it for the next decode.
        Returns (events, pauses closed, where the pending speech now starts, held)."""
        events: list[CaptionEvent] = []
        pauses = []
        for i, pause in enumerate(found):
            next_start = found[i + 1].start if i + 1 < len(found) else self.window.end
            if not ended and not self._heard_past(pause.end):
                return events, pauses, since, True
            if not self.guard.trust_pause(words, since, pause, next_start):
                return events, pauses, since, True
            # Words ending by shortly after the pause began belong before it. A word aligned
            # to end deep in the pause is more likely the next utterance's first, pulled back.
            cut = min(pause.end, pause.start + PAUSE_RUN_ON)
            # A word the decoder doubts waits for DOUBT_CONTEXT of speech after it here too: with
            # 0.34 s of "what" after the pause, Whisper base read "asked not what you are".
            before = self.policy.pending_before(words, cut)
            if not ended and any(self._doubted(x, self.window.end) for x in before):
                return events, pauses, since, True
            commit = self.policy.commit_before(words, cut)
            since = (pause.start + pause.end) / 2
            # The speech after the pause is in the hypothesis, so these words read as they will.
            # A pause of utterance_end_ms ends the utterance.
            if pause.end - pause.start >= self._utterance_end:
                events += self._final(commit.final, segment_end=True, following=commit.tail)
            else:
                # Whether the sentence ended in this pause, the decode that makes the next words
                # final tells better than this one ("for you. Ask" with 0.3 s of them, "for you,
                # ask what" with 0.7 s): a sentence's mark is held (_final).
                events += self._final(commit.final, segment_end=False, last_heard=True)
                if self._held_mark is not None:
                    self._held_mark = replace(self._held_mark, after_pause=True)
            pauses.append(pause)
        return events, pauses, since, False

    def _heard_past(self, pause_end: float) -> bool:
        """The window holds RIGHT_CONTEXT of speech after the pause. Until then the words before
        the pause are read without what follows, and Whisper reads a phrase cut off by a pause
        differently ("asked not" until it hears "what your country": then "ask not"): they
        wait for it, or for the utterance's end. (Whether the hypothesis has words for that
        speech is the guard's question: HypothesisGuard.trust_pause.)"""
        return self.vad.speech_in(pause_end, self.window.end) >= RIGHT_CONTEXT

    def _hold(self, words: list[Word], agreed: list[Word], since: float, closing: bool, held: bool) -> bool:
        """Whether to hold back this update's commits: the hypothesis leaves out speech the VAD
        heard before the words that would become final (all of them when the utterance closes;
        else the agreed ones: none on overflow)."""
        if held:
            return True
        if closing:
            return not self.guard.trust(words, since, self.vad.last_speech_end() or self.window.end)
        return bool(agreed) and not self.guard.trust(words, since, agreed[-1].end)

    def _commit(
        self,
        words: list[Word],
        previous: _Reading,
        agreed: list[Word],
        closing: bool,
        overflow_cut: _OverflowCut | None,
        held: bool,
    ) -> Commit:
        """Which words are final. Local agreement between hypotheses of different audio
        (agreed: _agreed with the previous reading), less words ending so close to the window's
        end they may be cut off and words the decoder doubts (_doubted); the last word heard is
        final without its mark (_final). Words before a pause that agreement leaves pending wait
        for the speech after it (a pause inside the window then commits them, read in context, as
        offline transcription reads them) or for utterance_end_ms of silence: then all are final.
        On overflow: those before the cut (_overflow_cut).
        None when held."""
        pending = self.policy.pending(words)
        if closing:
            return self.policy.commit_first(words, len(pending))
        if overflow_cut is not None:
            return self.policy.commit_before(words, overflow_cut.final_before)
        if held:
            return Commit([], pending)
        n = len(agreed)
        while n and pending[n - 1].end > self.window.end - EDGE_MARGIN:
            n -= 1
        n = next((k for k in range(n) if self._doubted(pending[k], previous.end)), n)
        return self.policy.commit_first(words, n)

    def _previous_reading(self) -> _Reading:
        """The newest decode that heard AGREEMENT_SPAN less audio than this window: the
        earliest reading this one must agree with."""
        for reading in reversed(self._readings):
            if self.window.end - reading.end >= AGREEMENT_SPAN - 1e-6:
                return reading
        return _Reading(0.0, [])

    def _agreed(self, words: list[Word], previous: _Reading) -> list[Word]:
        """The pending words this hypothesis, the previous reading and every reading since read
        the same (CommitPolicy.agreed with each); once the first of them has waited STALLED,
        those it reads as any one earlier reading of AGREEMENT_SPAN less audio did, and those that
        waited UNAGREED and the previous reading heard too (read another way: not a slow engine's
        first reading of them), when no recent reading has words for more of the speech."""
        agreed = self.policy.agreed(words, previous.words)
        for reading in self._readings:
            if reading.end > previous.end:
                agreed = agreed[: len(self.policy.agreed(words, reading.words))]
        pending = self.policy.pending(words)
        if pending and self.window.end - pending[0].end >= STALLED:
            pair = max(
                (self.policy.agreed(words, r.words) for r in self._readings if r.end <= previous.end),
                key=len,
                default=[],
            )
            if len(pair) > len(agreed) and self._most_complete(words, pending[0].start, pair[-1].end):
                agreed = pair
            waited = [x for x in pending if x.end <= min(previous.end, self.window.end - UNAGREED)]
            if len(waited) > len(agreed) and self._most_complete(words, pending[0].start, waited[-1].end):
                agreed = waited
        return agreed

    def _most_complete(self, words: list[Word], t0: float, t1: float) -> bool:
        """No recent reading has words for more of the speech heard in [t0, t1) than this one."""
        mine = self.guard.unexplained(words, t0, t1)
        return all(mine <= self.guard.unexplained(r.words, t0, t1) + MORE_COMPLETE for r in self._readings)

    def _doubted(self, word: Word, heard_until: float) -> bool:
        """Two agreeing readings are weak evidence for a word the decoder doubts (the newest
        reading's probability below DOUBTFUL) unless both heard DOUBT_CONTEXT of speech after it
        (heard_until: where the earlier one's window ended; a pause's one reading: its own)
        (at a stream's start "et cela" for "et c'est la", p 0.09 and 0.53, was read twice with
        less): it and the words after it wait for that, for the pause after it to close (read
        with what follows) or for the utterance's end."""
        return word.probability < DOUBTFUL and self.vad.speech_in(word.end, heard_until) < DOUBT_CONTEXT

    def _reread_mark(self, words: list[Word]) -> None:
        """The held mark as this hypothesis reads the word (the reading nearest in time). A
        sentence end followed by a word in lower case is none: Whisper's own next word says the
        sentence goes on ("for you. ask what"), and once one reading said so, a later "you. Ask"
        does not end it (Whisper base reads both of the same audio; offline: "for you, ask")."""
        if self._held_mark is None:
            return
        held = self._held_mark.word
        same = [
            i
            for i, x in enumerate(words)
            if norm(x.word) == norm(held.word) and abs(x.end - held.end) < SAME_WORD
        ]
        if same:
            i = min(same, key=lambda k: abs(words[k].end - held.end))
            mark = words[i].word[len(words[i].word.rstrip(MARKS)) :]
            goes_on = self._held_mark.goes_on
            if mark.endswith(SENTENCE_END) and i + 1 < len(words) and _lower_case(words[i + 1]):
                goes_on = words[i + 1].word
            if goes_on:
                mark = mark.rstrip("".join(SENTENCE_END))
            self._held_mark = replace(self._held_mark, mark=mark, goes_on=goes_on)

    def _final(
        self, words: list[Word], segment_end: bool, last_heard: bool = False, following: Sequence[Word] = ()
    ) -> list[CaptionEvent]:
        """A final caption (Segments.final), led by the held mark when words follow it or the
        utterance ends: the mark joins the text before it (the captions' join rule).

        Whisper ends a window that ends in silence with a full stop, and reads no comma after
        a last word; which mark follows only the speech after it tells (offline transcription
        hears it: "for you, | ask what", "Americans, | ask not"). So when the last word is the
        last the hypothesis heard (last_heard), the word is final now and its mark (or none) is
        held: published with the next final words, as the decode that made them final reads
        it, or with the utterance's end."""
        events = []
        if self._held_mark is not None and (words or segment_end):
            held, self._held_mark = self._held_mark, None
            if words and held.goes_on and words[0].word.lower() == held.goes_on:  # "you. Ask"
                words = [replace(words[0], word=held.goes_on), *words[1:]]  # as that reading had it
            mark = [Word(held.word.end, held.word.end, held.mark, held.word.probability)] if held.mark else []
            goes_on = bool(words) and _lower_case(words[0])  # then _publish drops a full stop
            if words and held.after_pause and held.mark.endswith(SENTENCE_END) and not goes_on:
                events += self._publish(mark, True, [])  # the sentence ended in the pause
            else:
                words = [*mark, *words]
        if last_heard and words and not segment_end:
            word = words[-1].word.rstrip(MARKS)
            self._held_mark = _HeldMark(replace(words[-1], word=word), words[-1].word[len(word) :])
            words = [*words[:-1], self._held_mark.word]
        if words:
            self.policy.read_in(self.segments.language, words[0].start)
        return events + self._publish(words, segment_end, following[:1])

    def _publish(self, words: list[Word], segment_end: bool, following: Sequence[Word]) -> list[CaptionEvent]:
        """Final words as sentences: a full stop that Whisper's next word (published with it, or
        `following`: the reading's next word, not final yet) read in lower case says was none
        (one reading's "1455. has never") goes; a word in lower case after a sentence end already
        published (an utterance's end: its mark could not wait for the next words) starts the new
        sentence with a capital."""
        out: list[Word] = []
        for word in [*words, *following]:
            if _lower_case(word) and out and out[-1].word.endswith(SENTENCE_END):
                before = out.pop()
                text = before.word.rstrip("".join(SENTENCE_END))
                out += [replace(before, word=text)] if text.strip() else []
            elif _lower_case(word) and not out and self._sentence_ended:
                word = replace(word, word=_capitalised(word.word))
            out.append(word)
        out = out[: len(out) - len(following)]
        if out:
            self._sentence_ended = out[-1].word.endswith(SENTENCE_END)
        return self.segments.final(out, segment_end=segment_end)

    def _cut(
        self, segments, commit: Commit, ended: bool, pauses, overflow_cut: _OverflowCut | None, held: bool
    ) -> None:
        """Cut the window: after an utterance's end (only a lead-in stays), where an overflow
        must (even into a pending word), or else as short as LEFT_CONTEXT before the first
        pending word allows (decode time grows with the words in the window): at the newest
        final segment end that leaves that much, or past trim_seconds at the newest such final
        word; right before the held word when the next sentence follows it straight away
        (_sentence_end_straight_before). Never into a word that is not final yet, and not after
        a held hypothesis: one that left heard speech out may end its words early too ("1455"
        aligned 0.5 s before its speech ended: a cut there left the rest to the next window, read
        as "55")."""
        w = self.window
        if pauses:
            self._handled_until = (pauses[-1].start + pauses[-1].end) / 2
        if ended:
            self._handled_until = w.end
            w.trim_to(w.end - self._preroll)
        elif overflow_cut is not None:
            w.trim_to(overflow_cut.trim_at)
            self._handled_until = max(self._handled_until, w.start)
        elif not held:
            keep_from = (commit.tail[0].start if commit.tail else w.end) - LEFT_CONTEXT
            if self._held_mark is not None:  # later decodes read the mark: keep its word
                keep_from = min(keep_from, self._held_mark.word.start - TRIM_MARGIN)
            cut = self._final_segment_boundary(segments, keep_from)
            if cut is None and w.duration > self.cfg.trim_seconds:
                cut = self._newest_final_end(keep_from)
            sentence_end = self._sentence_end_straight_before(commit.tail)
            if sentence_end is not None:  # (a final word end at or after any cut above)
                cut = self._newest_final_end(sentence_end.start - TRIM_MARGIN) or cut
            if cut is not None:
                self._trim_before_tail(cut, commit.tail)

    def _newest_final_end(self, before: float) -> float | None:
        ends = [wd.end for wd in self.policy.finals if wd.end <= before]
        return ends[-1] if ends else None

    def _sentence_end_straight_before(self, tail: Sequence[Word]) -> Word | None:
        """The final word that ends a sentence right before the pending words, when they start
        the next one (a capital) with no pause between: a speaker turn, as a rule, in a meeting.
        Whisper reads a turn's first words with the previous voice in the window as if they went
        on from it ("Norris Mr. Quilter's" after "... come quickly.", with 2-6 s of that voice;
        "Nor is Mr. Quilter's" from a window starting 0.3-0.8 s before the turn), so the window
        then keeps only that word before them (a held mark is read again). Not across a pause,
        where a reading's sentence end is often a comma in context ("for you. Ask" / "for you,
        ask what"), nor after an abbreviation ("Mr. Quilter")."""
        if (tail and _lower_case(tail[0])) or not self.policy.finals:
            return None
        held = self._held_mark
        if held is not None:
            word, ends = held.word, held.mark.endswith(SENTENCE_END) and not held.goes_on
        else:
            word, ends = self.policy.finals[-1], self._sentence_ended
        if not ends or _abbreviation(word.word):
            return None
        # With no words after it, the reading stops at the sentence end: seconds of speech after
        # it unread are the next voice, started over the last one's final words (heard as noise).
        if not tail and self.vad.speech_in(word.end, self.window.end) < UNREAD_TURN:
            return None
        until = tail[0].end if tail else self.window.end
        return None if self.vad.pauses(word.start, until, self._endpoint) else word

    def _trim_before_tail(self, t: float, tail) -> None:
        """Cut the window at t, but never into a word that is not final yet."""
        if tail:
            t = min(t, tail[0].start - TRIM_MARGIN)
        self.window.trim_to(t)

    def finish(self, decode: bool = True) -> list[CaptionEvent]:
        """End of stream: decode what is left (decode=True) or make the pending partial final.
        A hypothesis that stops before the speech does (Whisper now and then does in a long
        window) makes the words before that speech final, and the window from LEFT_CONTEXT
        before it (then from where it starts) is decoded again."""
        events: list[CaptionEvent] = []
        if decode and self._pending_speech() * 1000 >= self.cfg.min_speech_ms:
            while True:
                since = self._pending_start()
                words = self._read_rest(since)
                hole = self.guard.first_hole(words, since, self.window.end)
                if hole is None:
                    break
                events += self._final(self.policy.commit_before(words, hole).final, segment_end=False)
                # Whisper that read past the words it knew and stopped ("therefore..." with
                # JFK's 8 s after it) reads that speech in a window that starts near it.
                start = hole - LEFT_CONTEXT if hole - LEFT_CONTEXT > self.window.start + 0.01 else hole
                if start <= self.window.start + 0.01:
                    break
                self.window.trim_to(start)
            commit = self.policy.commit_all(words)
            logger.debug(
                "finish",
                window=[round(self.window.start, 2), round(self.window.end, 2)],
                heard="".join(x.word for x in words),
                final=[x.word for x in commit.final],
            )
        else:
            commit = self.policy.commit_all(list(self.segments.partial))
        self._handled_until = self.window.end
        events += self._final(commit.final, segment_end=True)
        self._count_unread(self.window.end)
        return events

    def _read_rest(self, since: float) -> list[Word]:
        """The window's words at the end of the stream: decoded again without the prompt when
        the hypothesis leaves heard speech out, and that reading kept if it has more words."""
        words = [wd for seg in self._decode() for wd in seg.words]
        if not self.guard.trust(words, since, self.vad.last_speech_end() or self.window.end):
            retry = [wd for seg in self._decode() for wd in seg.words]  # without the prompt
            if len(self.policy.pending(retry)) > len(self.policy.pending(words)):
                words = retry
        self._reread_mark(words)
        self._label_language()
        return words

    def _decode(self, full_context_retry: bool = True):
        """The window's hypothesis as segments of heard words; None when it is unreliable and
        may be set aside (full_context_retry=False)."""
        w = self.window
        t0 = time.perf_counter()
        # A retry after a hypothesis left heard speech out goes without the prompt (guards.py).
        prompt = None if self.guard.retry_unprompted else self.policy.prompt(w.start)
        self.guard.retry_unprompted = False
        # Detection costs a decoder pass over the encoder output (about 6 % of a streaming
        # decode): a sure detection holds for the utterance's next decodes, until the utterance
        # ends or LANGUAGE_RECHECK of new audio arrived (a switch inside an utterance is followed
        # that much later).
        language = None
        if self._language is not None:
            detected, segment_id, at = self._language
            if segment_id == self.segments.segment_id and w.end - at < LANGUAGE_RECHECK:
                language = detected
        result = self.recognizer.decode_window(
            w.audio(),
            offset=w.start,
            prompt=prompt,
            full_context_retry=full_context_retry,
            language=language,
            prompt_language=self.policy.language,
        )
        elapsed = time.perf_counter() - t0
        self.stats.decodes += 1
        self.stats.decode_seconds += elapsed
        self.stats.last_decode_seconds = elapsed
        unreliable = result.unreliable
        logger.debug(
            "decode",
            window=[round(w.start, 2), round(w.end, 2)],
            seconds=round(elapsed, 3),
            temperature=result.temperature,
            unreliable=unreliable,
        )
        if unreliable and not full_context_retry:
            self.stats.unreliable += 1
            return None
        self._decoded_until = w.end  # (the reuse test: how far the remembered hypothesis heard)
        if result.skipped_as_silence:
            return ()
        if language is None:
            self._detected = (result.language, result.language_probability)
            if self.segments.language is None:
                self._label_language()
            sure = result.language_probability >= LANGUAGE_KEEP
            self._language = (result.language, self.segments.segment_id, w.end) if sure else None
        return tuple(
            _Seg(self.guard.heard(seg.words, w.start, w.end)) for seg in result.segments if seg.words
        )

    def _label_language(self) -> None:
        """Captions from here on carry the newest detection."""
        if self._detected is not None:
            self.segments.language, self.segments.language_probability = self._detected
            self._detected = None

    def _overflow_cut(self, words: list[Word], segments, since: float) -> _OverflowCut:
        """Where an overflowing window is made final and cut: its last segment boundary, or
        OVERFLOW_KEEP before its end when there is none (or none that frees enough); but never
        past speech the hypothesis has no words for. Whisper reading a full window stops early
        now and then (the 5-minute soak on a busy machine: "... and it was natural therefore."
        with "And so my fellow Americans" 2 s later, the window cut 5 s before its end: lost).
        Then the words before that speech are final and the window keeps it, with LEFT_CONTEXT
        before it, for the next decode, as long as the cut frees OVERFLOW_KEEP; speech cut
        away without words all the same is counted (_count_unread)."""
        w = self.window
        boundaries = [seg.words[-1].end for seg in segments[:-1] if seg.words]
        cut = (
            boundaries[-1]
            if boundaries and boundaries[-1] - w.start >= OVERFLOW_KEEP
            else w.end - OVERFLOW_KEEP
        )
        hole = self.guard.first_hole(words, since, cut)
        if hole is None:
            return _OverflowCut(cut, cut)
        least = w.start + OVERFLOW_KEEP
        trim_at = max(hole - LEFT_CONTEXT, least)
        return _OverflowCut(max(hole, least), trim_at)

    def _final_segment_boundary(self, segments, before: float) -> float | None:
        """The newest end of a segment whose words are all final, no later than `before`."""
        ends = [
            seg.words[-1].end
            for seg in segments
            if seg.words and seg.words[-1].end <= min(self.policy.last_final_end + 0.01, before)
        ]
        return ends[-1] if ends else None


def _lower_case(word: Word) -> bool:
    """The word starts in lower case (a letter that has a capital)."""
    first = word.word.strip()[:1]
    return first != first.upper()


def _abbreviation(word: str) -> bool:
    """A title or initial Whisper writes with a full stop ("Mr", "Dr", "St", "J", "U.S"): a
    capitalised word of at most ABBREVIATION_LETTERS letters, or one with a stop inside."""
    text = word.strip().rstrip(MARKS)
    return "." in text or (text[:1].isupper() and len(text) <= ABBREVIATION_LETTERS)


def _capitalised(text: str) -> str:
    i = len(text) - len(text.lstrip())
    return text[:i] + text[i : i + 1].upper() + text[i + 1 :]


@dataclass(frozen=True)
class _OverflowCut:
    """An overflowing window's words ending by final_before are final; it is cut at trim_at."""

    final_before: float
    trim_at: float


@dataclass(frozen=True)
class _Reading:
    """A decode's heard words and how far its window reached."""

    end: float
    words: list[Word]


@dataclass(frozen=True)
class _Seg:
    words: tuple[Word, ...]


@dataclass(frozen=True)
class _HeldMark:
    """The newest final word, published without the mark it was read with (only the speech
    after it tells whether the sentence ended there, or a comma follows), and that mark as the
    newest decode reads it ("" for none): published before the next final words, or when the
    utterance ends.
    after_pause: a pause closed after the word (the mark, when it ends a sentence, ends the
    utterance there). goes_on: the next word as a reading had it when it read the sentence go on
    after the word, in lower case ("" when none did)."""

    word: Word
    mark: str
    after_pause: bool = False
    goes_on: str = ""
