"""Word-level timestamps from the model's alignment heads (cross-attention + DTW, done by
ctranslate2's `align`), merged with punctuation and fitted into their segments."""

from __future__ import annotations

from dataclasses import replace

import ctranslate2
import numpy as np

from npustream.asr.tokenizer import WhisperTokenizer
from npustream.types import Segment, Word

ENCODER_FRAMES_PER_SECOND = 50
PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


def align_words(
    model: ctranslate2.models.Whisper,
    tokenizer: WhisperTokenizer,
    encoded: ctranslate2.StorageView,
    sot_sequence: list[int],
    segments: tuple[Segment, ...],
    content_frames: int,
    offset: float,
    language: str,
) -> tuple[Segment, ...]:
    text_tokens = [t for s in segments for t in s.tokens]
    if not text_tokens:
        return segments
    # num_frames counts mel frames (ctranslate2 halves it for the encoder frames).
    result = model.align(encoded, sot_sequence, [text_tokens], content_frames)[0]
    text_idx = np.array([a[0] for a in result.alignments])
    time_idx = np.array([a[1] for a in result.alignments])
    probs = np.asarray(result.text_token_probs, dtype=np.float64)
    names, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot], language)
    if len(word_tokens) <= 1 or len(text_idx) == 0:
        return segments
    # Times at which the DTW path moves to the next token; a word spans its tokens' jumps.
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    jump_times = time_idx[jumps] / ENCODER_FRAMES_PER_SECOND
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    last = len(jump_times) - 1
    words = []
    for k, (name, tokens) in enumerate(zip(names[:-1], word_tokens[:-1])):
        i, j = int(bounds[k]), int(bounds[k + 1])
        words.append(
            [
                name,
                tokens,
                float(jump_times[min(i, last)]),
                float(jump_times[min(j, last)]),
                float(probs[i:j].mean()) if j > i else 0.0,
            ]
        )
    _clamp_long_words(words)
    _merge_punctuation(words)
    return _fit_into_segments(words, segments, offset, offset + content_frames / 100.0)


def _clamp_long_words(words: list[list]) -> None:
    # The DTW path can stretch a word across a following pause; OpenAI truncates words at
    # sentence ends to twice the median word duration.
    durations = np.array([w[3] - w[2] for w in words if w[3] > w[2]])
    if len(durations) == 0:
        return
    max_duration = 2 * min(0.7, float(np.median(durations)))
    for k, w in enumerate(words):
        if w[3] - w[2] > max_duration and (w[0].strip() in ".。!！?？" or k == 0 or k == len(words) - 1):
            if k == 0:
                w[2] = max(0.0, w[3] - max_duration)
            else:
                w[3] = w[2] + max_duration


def _merge_punctuation(words: list[list]) -> None:
    # Leading punctuation joins the next word, trailing punctuation the previous one.
    k = len(words) - 2
    while k >= 0:
        cur, nxt = words[k], words[k + 1]
        if cur[0].startswith(" ") and cur[0].strip() in PREPEND_PUNCTUATION and nxt[0]:
            nxt[0], nxt[1] = cur[0] + nxt[0], cur[1] + nxt[1]
            cur[0], cur[1] = "", []
        k -= 1
    for k in range(len(words) - 1):
        cur, nxt = words[k], words[k + 1]
        if cur[0] and not cur[0].endswith(" ") and nxt[0] in APPEND_PUNCTUATION:
            cur[0], cur[1] = cur[0] + nxt[0], cur[1] + nxt[1]
            nxt[0], nxt[1] = "", []
    words[:] = [w for w in words if w[0]]


def _fit_into_segments(
    words: list[list], segments: tuple[Segment, ...], offset: float, window_end: float
) -> tuple[Segment, ...]:
    """Hand words to the segments whose tokens they came from; times absolute, monotonic."""
    fitted = []
    cursor = 0
    previous_end = offset
    for segment in segments:
        n_tokens, taken, seg_words = len(segment.tokens), 0, []
        while cursor < len(words) and taken < n_tokens:
            name, tokens, start, end, prob = words[cursor]
            start = min(max(offset + start, previous_end), window_end)
            end = min(max(offset + end, start), window_end)
            seg_words.append(
                Word(start=round(start, 3), end=round(end, 3), word=name, probability=round(prob, 4))
            )
            previous_end = end
            taken += len(tokens)
            cursor += 1
        if seg_words:
            # The segment spans exactly its words, so word times always lie inside it.
            segment = replace(
                segment,
                start=seg_words[0].start,
                end=max(seg_words[-1].end, seg_words[0].start),
                words=tuple(seg_words),
            )
        fitted.append(segment)
    return tuple(fitted)
