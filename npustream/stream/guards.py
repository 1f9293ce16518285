"""Checks on each hypothesis before its words may become final.

Heard: a word must overlap speech the VAD heard (Whisper invents words in silence and noise),
and a hypothesis that loops is cut at the loop (commit.cut_repetition).

Complete: Whisper now and then leaves heard speech out: it stops early in a long window, or
skips words that repeat its prompt ("... do for you | ask what you can do for ..."). Making
the words around such a hole final, or closing the utterance over it, would lose that audio
for good. So before words become final, the speech the VAD heard up to them must be explained
by the hypothesis' words; if not, nothing is committed and the next decode retries without
the prompt. The same doubt raised twice is let go: a cough or a laugh is speech to the VAD
and no words to Whisper. Heard speech the captions moved past without words for it is
counted (count_unread: `speech_unread`, seconds).
"""

from __future__ import annotations

from collections.abc import Sequence

from npustream.asr.vad import SpeechRegion, VoiceActivity
from npustream.stream.commit import CommitPolicy, cut_repetition, norm
from npustream.types import Word

WORD_VAD_MARGIN = 0.1  # s: how far a word's aligned span may miss the VAD's speech
WORD_VAD_MIN = 0.06  # s: VAD speech a word's span (widened by the margin) must hold to count as heard
UNEXPLAINED_SPEECH = 0.35  # s of VAD speech no word accounts for: the hypothesis left words out
EXPLAIN_MARGIN = 0.2  # s: how far a word's aligned span may miss the speech it explains
GO_ON_SPEECH = 1.0  # s of speech after a pause that a complete hypothesis has words for
# The most speech a word accounts for: WORD_SECONDS plus LETTER_SECONDS a letter ("I" 0.34 s,
# "heard" 0.7 s, "interesting" 1.24 s; Whisper base's words last 0.1-0.8 s) and DIGIT_SECONDS a
# digit ("1455", "fourteen fifty-five": 1.45 s). Whisper's alignment stretches the words around
# speech its reading left out over that speech: on a real call, "I heard" over 2.1 s of a second
# voice's "I need the design. Okay, I thought, you know, I heard" ("heard" 1.36 s), the turn lost
# and nothing counted. A word stands for its span's end (its onset is what alignment pulls back
# over the speech before it).
WORD_SECONDS = 0.25
LETTER_SECONDS = 0.09
DIGIT_SECONDS = 0.3


class HypothesisGuard:
    def __init__(self, vad: VoiceActivity, policy: CommitPolicy):
        self.vad, self.policy = vad, policy
        self.dropped_words = 0  # outside VAD speech, or cut as a repetition loop
        self.retries = 0  # commits held back because the hypothesis left heard speech out
        self.retry_unprompted = False  # the next decode should go without the prompt
        self.speech_unread = 0.0  # s of heard speech the captions moved past without words for it
        self._doubted: float | None = None  # where the last unexplained speech began

    def heard(self, words: tuple[Word, ...], t0: float, t1: float) -> tuple[Word, ...]:
        """The words the VAD heard as speech, clamped into the window [t0, t1], loops cut."""
        kept = []
        for w in words:
            if self.vad.speech_in(w.start - WORD_VAD_MARGIN, w.end + WORD_VAD_MARGIN) < WORD_VAD_MIN:
                continue
            start = min(max(w.start, t0), t1)
            kept.append(Word(start, min(max(w.end, start), t1), w.word, w.probability))
        cut = cut_repetition(kept)
        self.dropped_words += len(words) - len(cut)
        return tuple(cut)

    def trust_pause(self, words: list[Word], t0: float, pause: SpeechRegion, next_start: float) -> bool:
        """May the utterance before this pause be closed? Its speech since t0 is explained, and
        when there is enough speech after the pause for words, the hypothesis has some (it did
        not just stop at the pause, dropping the end of the sentence before it)."""
        went_on = self.vad.speech_in(pause.end, next_start) < GO_ON_SPEECH or any(
            x.end > pause.end and x.start < next_start for x in self.policy.pending(words)
        )
        return self._accept(t0, went_on and self.unexplained(words, t0, pause.start) < UNEXPLAINED_SPEECH)

    def trust(self, words: list[Word], t0: float, t1: float) -> bool:
        """May words up to t1 become final? The speech heard in [t0, t1) is explained."""
        return self._accept(t0, self.unexplained(words, t0, t1) < UNEXPLAINED_SPEECH)

    def first_hole(self, words: list[Word], t0: float, t1: float) -> float | None:
        """Where the first stretch of heard speech in [t0, t1) that no pending word accounts for
        (UNEXPLAINED_SPEECH of it before the first word, between two, or after the last) begins:
        the end of the word before it, or t0. None when the words account for it all."""
        gaps = self._gaps(self.policy.pending(words), t0, t1)
        return next((at for at, speech in gaps if speech >= UNEXPLAINED_SPEECH), None)

    def unexplained(self, words: list[Word], t0: float, t1: float) -> float:
        """Seconds of VAD speech in [t0, t1) that no pending word's span (widened) covers."""
        return sum(speech for _, speech in self._gaps(self.policy.pending(words), t0, t1))

    def count_unread(self, finals: Sequence[Word], t0: float, t1: float) -> None:
        """The captions moved past [t0, t1): each stretch of its heard speech (UNEXPLAINED_SPEECH
        or more) that no final word stands for is counted in speech_unread."""
        self.speech_unread += sum(s for _, s in self._gaps(finals, t0, t1) if s >= UNEXPLAINED_SPEECH)

    def _gaps(self, words: Sequence[Word], t0: float, t1: float):
        """(where it begins: the end of the word before it, or t0; its VAD speech in s) for each
        gap in [t0, t1) between the words' spans (each at most _longest), widened by
        EXPLAIN_MARGIN, in time order."""
        cursor = start = t0
        for x in words:
            # (a span longer than a word's is stretched: its onset is not widened further)
            onset = x.start - EXPLAIN_MARGIN if x.end - x.start <= _longest(x) else x.end - _longest(x)
            gap_end = min(onset, t1)
            if gap_end > cursor:
                yield start, self.vad.speech_in(cursor, gap_end)
            if x.end + EXPLAIN_MARGIN > cursor:
                cursor, start = x.end + EXPLAIN_MARGIN, x.end
            if cursor >= t1:
                return
        yield start, self.vad.speech_in(cursor, t1)

    def _accept(self, key: float, trusted: bool) -> bool:
        if trusted:
            return True
        if self._doubted is not None and abs(self._doubted - key) < 0.1:
            self._doubted = None
            return True  # doubted twice: let it go
        self._doubted = key
        self.retry_unprompted = True
        self.retries += 1
        return False


def _longest(word: Word) -> float:
    """The most speech a word's span can stand for (s)."""
    spelled = norm(word.word)
    digits = sum(c.isdigit() for c in spelled)
    return WORD_SECONDS + LETTER_SECONDS * (len(spelled) - digits) + DIGIT_SECONDS * digits
