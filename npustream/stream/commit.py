"""Which words are final: LocalAgreement-2 plus the guards streaming Whisper needs.

Each update decodes the whole window again, so each hypothesis repeats the words already
made final and then offers a tail that may still change. A word in that tail becomes final
when two hypotheses agree on it (the longest common prefix of their tails: Machacek et al.,
"Turning Whisper into Real-Time Transcription System", 2023; the captioner picks the earlier
hypotheses: the one that heard 0.3 s less audio and every one since, so the evidence is over
different audio whatever the engine's pace), when the utterance ends, or when the window must
be trimmed.

Guards against streaming Whisper's known failures live here too: a hypothesis that loops
("the the the the", a phrase over and over) is cut at the loop; words already final are
recognised by time and by their text and never published again; final times never go back.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, replace

from npustream.types import Word, closed_text

TIME_SLACK = 0.1  # s: word timestamps of two decodes of the same audio differ by about this
SAME_AUDIO = 0.5  # share of a final word's span a new word must cover to be that word again
PROMPT_CHARS = 200  # final text fed back as the decoder prompt (whisper_streaming's choice)
# How far back to look for a repeat of final words at a hypothesis' start. Whisper sometimes
# echoes the end of its prompt (final text) as if it were new audio, a whole sentence of it,
# with timestamps after the final words': as far back as the prompt reaches.
MAX_OVERLAP_WORDS = PROMPT_CHARS // 4


# Probability of a word repeating the newest final word, read right after it in place, for it
# to be that word said again (a conversation's "Hello? | Hello?" at 0.90), not Whisper echoing
# its prompt ("Hello? Hello?" prompted: a third "Hello?" of no length at 0.35).
SAID_AGAIN = 0.6
LONG_PHRASE = 5  # words: a phrase this long said twice back to back is a loop, not speech


def norm(word: str) -> str:
    """A word's identity for agreement: case and punctuation do not count, nor apostrophes.
    Whisper spells a word it is sure of with the apostrophe moving reading after reading
    ("Quilter's", "Quilters'", "Quilters": a meeting-like build's first turn waited 3.4-3.8 s,
    14 readings, for two to spell it alike); the newest reading's spelling is published."""
    return re.sub(r"\W", "", word.lower())


def cut_repetition(words: list[Word], max_n: int = 12) -> list[Word]:
    """Cut a hypothesis where it starts looping: an n-gram repeated back to back, four times for
    single words (people do say "no, no, no"), three times for short phrases, twice for a phrase
    of LONG_PHRASE words or more (Whisper echoing its prompt's last sentence over new audio:
    "ask not what your country can do for you, ask not what your country can do for you").
    The first occurrence stays; the loop and everything after it go."""
    keys = [norm(w.word) for w in words]
    for i in range(len(keys)):
        for n in range(1, max_n + 1):
            needed = 4 if n == 1 else 3 if n < LONG_PHRASE else 2
            if i + n * needed > len(keys):
                break
            gram = keys[i : i + n]
            if not any(gram):
                continue
            if all(keys[i + k * n : i + (k + 1) * n] == gram for k in range(1, needed)):
                return words[: i + n]
    return words


@dataclass
class Commit:
    final: list[Word]  # newly final, in order, never published before
    tail: list[Word]  # the hypothesis' words after them (the new partial)


