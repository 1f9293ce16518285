"""Checks on each hypothesis before its words may become final.

Heard: a word must overlap speech the VAD heard (Whisper invents words in silence and noise),
and a hypothesis that loops is cut at the loop (commit.cut_repetition).

Complete: Whisper now and then leaves heard speech out: it stops early in a long window, or
skips words that repeat its prompt ("... do for you | ask what you can do for ..."). Making
the words around such a hole final, or closing the utterance over it, would lose that audio
for good. So before words become final, the speech the VAD heard up to them must be explained
by the hypothesis' words; if not, nothing is committed and the next decode retries without
the prompt. The same doubt raised twice is let go: a cough or a laugh is speech to the VAD
and no words to Whisper.
"""

from __future__ import annotations

from npustream.asr.vad import SpeechRegion, VoiceActivity
from npustream.stream.commit import CommitPolicy, cut_repetition
from npustream.types import Word

WORD_VAD_MARGIN = 0.1  # s: how far a word's aligned span may miss the VAD's speech
WORD_VAD_MIN = 0.06  # s: VAD speech a word's span (widened by the margin) must hold to count as heard
UNEXPLAINED_SPEECH = 0.35  # s of VAD speech no word accounts for: the hypothesis left words out
EXPLAIN_MARGIN = 0.2  # s: how far a word's aligned span may miss the speech it explains
GO_ON_SPEECH = 1.0  # s of speech after a pause that a complete hypothesis has words for


class HypothesisGuard:
    def __init__(self, vad: VoiceActivity, policy: CommitPolicy):
        self.vad, self.policy = vad, policy
        self.dropped_words = 0  # outside VAD speech, or cut as a repetition loop
        self.retries = 0  # commits held back because the hypothesis left heard speech out
        self.retry_unprompted = False  # the next decode should go without the prompt
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

    def unexplained(self, words: list[Word], t0: float, t1: float) -> float:
        """Seconds of VAD speech in [t0, t1) that no pending word's span (widened) covers."""
        covered, cursor = 0.0, t0
        for x in self.policy.pending(words):
            a, b = max(x.start - EXPLAIN_MARGIN, cursor), min(x.end + EXPLAIN_MARGIN, t1)
            if b > a:
                covered += self.vad.speech_in(a, b)
                cursor = b
        return self.vad.speech_in(t0, t1) - covered

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