class CommitPolicy:
    def __init__(self, initial_prompt: str | None = None) -> None:
        # Text before the first final words, as OpenAI's initial_prompt: it leads the prompt
        # until final text pushes it out (PROMPT_CHARS).
        self.initial_prompt = closed_text(initial_prompt) if initial_prompt else ""
        self.last_final_end = 0.0  # end time of the newest final word
        self.finals: deque[Word] = deque(maxlen=200)  # recent final words (prompt, overlap check)
        self.language: str | None = None  # the language the prompt's final text was read in
        self._prompt_from = 0.0  # final words ending before this stream time were another language's

    def pending(self, hypothesis: list[Word]) -> list[Word]:
        """The part of a hypothesis that is not final yet: the words centred after the last
        final word's end (alignment may pull a new word's start back over silence, so not by
        start), less a repeat of the final words' tail (recognised by text: the timestamps of
        an echo of the prompt, or of a final word decoded again, say nothing), unless the
        hypothesis read the newest final word where it was made final and the decoder is sure
        of the word after it: then that word is said again ("Hello? Hello?", "I think, I
        think")."""
        after = [(w.start + w.end) / 2 >= self.last_final_end - TIME_SLACK for w in hypothesis]
        words = [w for w, a in zip(hypothesis, after, strict=True) if a]
        before = [w for w, a in zip(hypothesis, after, strict=True) if not a]
        if words and words[0].probability >= SAID_AGAIN and self._read_in_place(before):
            return words
        # A final word whose timestamp moved later in this decode: recognise it by its text.
        recent = [norm(w.word) for w in list(self.finals)[-MAX_OVERLAP_WORDS:]]
        for k in range(min(len(recent), len(words)), 0, -1):
            if recent[-k:] == [norm(w.word) for w in words[:k]]:
                return words[k:]
        # The newest final word heard again as another word ("asked" final, then "ask not" once
        # "what" is heard), aligned over most of the same audio: it is the same word.
        if words and self.finals:
            last = self.finals[-1]
            if self._shared_with_newest_final(words[0]) >= max(
                TIME_SLACK, SAME_AUDIO * (last.end - last.start)
            ):
                return words[1:]
        return words

    def _read_in_place(self, before: list[Word]) -> bool:
        """The newest final word is the last of these words before the pending ones, read
        again over most of its own audio."""
        if not before or not self.finals:
            return False
        last, word = self.finals[-1], before[-1]
        same_audio = self._shared_with_newest_final(word) >= SAME_AUDIO * (last.end - last.start)
        return norm(word.word) == norm(last.word) and same_audio

    def _shared_with_newest_final(self, word: Word) -> float:
        """Seconds of the newest final word's span that a word's span covers."""
        last = self.finals[-1]
        return min(word.end, last.end) - max(word.start, last.start)

    def agreed(self, hypothesis: list[Word], previous: list[Word]) -> list[Word]:
        """LocalAgreement-2: the common prefix of this hypothesis' pending tail and a previous
        hypothesis' (both measured from the current final point)."""
        tail, before = self.pending(hypothesis), self.pending(previous)
        n = 0
        while n < min(len(tail), len(before)) and norm(tail[n].word) == norm(before[n].word):
            n += 1
        return tail[:n]

    def commit_first(self, hypothesis: list[Word], n: int) -> Commit:
        """The first n pending words are final."""
        tail = self.pending(hypothesis)
        return self._commit(tail[:n], tail[n:])

    def agree(self, hypothesis: list[Word], previous: list[Word]) -> Commit:
        """Make the prefix it shares with a previous hypothesis final."""
        return self.commit_first(hypothesis, len(self.agreed(hypothesis, previous)))

    def commit_all(self, hypothesis: list[Word]) -> Commit:
        """End of utterance: everything pending is final."""
        return self._commit(self.pending(hypothesis), [])

    def commit_before(self, hypothesis: list[Word], t: float) -> Commit:
        """Pending words that end by stream time t are final: the end of a pause that closed an
        utterance (word alignment lets the last word before a pause run on into it, and the
        next word's start reach back into it, but that word ends after the pause), or a
        segment boundary when the window overflows."""
        tail = self.pending(hypothesis)
        n = len(self.pending_before(hypothesis, t))
        return self._commit(tail[:n], tail[n:])

    def pending_before(self, hypothesis: list[Word], t: float) -> list[Word]:
        """The pending words up to the first that ends after stream time t (commit_before's)."""
        tail = self.pending(hypothesis)
        n = 0
        while n < len(tail) and tail[n].end <= t + 1e-6:
            n += 1
        return tail[:n]

    def _commit(self, final: list[Word], tail: list[Word]) -> Commit:
        out = []
        for w in final:
            if not norm(w.word):
                continue
            # Final times never go backwards, even when alignment jitters.
            start = max(w.start, self.last_final_end)
            w = replace(w, start=start, end=max(w.end, start))
            out.append(w)
            self.finals.append(w)
            self.last_final_end = w.end
        return Commit(out, tail)

    def read_in(self, language: str | None, at: float) -> None:
        """The final words from stream time `at` on were read in `language`: the final text of
        another language before them leaves the prompt (a decode in the new language would go on
        in the old one)."""
        if language != self.language:
            if self.language is not None:
                self._prompt_from = at
            self.language = language

    def prompt(self, before: float) -> str | None:
        """The initial prompt and the final text in the newest language that ended before stream
        time `before` (i.e. no longer in the window), the last PROMPT_CHARS of it starting at a
        word, as the next decode's prompt (read in self.language)."""
        text = self.initial_prompt + "".join(
            w.word for w in self.finals if self._prompt_from <= w.end <= before + TIME_SLACK
        )
        if len(text) > PROMPT_CHARS:
            text = text[-PROMPT_CHARS:]
            text = text[text.find(" ") + 1 :] if " " in text else text
        return text.strip() or None
